#!/usr/bin/env bash
# The packaging tests CI runs (docs/packaging.md): the GitHub Action's metadata validated against
# SchemaStore's github-action schema and the GitLab template against SchemaStore's gitlab-ci
# schema (both vendored by check-jsonschema, from PyPI), then the Action's shell steps and the
# GitLab job run as their runners run them (tests/packaging/test_action.py) with the debug
# `helios`. The Helm chart's tests are Rust (cargo test -p helios-core --features webhook --test
# chart), part of `cargo test --workspace`. Installing the release artifacts with no Rust
# toolchain on PATH is scripts/test-dist.sh, after scripts/package.sh.
#
#   scripts/test-packaging.sh [pytest args...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO_BUILD_TARGET="${CARGO_BUILD_TARGET:-$(rustc -vV | sed -n 's/^host: //p')}"
export CARGO_BUILD_TARGET

venv="$ROOT/target/packaging-venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'check-jsonschema==0.39.0' 'pytest>=8'

echo "==> action.yml against the github-action schema, the GitLab template against gitlab-ci's"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci ci/gitlab/helios.gitlab-ci.yml

if [[ -z "${HELIOS_CLI_BIN:-}" ]]; then
    echo "==> building the CLI (debug)"
    cargo build --quiet -p helios-cli
    export HELIOS_CLI_BIN="$ROOT/target/$CARGO_BUILD_TARGET/debug/helios"
fi

echo "==> the Action's steps and the GitLab job, run as their runners run them"
"$venv/bin/python" -m pytest -q tests/packaging "$@"
