#!/usr/bin/env bash
# Soak of the HTTPS webhook (issue 11): a load script, never run in CI.
#
#   scripts/soak.sh [REVIEWS] [DIGESTS] [CONCURRENCY] [WARMUP]    # defaults 100000 20000 64 2000
#
# Two runs of `helios webhook` (release build), each sampled once a second for its resident set
# (VmRSS), its thread count and its scan cache gauge (`helios_scan_cache_entries`), driven by vegeta (scripts/bench/lib.sh builds it) at CONCURRENCY connections, each
# with one review in flight, as fast as answered; the targets are streamed (`-lazy`), so each
# run sends exactly its count:
#
#   1. cached scans: REVIEWS copies of one Deployment review (3 images, 355 findings; the
#      fixtures of scripts/bench/gen.py) with scans from a directory (`--scan-dir`), after a
#      warm-up of WARMUP reviews;
#   2. through the cache (skipped when DIGESTS is 0): DIGESTS reviews of a Pod whose image has a new digest each time (after
#      WARMUP reviews of digests of their own), scans from the Lacework emulator binary
#      (`--lacework`), which knows every one of those digests as scanned without findings (image
#      summaries seeded through its admin API), so every review misses the scan cache, costs one
#      Lacework request and leaves a completed scan in the cache (10 minutes): the cache reaches
#      its bound (10,000 entries) and evicts. Helios's own Lacework budget is raised for the run
#      (`--lacework-requests-per-hour`, default 480) so that it does not refuse lookups, and the
#      review deadline to 10 s (the emulator searches its summaries one by one: on a loaded
#      machine lookups passed the default 2.5 s and reviews failed closed without caching).
#
# Each run prints its status codes, errors, throughput and latencies, the RSS curve (after the
# warm-up, at 25/50/75/100 % of the run's samples, the peak, growth in %), the peak thread count
# and the scan cache's peak size against its bound. Decision logs are on (the default: one JSON
# line per review on stdout, into a file here) and counted.
#
# Environment: HELIOS_BIN (a prebuilt helios), HELIOS_EMULATOR_BIN (a prebuilt
# helios-lacework-emulator), HELIOS_TOOLS_BIN (where vegeta is built).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

REVIEWS="${1:-100000}"
DIGESTS="${2:-20000}"
CONCURRENCY="${3:-64}"
WARMUP="${4:-2000}"


helios="$(bench_helios)"
emulator="${HELIOS_EMULATOR_BIN:-}"
if [[ -z "$emulator" ]] && ((DIGESTS > 0)); then
    emulator="$(bench_release_bin helios-lacework-emulator)"
fi
vegeta="$(bench_go_tool vegeta github.com/tsenart/vegeta/v12 "$VEGETA_VERSION")"

python3 "$ROOT/scripts/bench/gen.py" webhook "$WORK" >/dev/null
bench_cert

# targets KIND COUNT URL [FIRST]: COUNT vegeta JSON targets on stdout; KIND `same` repeats the
# Deployment review, `distinct` makes Pod reviews whose image digest is new each time (digests
# FIRST, FIRST+1, …).
targets() {
    python3 - "$@" "$WORK/review.json" <<'EOF'
import base64, json, sys
kind, count, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
first = int(sys.argv[4]) if len(sys.argv) > 5 else 0
review_file = sys.argv[-1]
header = {"Content-Type": ["application/json"]}
out = sys.stdout
if kind == "summaries":
    # The emulator's image summaries of the distinct digests (scanned, no findings), as JSON
    # arrays of 1,000, one a line (the admin API takes bodies up to 2 MB).
    counts = {f"vulnCount{s}{f}": 0 for s in ("Critical", "High", "Medium", "Low", "Info")
              for f in ("", "Fixable")}
    for start in range(first, first + count, 1000):
        json.dump([{"digest": f"sha256:{i:064x}", "imageId": f"sha256:{i + (1 << 200):064x}",
                    "registry": "registry.example.com", "repository": "soak/app", "tag": "1",
                    "scanStatus": "Success", "containerCount": 1, **counts}
                   for i in range(start, min(start + 1000, first + count))], out)
        out.write("\n")
elif kind == "same":
    body = base64.b64encode(open(review_file, "rb").read()).decode()
    line = json.dumps({"method": "POST", "url": url, "header": header, "body": body}) + "\n"
    for _ in range(count):
        out.write(line)
else:
    for i in range(first, first + count):
        ns = f"soak-{i % 50}"
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": f"soak-{i}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns, "name": f"pod-{i}", "operation": "CREATE",
            "userInfo": {"username": f"user-{i % 50}"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": f"pod-{i}", "namespace": ns},
                       "spec": {"containers": [{"name": "app",
                                "image": f"registry.example.com/soak/app:1@sha256:{i:064x}"}]}}}}
        body = base64.b64encode(json.dumps(review).encode()).decode()
        out.write(json.dumps({"method": "POST", "url": url, "header": header, "body": body}) + "\n")
EOF
}

# attack URL KIND COUNT [FIRST]: streamed targets, CONCURRENCY connections; vegeta's JSON report.
attack() {
    targets "$2" "$3" "$1" ${4:+"$4"} |
        "$vegeta" attack -lazy -format=json -rate=0 -workers="$CONCURRENCY" \
            -max-workers="$CONCURRENCY" -connections="$CONCURRENCY" \
            -max-connections="$CONCURRENCY" -http2=false -keepalive=true -insecure \
            -timeout=10s |
        "$vegeta" report -type=json
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
threads() { awk '/^Threads/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# cache_gauge PORT NAME: a `helios_scan_cache_NAME` gauge of the webhook on PORT.
cache_gauge() {
    curl -sk --max-time 2 "https://127.0.0.1:$1/metrics" |
        awk -v m="helios_scan_cache_$2" '$1 == m { print $2 }'
}

# sample PID PORT FILE: once a second until PID ends, a line into FILE: the time, VmRSS (kB),
# threads and the scan cache's entries of the webhook PID listening on PORT.
sample() {
    while kill -0 "$1" 2>/dev/null; do
        echo "$(date +%s) $(rss_kb "$1") $(threads "$1") $(cache_gauge "$2" entries)" >>"$3"
        sleep 1
    done
}

# decision_logs PORT NAME SENT: decision log lines written (after the writer caught up) and drops.
decision_logs() {
    sleep 3
    local dropped
    dropped="$(curl -sk "https://127.0.0.1:$1/metrics" | awk '/decision_logs_total\{outcome="dropped"\}/ { print $2 }')"
    echo "decision log lines: $(wc -l <"$WORK/$2.decisions") of $3 reviews, dropped (queue full): ${dropped:-?}"
}


# summary NAME REPORT RSS_FILE BASELINE_KB PID COUNT PORT
summary() {
    local name="$1" report="$2" rss="$3" base="$4" pid="$5" count="$6" port="$7"
    local peak end
    peak="$(awk -v b="$base" 'BEGIN { m = b } $2 > m { m = $2 } END { print m }' "$rss")"
    end="$(rss_kb "$pid")"
    echo
    echo "== $name"
    # With -lazy each worker ends on one "no targets to attack" pseudo-request: not an error.
    jq -r --argjson n "$count" '"reviews \($n), answered 200: \(.status_codes["200"] // 0), errors: \($n - (.status_codes["200"] // 0)) \([.errors[] | select(. != "no targets to attack")][:3] | tojson)",
           "throughput \(.throughput | floor) req/s, p50 \(.latencies["50th"] / 1e6) ms, p99 \(.latencies["99th"] / 1e6) ms, max \(.latencies.max / 1e6) ms"' <<<"$report"
    echo "RSS after warm-up $((base / 1024)) MiB, peak $((peak / 1024)) MiB, end $((end / 1024)) MiB; growth after warm-up: $(awk -v b="$base" -v e="$end" 'BEGIN { printf "%+.1f%%", (e - b) * 100 / b }') (peak $(awk -v b="$base" -v p="$peak" 'BEGIN { printf "%+.1f%%", (p - b) * 100 / b }')); $(wc -l <"$rss") samples"
    # The curve: the sample at each quarter of the run (by sample count), against the warm-up.
    awk -v b="$base" '{ rss[NR] = $2; th = $3 > th ? $3 : th }
        END {
            printf "RSS curve (MiB): warm-up end %.1f", b / 1024
            for (q = 1; q <= 4; q++) {
                i = int(NR * q / 4 + 0.5); if (i < 1) i = 1
                printf ", %d%% %.1f (%+.1f%%)", q * 25, rss[i] / 1024, (rss[i] - b) * 100 / b
            }
            printf "; threads peak %d\n", th
        }' "$rss"
    local bound
    bound="$(cache_gauge "$port" max_entries)"
    echo "scan cache: peak $(awk '$4 != "" && $4 > m { m = $4 } END { print m + 0 }' "$rss") entries, end $(cache_gauge "$port" entries) (bound ${bound:-?})"
}

echo "soak: $REVIEWS cached reviews and $DIGESTS distinct digests at concurrency $CONCURRENCY, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# soak_run NAME KIND COUNT TITLE [WEBHOOK FLAGS...]: one run. A webhook with the given flags
# (decision log into NAME.decisions, its log into NAME.log), WARMUP reviews of KIND (distinct
# digests numbered from COUNT on, so they are not counted ones), then COUNT reviews sampled
# and summed up under TITLE. Sets `pid` (the webhook, still running) and `port`.
soak_run() {
    local name="$1" kind="$2" count="$3" title="$4" url report base
    shift 4
    port="$(free_port)"
    "$helios" webhook --listen "127.0.0.1:$port" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" \
        --no-resolve --mode enforce "$@" >"$WORK/$name.decisions" 2>"$WORK/$name.log" &
    pid=$!
    PIDS+=("$pid")
    bench_wait_ready webhook "https://127.0.0.1:$port/readyz" "$WORK/$name.log"
    url="https://127.0.0.1:$port/validate"
    attack "$url" "$kind" "$WARMUP" "$count" >/dev/null
    base="$(rss_kb "$pid")"
    sample "$pid" "$port" "$WORK/$name.rss" &
    PIDS+=($!)
    report="$(attack "$url" "$kind" "$count" 0)"
    summary "$title" "$report" "$WORK/$name.rss" "$base" "$pid" "$count" "$port"
    decision_logs "$port" "$name" "$((WARMUP + count))"
}

# 1. Cached scans from a directory.
soak_run cached same "$REVIEWS" "1. $REVIEWS reviews, cached scans (scan dir)" --scan-dir "$WORK/scans"
kill "$pid"
((DIGESTS > 0)) || exit 0

# 2. Distinct digests through the cache, scans from the Lacework emulator.
"$emulator" --port 0 --rate-limit 100000000 --scan-duration-ms 50 >"$WORK/emulator.json" 2>"$WORK/emulator.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s "$WORK/emulator.json" ]] && break; sleep 0.1; done
emu_url="$(jq -r .url "$WORK/emulator.json")"
targets summaries "$((WARMUP + DIGESTS))" - 0 |
    while IFS= read -r chunk; do
        printf '%s' "$chunk" | curl -sSf -o /dev/null -H 'Content-Type: application/json' \
            --data-binary @- "$emu_url/__admin/summaries"
    done
# One summary search per digest and a token now and then: four requests per review is ample.
budget="$((4 * (WARMUP + DIGESTS) + 1000))"
LW_ACCOUNT="$emu_url" LW_API_KEY="$(jq -r .key_id "$WORK/emulator.json")" \
    LW_API_SECRET="$(jq -r .secret "$WORK/emulator.json")" \
    soak_run distinct distinct "$DIGESTS" \
    "2. $DIGESTS distinct digests through the scan cache (Lacework emulator, budget $budget requests/hour)" \
    --lacework --lacework-requests-per-hour "$budget" --deadline-ms 10000
echo "verdicts: $(jq -r .result.verdict "$WORK/distinct.decisions" | sort | uniq -c | tr '\n' ' ')"
echo "Lacework emulator calls: $(curl -s "$emu_url/__admin/counters" | jq -c .)"
