# Shared by scripts/bench/*.sh (sourced): tool lookup and builds. Nothing here runs in CI.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_BIN="${HELIOS_TOOLS_BIN:-$ROOT/.tools/bin}"
mkdir -p "$TOOLS_BIN"

# The load generator of the benchmarks and the soak.
VEGETA_VERSION="v12.12.0"

# A scratch directory $WORK, removed at exit after killing the processes whose pids the script
# appends to PIDS.
WORK="$(mktemp -d)"
PIDS=()
bench_cleanup() {
    # CONT after TERM: a process a script stopped (SIGSTOP) acts on its TERM only once resumed.
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap bench_cleanup EXIT

# bench_release_bin PACKAGE [CARGO FLAGS...]: builds PACKAGE's release binary, prints its path.
bench_release_bin() {
    local package="$1"
    shift
    (cd "$ROOT" && cargo build --release -p "$package" "$@" \
        --message-format=json-render-diagnostics) |
        jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' |
        tail -n 1
}

# bench_helios: the release `helios` binary ($HELIOS_BIN; with HELIOS_BENCH_PGO=1 the
# profile-guided build of scripts/pgo.sh; else built now with the extra cargo flags of
# $HELIOS_BENCH_CARGO_FLAGS).
bench_helios() {
    if [[ -n "${HELIOS_BIN:-}" ]]; then
        echo "$HELIOS_BIN"
        return
    fi
    if [[ "${HELIOS_BENCH_PGO:-0}" == 1 ]]; then
        "$ROOT/scripts/pgo.sh"
        return
    fi
    # shellcheck disable=SC2086
    bench_release_bin helios-cli ${HELIOS_BENCH_CARGO_FLAGS:-}
}

# bench_opa: the pinned OPA (scripts/install-tools.sh) unless $HELIOS_OPA_BIN names one.
bench_opa() {
    if [[ -n "${HELIOS_OPA_BIN:-}" ]]; then
        echo "$HELIOS_OPA_BIN"
        return
    fi
    "$ROOT/scripts/install-tools.sh" opa >&2
    echo "$TOOLS_BIN/opa"
}

# bench_go_tool NAME PACKAGE VERSION: PACKAGE@VERSION built with the machine's Go into
# $TOOLS_BIN/NAME once (a stamp records the version), for the benchmarks only.
bench_go_tool() {
    local name="$1" package="$2" version="$3"
    local bin="$TOOLS_BIN/$name" stamp="$TOOLS_BIN/.$name.version"
    if [[ ! -x "$bin" || ! -f "$stamp" || "$(cat "$stamp")" != "$version" ]]; then
        echo "bench: building $name $version from $package" >&2
        local tmp
        tmp="$(mktemp -d "$TOOLS_BIN/.build-$name.XXXXXX")"
        GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "$package@$version" >&2
        mv -f "$tmp/$(basename "${package%/v[0-9]*}")" "$bin"
        rm -rf "$tmp"
        echo "$version" >"$stamp"
    fi
    echo "$bin"
}

# bench_cert: a self-signed certificate for localhost and 127.0.0.1, $WORK/tls.crt and tls.key.
bench_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ratio A B: A / B to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

# bench_wait_ready NAME URL LOG: returns once URL answers 2xx over HTTPS (15 s at most); else
# prints LOG and exits the script.
bench_wait_ready() {
    for _ in $(seq 150); do
        curl -skf -o /dev/null "$2" && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): $1 did not start:" >&2
    cat "$3" >&2
    exit 1
}
