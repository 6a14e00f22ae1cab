#!/usr/bin/env bash
# Builds the Python bindings (helios-py) into a private virtualenv and runs their pytest suite.
#
#   scripts/test-python.sh [pytest args...]
#
# Works from a clean clone: needs python3 (>= 3.9) with venv, and cargo; maturin and pytest
# come from PyPI into the virtualenv. The venv lives in helios-py/.venv (git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# One target triple for cargo, maturin and napi, so they share one build in target/<triple>/.
CARGO_BUILD_TARGET="$(rustc -vV | sed -n 's/host: //p')"
export CARGO_BUILD_TARGET

venv="$root/helios-py/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtualenv $venv"
    "$python" -m venv "$venv"
fi
# Activating matters: `maturin develop` installs into $VIRTUAL_ENV.
# shellcheck disable=SC1091
source "$venv/bin/activate"

echo "==> installing maturin and pytest"
python -m pip install --quiet --disable-pip-version-check 'maturin>=1.9,<2' 'pytest>=8'

echo "==> building helios (maturin develop, debug)"
maturin develop --manifest-path helios-py/Cargo.toml

echo "==> building the Lacework API emulator (the Lacework tests run it as a subprocess)"
cargo build --quiet -p helios-lacework-emulator
HELIOS_LACEWORK_EMULATOR="$root/target/$CARGO_BUILD_TARGET/debug/helios-lacework-emulator"
export HELIOS_LACEWORK_EMULATOR

echo "==> building the CLI (the registry tests compare gate() with helios gate)"
cargo build --quiet -p helios-cli
HELIOS_CLI_BIN="$root/target/$CARGO_BUILD_TARGET/debug/helios"
export HELIOS_CLI_BIN

echo "==> pytest"
python -m pytest helios-py/tests "$@"
