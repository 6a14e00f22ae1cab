#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ in turn for SECONDS each (default 60) and prints the
# executions per target. A campaign, not a CI step: see docs/reliability.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Seeds come from the
# project's fixtures, copied into fuzz/corpus/<target> at each run (the corpus grows across runs
# and is not checked in). A crash leaves its input in fuzz/artifacts/<target>/ and makes the script
# exit non-zero after the remaining targets ran.
#
# Instrumented without a sanitizer (-s none): the crate forbids `unsafe`, so what fuzzing can find
# is panics (unwrap, indexing, overflow: debug assertions are on), runaway memory and hangs —
# ASan would only slow each execution several times over.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ="$ROOT/fuzz"
SECONDS_PER_TARGET=${1:-60}
shift || true
ALL=(admission_review lacework_page scan_file policy_input image_ref webhook_config registry_manifest)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
HOST=$(rustc -vV | sed -n 's/^host: //p')
FX="$ROOT/tests/fixtures"

command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 2; }

seed() {
  local target=$1 dir="$FUZZ/corpus/$1"
  mkdir -p "$dir"
  case $target in
    admission_review)
      # The first byte picks the mode (enforce, warn, audit); the rest is the review.
      local m=0
      for f in "$FX"/admission/*.json; do
        { printf "\\x0$((m % 3))"; cat "$f"; } > "$dir/seed-$(basename "$f")"
        m=$((m + 1))
      done ;;
    lacework_page)
      cp "$FX"/lacework/*.json "$FX"/lacework-emulator/*.json "$dir/" ;;
    scan_file)
      cp "$ROOT"/examples/scans/*.json "$FX"/lacework/*.json "$FX"/admission-scans/*.json "$dir/" ;;
    policy_input)
      cp "$FX"/inputs/*.json "$dir/" ;;
    image_ref)
      # Every image of the admission fixtures and policy inputs, plus the awkward shapes.
      python3 - "$FX" "$dir" <<'PY'
import json, pathlib, sys
fx, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
found = {"nginx", "localhost:5000/a/b:1@sha256:" + "a" * 64, "registry:5000/team/app",
         "docker.io/library/nginx:latest", "UPPER/case", "a" * 300, "nginx:", "@sha256:"}
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k in ("image", "reference") and isinstance(x, str):
                found.add(x)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
for f in list((fx / "admission").glob("*.json")) + list((fx / "inputs").glob("*.json")):
    walk(json.loads(f.read_text()))
for i, ref in enumerate(sorted(found)):
    (out / f"seed-{i}").write_text(ref)
PY
      ;;
    webhook_config)
      # helios.yaml of the deploy ConfigMap, and the YAML blocks of docs/admission.md.
      python3 - "$ROOT" "$dir" <<'PY'
import pathlib, re, sys
root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
cm = (root / "deploy" / "configmap.yaml").read_text()
m = re.search(r"helios\.yaml: \|\n((?:    .*\n|\n)+)", cm)
seeds = [m.group(1).replace("\n    ", "\n")[4:]] if m else []
seeds += re.findall(r"```yaml\n(.*?)```", (root / "docs" / "admission.md").read_text(), re.S)
seeds += ["admission:\n  mode: warn\n  deadline_ms: 1\n", "{}\n"]
for i, s in enumerate(seeds):
    (out / f"seed-{i}.yaml").write_text(s)
PY
      ;;
    registry_manifest)
      # The first byte picks the platform (linux/amd64, linux/arm64/v8, windows/amd64); the rest
      # is an index: OCI and Docker shapes, attestations, variants, platform strings.
      python3 - "$dir" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
d = lambda c: "sha256:" + c * 64
def entry(digest, os_, arch, variant=None):
    p = {"os": os_, "architecture": arch}
    if variant:
        p["variant"] = variant
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1234,
            "digest": digest, "platform": p}
indexes = [
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
     "manifests": [entry(d("a"), "linux", "amd64"), entry(d("b"), "linux", "arm64", "v8"),
                   entry(d("c"), "unknown", "unknown")]},
    {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
     "manifests": [entry(d("d"), "windows", "amd64"), entry("sha256:short", "linux", "amd64")]},
    {"schemaVersion": 2, "manifests": []},
    {"manifests": [{"digest": d("e")}]},
]
seeds = [bytes([i % 3]) + json.dumps(ix).encode() for i, ix in enumerate(indexes)]
seeds += [b"\x00linux/amd64", b"\x01linux/arm64/v8", b"\x02a/b/c/d", b"\x00{}", b"\x01[]"]
for i, s in enumerate(seeds):
    (out / f"seed-{i}").write_bytes(s)
PY
      ;;
    *) echo "fuzz.sh: unknown target $target" >&2; exit 2 ;;
  esac
}

cd "$FUZZ"
echo "building the fuzz targets (nightly, $HOST)..."
cargo +nightly fuzz build -s none -a --target "$HOST" >/dev/null

failed=()
results=()
for t in "${TARGETS[@]}"; do
  seed "$t"
  log="$FUZZ/artifacts/$t.log"
  mkdir -p "$FUZZ/artifacts/$t"
  echo "fuzzing $t for ${SECONDS_PER_TARGET}s..."
  status=ok
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: runaway memory is a finding.
  if ! cargo +nightly fuzz run -s none -a --target "$HOST" "$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=CRASH
    failed+=("$t")
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o "cov: [0-9]*" "$log" | tail -1 | cut -d" " -f2 || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  results+=("$(printf '%-18s %12s %10s %8s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$status")")
done

printf '\n%-18s %12s %10s %8s %8s  %s\n' target executions exec/s coverage corpus result
printf '%s\n' "${results[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in fuzz/artifacts/<target>.log)" >&2
  exit 1
fi
