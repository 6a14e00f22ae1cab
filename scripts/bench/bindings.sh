#!/usr/bin/env bash
# Python `Evaluator.evaluate` and Node `Evaluator#evaluate` vs the Rust call on the same input
# (issue 10: within 15 %), given the input as a dict / object and as a PreparedInput. A
# benchmark, never run in CI.
#
#   scripts/bench/bindings.sh [FINDINGS...]      # default: 10 1000 10000
#
# Builds the release Python wheel (maturin, installed into the virtualenv target/bench-venv), the
# release Node addon (napi build --release, into the scratch dir: the checkout's debug addon of
# scripts/test-node.sh is left alone) and the Rust bench `helios-core/benches/bindings.rs`; writes
# a CI policy input with N findings per size (gen.py ci); then, per engine (HELIOS_ENGINE=rvm
# and interpreter) and size, times in this order on the same machine in the same run:
#
# - Rust: `EmbeddedEvaluator::evaluate_sync(&PolicyInput)`, the PolicyInput read once from the
#   file, the evaluator built once (benches/bindings.rs; its scan's engine value is built on the
#   first call and shared by the later ones); also the same call on a new PolicyInput each time
#   (read before the clock starts), which converts the scan again ("Rust, new input"); and the
#   async call `PolicyEvaluator::evaluate` awaited on a multi-threaded tokio runtime ("Rust
#   async": the evaluation on tokio's blocking pool, the hop there and back), the Rust call that
#   Node's `evaluate` (a Promise, the evaluation on the libuv pool) is compared with;
# - Python: `Evaluator().evaluate(doc)`, doc the dict `json.load` read once from the same file,
#   then `Evaluator().evaluate(prepared)`, prepared = `helios.PreparedInput(doc)` made once;
# - Node: `await new Evaluator().evaluate(doc)`, doc the object `JSON.parse` read once, then
#   `await evaluator.evaluate(prepared)` and `evaluator.evaluateSync(prepared)`, prepared =
#   `new PreparedInput(doc)` made once.
#
# Each: one evaluator built once, ITERATIONS / 10 + 2 warm-up calls, then ITERATIONS calls
# timed one by one; the median per call. ITERATIONS = clamp(200000 / N, 20, 2000). A binding
# gets its input as a native object on every call, so its time includes reading that object
# into the core's types and the decision back into native objects: the binding's overhead. A
# PreparedInput was read once, and its scan's engine value is shared after the first call, as the
# Rust call's: its time is the evaluation plus the decision back (Node's `evaluate`: plus the hop
# to the libuv pool and back).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZES=("$@")
((${#SIZES[@]})) || SIZES=(10 1000 10000)
ENGINES=(${HELIOS_BENCH_ENGINES:-rvm interpreter})

CARGO_BUILD_TARGET="$(rustc -vV | sed -n 's/host: //p')"
export CARGO_BUILD_TARGET

# A wheel installed into the bench's own virtualenv: `maturin develop` would install editable,
# i.e. put the extension into helios-py/helios/, where scripts/test-python.sh's debug build
# replaces it.
echo "==> building the release Python wheel (maturin build --release)" >&2
venv="$ROOT/target/bench-venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.9,<2'
(cd "$ROOT" && "$venv/bin/maturin" build --release --manifest-path helios-py/Cargo.toml \
    --out "$WORK/wheel" >&2)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall \
    --no-deps "$WORK"/wheel/*.whl

echo "==> building the release Node addon (napi build --release)" >&2
(cd "$ROOT/helios-node" && { [[ -x node_modules/.bin/napi ]] || npm ci --no-audit --no-fund --ignore-scripts >&2; } &&
    npx napi build --platform --release --no-js --dts "$WORK/native.d.ts" \
        --output-dir "$WORK/node" >&2)
# index.js loads `helios.<platform>.node` from its own directory: the release addon just built.
cp "$ROOT/helios-node/index.js" "$WORK/node/"

echo "==> building the Rust bench (cargo bench --no-run)" >&2
rust_bench="$(cd "$ROOT" && cargo bench -p helios-core --bench bindings --no-run \
    --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' | tail -n 1)"

iterations() { awk -v n="$1" 'BEGIN { i = int(200000 / n); if (i < 20) i = 20; if (i > 2000) i = 2000; print i }'; }

# bench_python ITERATIONS FILE: median ns per call, of `evaluate(dict)` then of
# `evaluate(PreparedInput)`.
bench_python() {
    "$venv/bin/python" - "$@" <<'PY'
import json, sys, time
import helios
iterations, path = int(sys.argv[1]), sys.argv[2]
with open(path) as f:
    doc = json.load(f)
evaluator = helios.Evaluator(time_limit_ms=30000)

def median(arg):
    for _ in range(iterations // 10 + 2):
        evaluator.evaluate(arg)
    times = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        evaluator.evaluate(arg)
        times.append(time.perf_counter_ns() - started)
    times.sort()
    return times[len(times) // 2]

print(median(doc), median(helios.PreparedInput(doc)))
PY
}

# bench_node ITERATIONS FILE: median ns per call, of `await evaluate(object)`, then
# `await evaluate(PreparedInput)`, then `evaluateSync(PreparedInput)`. The package's index.js
# (its wrappers and exports) over the release addon of this run, copied into the scratch dir.
bench_node() {
    node - "$WORK/node/index.js" "$@" <<'JS'
const { readFileSync } = require('node:fs')
const [pkg, iterations, path] = process.argv.slice(2)
const { Evaluator, PreparedInput } = require(pkg)
const doc = JSON.parse(readFileSync(path, 'utf8'))
const evaluator = new Evaluator({ timeLimitMs: 30000 })
const n = Number(iterations)
// The median time of `call`; a synchronous call (`sync`) is timed as it is made, without an
// `await`, which would add a microtask turn.
async function median(call, sync = false) {
  for (let i = 0; i < Math.floor(n / 10) + 2; i++) sync ? call() : await call()
  const times = []
  for (let i = 0; i < n; i++) {
    const started = process.hrtime.bigint()
    sync ? call() : await call()
    times.push(Number(process.hrtime.bigint() - started))
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(n / 2)]
}
;(async () => {
  const prepared = new PreparedInput(doc)
  const object = await median(() => evaluator.evaluate(doc))
  const preparedAsync = await median(() => evaluator.evaluate(prepared))
  const preparedSync = await median(() => evaluator.evaluateSync(prepared), true)
  console.log(object, preparedAsync, preparedSync)
})().catch((e) => { console.error(e); process.exit(1) })
JS
}

ms() { awk -v ns="$1" 'BEGIN { printf "%.3f ms", ns / 1e6 }'; }

for n in "${SIZES[@]}"; do
    mkdir -p "$WORK/$n"
    python3 "$ROOT/scripts/bench/gen.py" ci "$WORK/$n" "$n" >&2
done

rows=()
for engine in "${ENGINES[@]}"; do
    export HELIOS_ENGINE="$engine"
    for n in "${SIZES[@]}"; do
        file="$WORK/$n/input.json"
        iters="$(iterations "$n")"
        echo "==> $engine, $n findings, $iters calls each" >&2
        read -r _ rust rust_new rust_async < <("$rust_bench" --bench "$iters" "$file")
        read -r python python_prep < <(bench_python "$iters" "$file")
        read -r node node_prep node_sync_prep < <(bench_node "$iters" "$file")
        rows+=("| $engine | $n | $(ms "$rust") | $(ms "$python") | $(ms "$node") | **$(ratio "$python" "$rust")×** | **$(ratio "$node" "$rust")×** | $(ms "$python_prep") **$(ratio "$python_prep" "$rust")×** | $(ms "$node_prep") **$(ratio "$node_prep" "$rust")×** | $(ms "$node_sync_prep") **$(ratio "$node_sync_prep" "$rust")×** | $(ms "$rust_async") | **$(ratio "$node_prep" "$rust_async")×** | $(ms "$rust_new") | $(ratio "$python" "$rust_new")× / $(ratio "$node" "$rust_new")× |")
    done
done

echo
echo "Bindings vs the Rust call, median per call, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Prepared: the input given as a PreparedInput made once (each cell: median, its ratio to Rust)."
echo "Rust async: the async call on a tokio runtime; Node prepared / Rust async: async call vs async call."
echo
echo "| engine | findings | Rust | Python | Node | Python / Rust | Node / Rust | Python prepared | Node prepared | Node sync prepared | Rust async | Node prepared / Rust async | Rust, new input | Python / Node vs new input |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
