#!/usr/bin/env bash
# Restarts under load (issue 11): a load script, never run in CI.
#
#   scripts/restart-under-load.sh [DURATION]     # seconds of load per run, default 40
#
# Two `helios webhook` replicas (release build, scans from a directory, the Deployment review of
# scripts/bench/gen.py) behind haproxy (Debian's 2.6, scripts/install-tools.sh haproxy) in TCP
# mode, TLS passed through, standing in for the Service and its endpoints: it health-checks
# GET /readyz over TLS every 200 ms and takes a replica out at the first failure, and it does not
# retry a refused connection on the other replica (`retries 0`), as kube-proxy's DNAT does not.
# vegeta drives it as the kube-apiserver's webhook client does: Go's net/http over HTTP/2
# (`-http2=true`), which retries the requests a GOAWAY refused; 32 workers in all, as fast as
# answered. Go's HTTP/2 transport multiplexes a client's requests on one connection (as one API
# server does), so 4 vegeta processes (4 API servers, 8 workers each) spread their connections
# over both replicas. During the load the script restarts replica A (SIGTERM, wait for its exit,
# start it again on the same port), waits, then replica B.
#
# Two runs: `--shutdown-delay 5s` (the manifests' setting) and `--shutdown-delay 0` (what the
# delay buys). Each prints its requests, answers 200, other statuses, transport errors, p50/p99
# and when each restart happened (seconds since the load started).
#
# Environment: HELIOS_BIN (a prebuilt helios), HELIOS_RESTART_DELAYS (the runs' delays,
# default "5s 0"), HELIOS_TOOLS_BIN (where vegeta and haproxy are).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

DURATION="${1:-40}"
WORKERS=32
CLIENTS=4
DELAYS="${HELIOS_RESTART_DELAYS:-5s 0}"

helios="$(bench_helios)"
vegeta="$(bench_go_tool vegeta github.com/tsenart/vegeta/v12 "$VEGETA_VERSION")"
"$ROOT/scripts/install-tools.sh" haproxy >&2
haproxy="$TOOLS_BIN/haproxy"

python3 "$ROOT/scripts/bench/gen.py" webhook "$WORK" >/dev/null
bench_cert

# start NAME PORT DELAY: starts replica NAME on PORT; its pid in PID_<NAME>.
start() {
    "$helios" webhook --listen "127.0.0.1:$2" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" \
        --scan-dir "$WORK/scans" --no-resolve --mode enforce --shutdown-delay "$3" \
        >/dev/null 2>>"$WORK/replica-$1.log" &
    printf -v "PID_$1" '%s' "$!"
    PIDS+=("$!")
    bench_wait_ready "replica $1" "https://127.0.0.1:$2/readyz" "$WORK/replica-$1.log"
}

# since: seconds since the load started, to one decimal.
since() { awk -v t0="$T0" -v t="$(date +%s.%N)" 'BEGIN { printf "%.1f", t - t0 }'; }

# restart NAME PORT DELAY: SIGTERM, wait for the exit, start again; prints when each happened.
restart() {
    local pid="PID_$1" term exited up status=0
    term="$(since)"
    kill -TERM "${!pid}"
    wait "${!pid}" || status=$?
    exited="$(since)"
    start "$1" "$2" "$3"
    up="$(since)"
    echo "replica $1: SIGTERM at ${term}s, exited at ${exited}s (status $status), ready again at ${up}s; $(
        grep '"draining' "$WORK/replica-$1.log" | tail -n 1 |
            jq -r '"at the drain: \(.fields.in_flight) reviews in flight, \(.fields.connections) connections"')"
}

# stop NAME: SIGTERM twice (the second skips the shutdown delay), wait for the exit.
stop() {
    local pid="PID_$1"
    kill -TERM "${!pid}" 2>/dev/null || return 0
    sleep 0.2
    kill -TERM "${!pid}" 2>/dev/null || true
    wait "${!pid}" 2>/dev/null || true
}

# run DELAY: one run with both replicas at --shutdown-delay DELAY.
run() {
    local delay="$1" a b front
    a="$(free_port)"
    b="$(free_port)"
    front="$(free_port)"
    : >"$WORK/replica-A.log"
    : >"$WORK/replica-B.log"
    start A "$a" "$delay"
    start B "$b" "$delay"
    cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 0
listen webhook
    bind 127.0.0.1:$front
    balance leastconn
    option httpchk GET /readyz
    default-server check check-ssl verify none inter 200ms fall 1 rise 1
    server A 127.0.0.1:$a
    server B 127.0.0.1:$b
EOF
    "$haproxy" -db -q -f "$WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
    local proxy=$!
    PIDS+=("$proxy")
    bench_wait_ready haproxy "https://127.0.0.1:$front/readyz" "$WORK/haproxy.log"

    printf 'POST https://127.0.0.1:%s/validate\nContent-Type: application/json\n@%s\n' \
        "$front" "$WORK/review.json" >"$WORK/targets"
    T0="$(date +%s.%N)"
    local load=() per=$((WORKERS / CLIENTS)) i
    for i in $(seq "$CLIENTS"); do
        "$vegeta" attack -targets="$WORK/targets" -rate=0 -workers="$per" -max-workers="$per" \
            -connections="$per" -max-connections="$per" -http2=true -keepalive=true -insecure \
            -timeout=10s -duration="${DURATION}s" >"$WORK/results-$i.bin" &
        load+=($!)
        PIDS+=($!)
    done
    sleep 2
    local conns
    conns="$(ss -Htn state established "( sport = :$front )" | wc -l)"
    sleep "$((DURATION / 4 - 2))"
    : >"$WORK/timeline"
    restart A "$a" "$delay" >>"$WORK/timeline"
    sleep "$(awk -v d="$DURATION" -v t="$(since)" 'BEGIN { s = d * 0.55 - t; print (s > 0 ? s : 0) }')"
    restart B "$b" "$delay" >>"$WORK/timeline"
    wait "${load[@]}"
    stop A
    stop B
    kill "$proxy" 2>/dev/null || true
    wait "$proxy" 2>/dev/null || true

    echo
    echo "== --shutdown-delay $delay: ${DURATION}s of load, $CLIENTS clients x $per workers, HTTP/2 ($conns client connections open at 2 s)"
    "$vegeta" report -type=json "$WORK"/results-*.bin | jq -r '
        (.status_codes["200"] // 0) as $ok | (.status_codes["0"] // 0) as $transport |
        "requests \(.requests), answered 200: \($ok), non-200: \(.requests - $ok - $transport), transport errors: \($transport)",
        "p50 \(.latencies["50th"] / 1e6 * 100 | round / 100) ms, p99 \(.latencies["99th"] / 1e6 * 100 | round / 100) ms, max \(.latencies.max / 1e6 | round) ms",
        (if (.errors | length) > 0 then "errors: \(.errors[:4] | tojson)" else empty end)'
    cat "$WORK/timeline"
    rm -f "$WORK"/results-*.bin
}

echo "restart-under-load: ${DURATION}s per run, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for delay in $DELAYS; do
    run "$delay"
done
