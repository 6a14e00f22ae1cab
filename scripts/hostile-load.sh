#!/usr/bin/env bash
# Issue 16's measurement (not run in CI): the time a 50,000-container AdmissionReview takes, and
# the latency of a small 3-container review while four of the big ones are in flight.
#
#   cargo build --release -p helios-cli
#   scripts/hostile-load.sh [HELIOS_BINARY]
#
# Starts `helios webhook` on loopback TLS with the shipped default policy and the project's
# scan directory (tests/fixtures/admission-scans), posts the reviews with curl, and prints the
# figures. Needs openssl, curl and python3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}/release/helios}"
port="${HELIOS_LOAD_PORT:-18443}"
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1

python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
def review(n, uid):
    containers = [{"name": f"c{i}", "image": f"app{i % 7}:1"} for i in range(n)]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid,
                        "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": "shop", "name": "p", "operation": "CREATE",
                        "userInfo": {"username": "mallory"},
                        "object": {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": "p"},
                                   "spec": {"containers": containers}}}}
for name, n in [("big", 50000), ("small", 3)]:
    with open(f"{work}/{name}.json", "w") as f:
        json.dump(review(n, name), f, separators=(",", ":"))
EOF
echo "big review: $(wc -c <"$work/big.json") bytes, 50000 containers; small review: 3 containers"

# HELIOS_LOAD_MAX_CONTAINERS=50000 lifts the per-review container limit (builds with
# admission.limits only), to see the deadline and the evaluation pool at work on every container.
config=()
if [ -n "${HELIOS_LOAD_MAX_CONTAINERS:-}" ]; then
  printf 'admission:\n  limits:\n    max_containers: %s\n' "$HELIOS_LOAD_MAX_CONTAINERS" >"$work/helios.yaml"
  config=(--config "$work/helios.yaml")
fi
RUST_LOG=warn "$bin" webhook "${config[@]}" --scan-dir "$root/tests/fixtures/admission-scans" \
  --listen "127.0.0.1:$port" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -ksf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

post() { # FILE -> "seconds http_code"
  curl -ks -o "$work/out.$$.$RANDOM" -w '%{time_total} %{http_code}\n' \
    -H 'content-type: application/json' --data-binary "@$1" \
    "https://127.0.0.1:$port/validate"
}

echo "== one 50,000-container review, alone (3 runs): seconds, HTTP status"
for _ in 1 2 3; do post "$work/big.json"; done

echo "== a 3-container review beside four 50,000-container reviews (5 runs)"
for run in 1 2 3 4 5; do
  pids=()
  for k in 1 2 3 4; do post "$work/big.json" >"$work/big.$run.$k" & pids+=($!); done
  sleep 0.2 # let the big ones arrive first
  echo "small: $(post "$work/small.json")"
  wait "${pids[@]}"
  echo "  the four big ones: $(cat "$work"/big.$run.* | tr '\n' ' ')"
done
echo "== a decision of the big review"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["response"]; print(r["allowed"], (r.get("status") or {}).get("message","")[:300])' \
  "$(ls "$work"/out.* | head -1)" 2>/dev/null || true
