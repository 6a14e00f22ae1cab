#!/usr/bin/env bash
# Builds the Node bindings (helios-node) and runs their node:test suite.
#
#   scripts/test-node.sh [node --test args...]
#
# Works from a clean clone: needs node (>= 18) with npm, and cargo. `npm ci` installs the pinned
# @napi-rs/cli from package-lock.json and its `prepare` script builds the addon (debug).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/helios-node"

# One target triple for cargo, maturin and napi, so they share one build in target/<triple>/.
CARGO_BUILD_TARGET="$(rustc -vV | sed -n 's/host: //p')"
export CARGO_BUILD_TARGET

echo "==> npm ci (builds the addon through the prepare script)"
npm ci --no-audit --no-fund

echo "==> building the Lacework API emulator (the Lacework tests run it as a subprocess)"
cargo build --quiet -p helios-lacework-emulator
HELIOS_LACEWORK_EMULATOR="$root/target/$CARGO_BUILD_TARGET/debug/helios-lacework-emulator"
export HELIOS_LACEWORK_EMULATOR

echo "==> building the CLI (the registry tests compare gate() with helios gate)"
cargo build --quiet -p helios-cli
HELIOS_CLI_BIN="$root/target/$CARGO_BUILD_TARGET/debug/helios"
export HELIOS_CLI_BIN

echo "==> node --test"
node --test "$@" test/
