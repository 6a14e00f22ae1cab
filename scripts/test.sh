#!/usr/bin/env bash
# Runs every test suite of Helios — Rust (the Helm chart's too), Python, Node, packaging — on a
# fresh machine, installing what it needs on the way (Go-built peers such as OPA and helm under
# .tools/, Python venvs, npm packages).
# Exit status is non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# One build shared by cargo, maturin and the napi CLI (the napi CLI always passes --target).
CARGO_BUILD_TARGET="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_BUILD_TARGET
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot run gains nothing from incremental state (gigabytes under target/); a developer's
# own setting wins.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "real peers (OPA, ...) built from their Go modules"
scripts/install-tools.sh

step "rust: format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust: tests"
cargo test --workspace --locked
# The string functions the static musl CLI links in place of musl's (helios-cli/musl-string),
# tested again where they are exported, so that the test program itself runs on them. Where the
# musl target is not installed there is no static build for them to be part of (package.sh ships
# the glibc CLI); the functions themselves were tested on the host just above.
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    cargo test --locked -p helios-musl-string --target x86_64-unknown-linux-musl
fi

step "python: tests"
scripts/test-python.sh

step "node: tests"
scripts/test-node.sh

step "packaging: the GitHub Action and the GitLab template (schemas, steps run as their runners run them)"
scripts/test-packaging.sh

step "all suites passed"
