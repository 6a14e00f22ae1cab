#!/usr/bin/env bash
# The Helios action's install step (action.yml): puts `helios` on the job's PATH and names it in
# the step output `bin`. Either INPUT_HELIOS_PATH (a binary already there), or the release
# INPUT_VERSION for this runner, downloaded from HELIOS_RELEASE_URL (default: the GitHub release
# v$INPUT_VERSION) and checked against its published SHA-256 before it is unpacked.
set -euo pipefail

if [[ -n "${INPUT_HELIOS_PATH:-}" ]]; then
    bin="$(cd "$(dirname "$INPUT_HELIOS_PATH")" && pwd)/$(basename "$INPUT_HELIOS_PATH")"
    if [[ ! -x "$bin" ]]; then
        echo "::error::helios-path $INPUT_HELIOS_PATH is not an executable file"
        exit 2
    fi
else
    version="${INPUT_VERSION:?the version input is empty}"
    case "${RUNNER_OS:-Linux}/${RUNNER_ARCH:-X64}" in
        Linux/X64) triple=x86_64-unknown-linux-musl ;;
        *)
            echo "::error::no helios release for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; build it (cargo install --locked --path helios-cli) and pass helios-path"
            exit 2
            ;;
    esac
    base="${HELIOS_RELEASE_URL:-https://github.com/helios-policy/helios/releases/download/v$version}"
    name="helios-$version-$triple"
    dir="${RUNNER_TEMP:?RUNNER_TEMP is not set}/helios-$version"
    mkdir -p "$dir"
    curl -fsSL --retry 3 -o "$dir/$name.tar.gz" "$base/$name.tar.gz"
    curl -fsSL --retry 3 -o "$dir/$name.tar.gz.sha256" "$base/$name.tar.gz.sha256"
    (cd "$dir" && sha256sum --check --strict --quiet "$name.tar.gz.sha256") || {
        echo "::error::$name.tar.gz does not match its SHA-256"
        exit 2
    }
    tar -xzf "$dir/$name.tar.gz" -C "$dir"
    bin="$dir/$name/helios"
fi
"$bin" --version
dirname "$bin" >>"$GITHUB_PATH"
echo "bin=$bin" >>"$GITHUB_OUTPUT"
