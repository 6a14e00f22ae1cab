#!/usr/bin/env bash
# The main job on the embedded default: gate two images in CI with the shipped default policy and
# shipped sample scans (no Lacework account needed). The first is denied, the second allowed; the
# build artifacts land in target/demo/. Exits 0 when both decisions come out as expected.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p helios-cli
helios() { cargo run --quiet --locked -p helios-cli -- "$@"; }
mkdir -p target/demo

run() {
  local expected=$1; shift
  echo "\$ helios $*"
  set +e; helios "$@"; local code=$?; set -e
  echo "(exit code $code)"; echo
  [ "$code" -eq "$expected" ] || { echo "demo: expected exit code $expected, got $code" >&2; exit 1; }
}

# The sample images live at a made-up registry: --no-resolve judges them as written, without
# asking it for the digest their tags point to (a real pipeline leaves resolution on; see
# docs/registry.md).
run 1 gate registry.example.com/shop/web:1.4 --no-resolve \
  --scan-file examples/scans/sample-lacework-scan.json \
  --ci pipeline=demo --artifact target/demo/web.json
run 0 gate registry.example.com/shop/api:2.0 --no-resolve \
  --scan-file examples/scans/clean-scan.json \
  --ci pipeline=demo --artifact target/demo/api.json
echo "demo: decisions as expected; artifacts in target/demo/"
