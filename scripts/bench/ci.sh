#!/usr/bin/env bash
# The CI gate per process: `helios gate --scan-file` and `helios eval` vs `opa eval` vs
# `conftest test`, each deciding the shipped default policy on one scan (issue 10). A benchmark,
# never run in CI.
#
#   scripts/bench/ci.sh [FINDINGS] [RUNS]     # default 1000 findings, 20 runs per command
#
# Every command is one whole process (start, read the policy and the 1,000-finding scan, decide,
# print), run RUNS times after 2 warm-up runs, the commands in turn; the table shows the median
# wall time and the largest peak RSS (the process's own ru_maxrss; scripts/bench/procs.py).
# Helios is the CLI as scripts/package.sh ships it, the profile-guided release build of
# scripts/pgo.sh (HELIOS_BENCH_PGO=0: the plain release build; HELIOS_BIN: a prebuilt one;
# HELIOS_BENCH_CARGO_FLAGS: extra flags of the build); opa is the pinned one of
# scripts/install-tools.sh (or HELIOS_OPA_BIN); conftest is built from its Go module into
# .tools/bin by this script only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FINDINGS="${1:-1000}"
RUNS="${2:-20}"
CONFTEST_VERSION="v0.71.1"

helios="$(HELIOS_BENCH_PGO="${HELIOS_BENCH_PGO:-1}" bench_helios)"
opa="$(bench_opa)"
conftest="$(bench_go_tool conftest github.com/open-policy-agent/conftest "$CONFTEST_VERSION")"

python3 "$ROOT/scripts/bench/gen.py" ci "$WORK" "$FINDINGS"
mkdir -p "$WORK/policy"
cp "$ROOT/helios-core/src/policy/default/helios.rego" "$WORK/policy/"
image="$(cat "$WORK/image")"

names=("helios gate" "helios eval" "opa eval" "conftest test")
commands=(
    "$helios gate $image --scan-file $WORK/scan.json --no-resolve"
    "$helios eval -i $WORK/input.json"
    "$opa eval -d $WORK/policy/helios.rego -i $WORK/input.json data.helios"
    "$conftest test $WORK/input.json -p $WORK/policy --namespace helios --no-color"
)

# Each must decide (exit 0 allowed or 1 denied; anything else is an error) before it is timed.
for i in "${!commands[@]}"; do
    rc=0
    ${commands[$i]} >"$WORK/out" 2>&1 || rc=$?
    if ((rc > 1)); then
        echo "bench: ${names[$i]} failed (exit $rc):" >&2
        head -20 "$WORK/out" >&2
        exit 1
    fi
done

# One posix_spawn and wait4 per run, the commands interleaved (procs.py).
args=()
for i in "${!commands[@]}"; do
    # shellcheck disable=SC2206
    args+=(-- ${commands[$i]})
done
timings="$(python3 "$ROOT/scripts/bench/procs.py" "$RUNS" 2 "${args[@]}")"
mapfile -t results <<<"$timings"
declare -A wall rss
for i in "${!commands[@]}"; do
    wall[$i]="$(cut -f1 <<<"${results[$i]}")"
    rss[$i]="$(cut -f2 <<<"${results[$i]}")"
done

echo
echo "CI gate, one scan of $FINDINGS findings, median of $RUNS runs, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| command | wall | peak RSS |"
echo "|---|---|---|"
for i in "${!commands[@]}"; do
    printf '| `%s` | %s ms | %s MiB |\n' "${names[$i]}" "${wall[$i]}" "${rss[$i]}"
done
echo
for i in 0 1; do
    for j in 2 3; do
        echo "${names[$j]} / ${names[$i]}: time $(ratio "${wall[$j]}" "${wall[$i]}")×, memory $(ratio "${rss[$j]}" "${rss[$i]}")×"
    done
done
