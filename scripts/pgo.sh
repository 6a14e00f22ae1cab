#!/usr/bin/env bash
# Builds the release `helios` CLI with profile-guided optimisation (PGO), as rustc and
# pydantic-core build their releases: an instrumented build runs a training workload, LLVM merges
# the profiles it wrote, and the release build uses them to lay out hot and cold code and to
# inline and order branches the way the workload runs. Prints the path of the optimised binary.
#
#   scripts/pgo.sh [TRIPLE]     # default: the host; scripts/package.sh passes the musl target
#
# The training (scripts/pgo-train.sh) decides policies the way users do — `helios gate` on
# Lacework and Helios scans, `helios eval`, `helios review` of a Deployment, `helios policy
# test` — on its own generated inputs, not on the benchmark's. Needs `llvm-profdata` of rustc's
# LLVM major version (`llvm-N` from the LLVM or Debian apt repositories, installed here when
# missing and we are root). Two release builds of several minutes each, under target/pgo/.
# Never run in CI: scripts/package.sh and the benchmarks run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TRIPLE="${1:-$(rustc -vV | sed -n 's/^host: //p')}"
LLVM_MAJOR="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
PGO="$ROOT/target/pgo"
PROFILES="$PGO/profiles-$TRIPLE"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { echo "pgo: $*" >&2; }

# ring's C and assembly for a musl target build with musl-gcc (as scripts/package.sh does).
if [[ "$TRIPLE" == *-musl ]] && command -v musl-gcc >/dev/null 2>&1; then
    cc_var="CC_${TRIPLE//-/_}"
    export "$cc_var=${!cc_var:-musl-gcc}"
fi

# llvm-profdata must read the raw profiles of rustc's own LLVM: same major version.
profdata_tool() {
    local candidate
    for candidate in "llvm-profdata-$LLVM_MAJOR" "/usr/lib/llvm-$LLVM_MAJOR/bin/llvm-profdata" llvm-profdata; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" --version 2>/dev/null | grep -q "LLVM version $LLVM_MAJOR\."; then
            command -v "$candidate"
            return
        fi
    done
    return 1
}

PROFDATA="$(profdata_tool || true)"
if [[ -z "$PROFDATA" && "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing llvm-$LLVM_MAJOR (llvm-profdata for rustc's LLVM $LLVM_MAJOR)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "llvm-$LLVM_MAJOR" >/dev/null 2>&1 || true
    PROFDATA="$(profdata_tool || true)"
fi
if [[ -z "$PROFDATA" ]]; then
    say "no llvm-profdata of LLVM $LLVM_MAJOR (rustc's); install llvm-$LLVM_MAJOR" \
        "(apt.llvm.org or Debian) or run without PGO"
    exit 3
fi

# RUSTFLAGS reach only the target's crates (always --target): build scripts and proc macros
# stay uninstrumented. A caller's own RUSTFLAGS are kept.
build() {
    local dir="$1" flags="$2"
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$flags" cargo build --release --locked -p helios-cli \
        --target "$TRIPLE" --target-dir "$dir" >&2
    echo "$dir/$TRIPLE/release/helios"
}

say "1/3 instrumented build ($TRIPLE)"
rm -rf "$PROFILES"
mkdir -p "$PROFILES"
instrumented="$(build "$PGO/gen" "-Cprofile-generate=$PROFILES")"

say "2/3 training"
"$ROOT/scripts/pgo-train.sh" "$instrumented" >&2
"$PROFDATA" merge -o "$PGO/helios-$TRIPLE.profdata" "$PROFILES"/*.profraw

say "3/3 optimised build"
build "$PGO/use" "-Cprofile-use=$PGO/helios-$TRIPLE.profdata"
