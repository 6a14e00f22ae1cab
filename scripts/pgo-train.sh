#!/usr/bin/env bash
# The training workload of scripts/pgo.sh: runs an instrumented `helios` the ways users run it,
# so that its profiles say which code is hot. Inputs are generated here (gen.py at sizes the
# benchmarks do not use) or taken from the project's examples and fixtures.
#
#   scripts/pgo-train.sh HELIOS_BIN
#
# Every command must end as it should (a decision: exit 0 or 1); a failure stops the training,
# as profiles of error paths would mislead the optimiser.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELIOS="$1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The evaluation engine, time limits and output are the defaults users get.
unset HELIOS_EMBEDDED_ENGINE RUST_BACKTRACE RUST_LIB_BACKTRACE

decide() {
    local rc=0
    "$HELIOS" "$@" >/dev/null 2>&1 || rc=$?
    if ((rc > 1)); then
        echo "pgo-train: helios $* failed (exit $rc)" >&2
        "$HELIOS" "$@" >&2 || true
        exit 1
    fi
}

# Exceptions (one active, one expired, one malformed), as teams waive findings.
cat >"$WORK/exceptions.json" <<'EOF'
{"helios": {"exceptions": [
  {"id": "CVE-2024-700006", "expires": "2999-01-01", "reason": "vendor fix pending"},
  {"id": "CVE-2024-700012", "expires": "2001-01-01", "reason": "expired"},
  {"id": "CVE-2024-700018", "expires": "soon"}
]}}
EOF

for findings in 40 400 4000; do
    dir="$WORK/ci-$findings"
    python3 "$ROOT/scripts/bench/gen.py" ci "$dir" "$findings" >/dev/null
    image="$(cat "$dir/image")"
    for _ in 1 2 3; do
        decide gate "$image" --scan-file "$dir/scan.json" --no-resolve
        decide gate "$image" --scan-file "$dir/scan.json" --no-resolve -d "$WORK/exceptions.json" \
            --format json --artifact "$dir/artifact.json"
        decide eval -i "$dir/input.json"
    done
done

# The shipped sample scans (a Lacework response and a clean Helios report), as the demo runs.
for _ in 1 2 3; do
    decide gate registry.example.com/shop/web:1.4 --no-resolve \
        --scan-file "$ROOT/examples/scans/sample-lacework-scan.json" --ci pipeline=train
    decide gate registry.example.com/shop/api:2.0 --no-resolve \
        --scan-file "$ROOT/examples/scans/clean-scan.json" --ci pipeline=train
done

# Policy inputs of every shape the contract allows, and hand-written policies over them.
for input in "$ROOT"/tests/fixtures/inputs/*.json; do
    decide eval -i "$input"
    decide eval -i "$input" --policy "$ROOT/tests/fixtures/policies/registries.rego"
done

# Admission: a Deployment with three images (gen.py) and the project's review fixtures.
python3 "$ROOT/scripts/bench/gen.py" webhook "$WORK/webhook" >/dev/null
for _ in 1 2 3; do
    decide review "$WORK/webhook/review.json" --scan-dir "$WORK/webhook/scans" --no-resolve
done
for review in "$ROOT"/tests/fixtures/admission/*-create.json; do
    decide review "$review" --scan-dir "$ROOT/tests/fixtures/admission-scans" --no-resolve
done

# The default policy's own unit tests.
decide policy test "$ROOT/helios-core/src/policy/default"
echo "pgo-train: done"
