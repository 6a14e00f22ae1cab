#!/usr/bin/env bash
# The Helios webhook vs a real OPA server acting as the webhook, side by side (issue 10). A
# benchmark of a minute or two, never run in CI.
#
#   scripts/bench/webhook.sh [SECONDS]        # per server, default 20 (after a 3 s warm-up)
#
# Both answer the same AdmissionReview (a Deployment with 3 images: 300, 50 and 5 findings) over
# HTTPS on loopback with a self-signed certificate generated here:
#   - Helios: `helios webhook` (release build), embedded default policy, scans from a directory
#     (`--scan-dir`, one scan file per digest), enforce mode, `POST /validate`;
#   - OPA: `opa run --server`, kube-mgmt style: `POST /` answers data.system.main
#     (scripts/bench/opa-webhook/webhook.rego) with the review as input, which runs the same
#     shipped default policy per container over the same scans loaded as OPA data.
# One load generator drives both: vegeta (built from its Go module into .tools/bin), HTTP/1.1,
# 32 keep-alive connections each with one request in flight, as fast as answered (throughput);
# then both at the same fixed rate, half of OPA's throughput, over those connections (latency
# below saturation).
#
# Environment: HELIOS_BIN (a prebuilt helios, skips the build), HELIOS_BENCH_CARGO_FLAGS (extra
# flags of that build), HELIOS_OPA_BIN, HELIOS_BENCH_CONNECTIONS (32), HELIOS_BENCH_RATE (the fixed rate), HELIOS_TOOLS_BIN.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_RUN="${1:-20}"
CONNECTIONS="${HELIOS_BENCH_CONNECTIONS:-32}"


helios="$(bench_helios)"
opa="$(bench_opa)"
vegeta="$(bench_go_tool vegeta github.com/tsenart/vegeta/v12 "$VEGETA_VERSION")"

python3 "$ROOT/scripts/bench/gen.py" webhook "$WORK"
bench_cert

helios_port="$(free_port)"
opa_port="$(free_port)"

"$helios" webhook --listen "127.0.0.1:$helios_port" --tls-cert "$WORK/tls.crt" \
    --tls-key "$WORK/tls.key" --scan-dir "$WORK/scans" --no-resolve --mode enforce \
    >"$WORK/helios.decisions" 2>"$WORK/helios.log" &
PIDS+=($!)
declare -A pid
pid[helios]=$!
"$opa" run --server --addr "127.0.0.1:$opa_port" --tls-cert-file "$WORK/tls.crt" \
    --tls-private-key-file "$WORK/tls.key" \
    "$ROOT/scripts/bench/opa-webhook/webhook.rego" \
    "$ROOT/helios-core/src/policy/default/helios.rego" "$WORK/opa-data" \
    >"$WORK/opa.log" 2>&1 &
PIDS+=($!)
pid[opa]=$!

# only NAME: the other server is stopped (SIGSTOP) while NAME is measured: an idle OPA was seen
# using half a core (its background work after start-up), taken from the server under test.
only() {
    local server
    for server in helios opa; do
        if [[ "$server" == "$1" ]]; then kill -CONT "${pid[$server]}"; else kill -STOP "${pid[$server]}"; fi
    done
}

bench_wait_ready helios "https://127.0.0.1:$helios_port/readyz" "$WORK/helios.log"
bench_wait_ready opa "https://127.0.0.1:$opa_port/health" "$WORK/opa.log"

# Both must deny the review (the same decision) before anything is timed.
helios_url="https://127.0.0.1:$helios_port/validate"
opa_url="https://127.0.0.1:$opa_port/"
for url in "$helios_url" "$opa_url"; do
    allowed="$(curl -sk -H 'Content-Type: application/json' --data-binary "@$WORK/review.json" "$url" |
        jq -r '.response.allowed')"
    if [[ "$allowed" != "false" ]]; then
        echo "bench: $url did not deny the review (allowed: $allowed)" >&2
        exit 1
    fi
done

# attack NAME URL SECONDS: vegeta at $CONNECTIONS keep-alive connections, unthrottled; JSON report.
# attack NAME URL SECONDS [RATE]: RATE reviews/s (default 0: each connection sends its next
# review as soon as the last is answered); vegeta's JSON report. 32 workers each with one review
# in flight over a pool of 32 kept-alive connections; no `-max-connections`: it sets Go's
# MaxConnsPerHost, whose bookkeeping cost the client (which shares the 2 cores with the server)
# a sixth of the measured throughput, and the workers already bound the connections in use.
attack() {
    printf 'POST %s\nContent-Type: application/json\n@%s\n' "$2" "$WORK/review.json" >"$WORK/$1.targets"
    "$vegeta" attack -targets="$WORK/$1.targets" -rate="${4:-0}" -workers="$CONNECTIONS" \
        -max-workers="$CONNECTIONS" -connections="$CONNECTIONS" \
        -http2=false -keepalive=true -insecure -timeout=10s -duration="${3}s" |
        "$vegeta" report -type=json
}

declare -A rps p50 p99
for name in helios opa; do
    url="${name}_url"
    only "$name"
    attack "$name" "${!url}" 3 >/dev/null # warm-up: connections, caches, JIT-free but page cache
    report="$(attack "$name" "${!url}" "$SECONDS_PER_RUN")"
    success="$(jq -r '.success' <<<"$report")"
    if [[ "$success" != "1" ]]; then
        echo "bench: $name answered only $success of the requests with 2xx: $(jq -c '.status_codes, .errors[:3]' <<<"$report")" >&2
    fi
    rps[$name]="$(jq -r '.throughput' <<<"$report")"
    p50[$name]="$(jq -r '.latencies["50th"] / 1e6' <<<"$report")"
    p99[$name]="$(jq -r '.latencies["99th"] / 1e6' <<<"$report")"
done

# Latency at a load both servers carry: closed-loop p99 is mostly queueing (32 reviews always in
# flight on 2 cores), so both are also offered the same fixed rate, half of OPA's throughput
# above (HELIOS_BENCH_RATE to choose another), over the same connections.
rate="${HELIOS_BENCH_RATE:-$(awk -v r="${rps[opa]}" 'BEGIN { printf "%d", r / 2 }')}"
declare -A fixed_p50 fixed_p99
for name in helios opa; do
    url="${name}_url"
    only "$name"
    report="$(attack "$name" "${!url}" "$SECONDS_PER_RUN" "$rate")"
    success="$(jq -r '.success' <<<"$report")"
    if [[ "$success" != "1" ]]; then
        echo "bench: $name answered only $success of the fixed-rate requests with 2xx" >&2
    fi
    fixed_p50[$name]="$(jq -r '.latencies["50th"] / 1e6' <<<"$report")"
    fixed_p99[$name]="$(jq -r '.latencies["99th"] / 1e6' <<<"$report")"
done

echo
echo "webhook, Deployment with 3 images (355 findings), $CONNECTIONS keep-alive connections, ${SECONDS_PER_RUN} s, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | req/s | p50 | p99 |"
echo "|---|---|---|---|"
for name in helios opa; do
    printf '| %s | %.0f | %.2f ms | %.2f ms |\n' "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}"
done
echo
echo "Helios / OPA throughput: $(ratio "${rps[helios]}" "${rps[opa]}")×  (p99 OPA / Helios: $(ratio "${p99[opa]}" "${p99[helios]}")×)"
echo
echo "At a fixed $rate reviews/s (both servers below saturation), $CONNECTIONS connections, ${SECONDS_PER_RUN} s:"
echo
echo "| server | p50 | p99 |"
echo "|---|---|---|"
for name in helios opa; do
    printf '| %s | %.2f ms | %.2f ms |\n' "$name" "${fixed_p50[$name]}" "${fixed_p99[$name]}"
done
echo
echo "p99 OPA / Helios at that rate: $(ratio "${fixed_p99[opa]}" "${fixed_p99[helios]}")×"
