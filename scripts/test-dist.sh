#!/usr/bin/env bash
# Installs each artifact scripts/package.sh left in dist/ into a fresh place, with no Rust
# toolchain on PATH (the system's directories only; the script checks that neither cargo nor
# rustc can be found), and runs it (docs/packaging.md):
#
#   CLI     checksum, unpack, static binary, `helios gate` denies and allows the sample scans
#   Python  the wheel into a fresh venv (pip --no-index: nothing from PyPI, nothing built), then
#           helios.gate with a scan file and helios.evaluate on the input it judged
#   Node    `npm install` of the two tarballs into a fresh directory, then gate and evaluate
#
#   scripts/test-dist.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="$ROOT/dist"
SCANS="$ROOT/examples/scans"
IMAGE="registry.example.com/shop/web:1.4"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The system's directories, plus the real directories of python3 and node (not a version
# manager's shims), never one that holds cargo or rustc.
clean_path=""
for dir in /usr/local/bin /usr/bin /bin \
    "$(dirname "$(python3 -c 'import sys; print(sys.executable)')")" \
    "$(dirname "$(readlink -f "$(command -v node)")")"; do
    [[ -x "$dir/cargo" || -x "$dir/rustc" ]] && continue
    case ":$clean_path:" in *":$dir:"*) ;; *) clean_path="${clean_path:+$clean_path:}$dir" ;; esac
done
# Runs a command with that PATH, a fresh HOME and nothing else from this environment.
bare() { env -i PATH="$clean_path" HOME="$work/home" HELIOS_NO_RESOLVE=true "$@"; }
mkdir -p "$work/home"
if bare sh -c 'command -v cargo || command -v rustc'; then
    echo "test-dist: the clean PATH still has a Rust toolchain: $clean_path" >&2
    exit 1
fi
pass() { printf 'ok  %s\n' "$*"; passed=$((passed + 1)); }
passed=0

echo "==> checksums"
(cd "$DIST" && sha256sum --check --strict SHA256SUMS)

echo "==> CLI"
tarball="$(ls "$DIST"/helios-*-x86_64-unknown-linux-*.tar.gz)"
(cd "$DIST" && sha256sum --check --strict "$(basename "$tarball").sha256")
tar -xzf "$tarball" -C "$work"
cli="$(ls "$work"/helios-*/helios)"
if [[ "$tarball" == *musl* ]]; then
    ! readelf -d "$cli" | grep -q NEEDED || { echo "test-dist: $cli is not static" >&2; exit 1; }
    pass "the musl CLI is static"
fi
code=0
bare "$cli" gate "$IMAGE" --scan-file "$SCANS/sample-lacework-scan.json" --artifact "$work/cli.json" >/dev/null || code=$?
[[ $code -eq 1 ]] || { echo "test-dist: helios gate exited $code on the denied sample, not 1" >&2; exit 1; }
bare "$cli" gate "$IMAGE" --scan-file "$SCANS/clean-scan.json" >/dev/null
pass "helios gate: denied (1) and allowed (0)"

echo "==> Python wheel"
python3 -m venv "$work/venv"
bare "$work/venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$DIST"/helios_policy-*.whl
bare "$work/venv/bin/python" - "$SCANS" "$IMAGE" <<'EOF'
import sys

import helios

scans, image = sys.argv[1], sys.argv[2]
denied = helios.gate(image, scan_file=f"{scans}/sample-lacework-scan.json", resolve=False)
assert denied["exit_code"] == 1 and not denied["decision"]["allowed"], denied["decision"]
assert denied["decision"]["policy"]["id"] == "helios.default"
again = helios.evaluate(denied["input"])
assert again == denied["decision"], (again, denied["decision"])
allowed = helios.gate(image, scan_file=f"{scans}/clean-scan.json", resolve=False)
assert allowed["exit_code"] == 0, allowed["decision"]
print("helios", helios.__file__)
EOF
pass "wheel: gate denied and allowed, evaluate agrees"

echo "==> npm packages"
mkdir -p "$work/app"
(cd "$work/app" && echo '{"name": "app", "private": true}' >package.json &&
    bare npm install --no-audit --no-fund --loglevel=error "$DIST"/helios-policy-linux-x64-gnu-*.tgz "$DIST"/helios-policy-[0-9]*.tgz)
[[ ! -e "$work/app/node_modules/helios-policy/helios.linux-x64-gnu.node" ]]
cat >"$work/app/smoke.js" <<'EOF'
const assert = require('node:assert')
const { gate, evaluate } = require('helios-policy')
const [scans, image] = process.argv.slice(2)
;(async () => {
  const denied = await gate(image, { scanFile: `${scans}/sample-lacework-scan.json`, resolve: false })
  assert.equal(denied.exit_code, 1)
  assert.equal(denied.decision.policy.id, 'helios.default')
  assert.deepEqual(await evaluate(denied.input), denied.decision)
  const allowed = await gate(image, { scanFile: `${scans}/clean-scan.json`, resolve: false })
  assert.equal(allowed.exit_code, 0)
  console.log('addon', require.resolve('helios-policy-linux-x64-gnu'))
})().catch((err) => {
  console.error(err)
  process.exit(1)
})
EOF
(cd "$work/app" && bare node smoke.js "$SCANS" "$IMAGE")
pass "npm: the addon from helios-policy-linux-x64-gnu, gate denied and allowed, evaluate agrees"

echo "$passed passed, 0 failed"
