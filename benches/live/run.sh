#!/usr/bin/env bash
# The live driver at 10,000 requests/s open-loop against the mock provider
# at zero latency, beside oha's open-loop reference in the same setup (see
# BENCHMARKS.md, "Live driver").
#
#   cargo install --locked oha      # once
#   benches/live/run.sh [SECONDS]   # default 5 s per measurement
#
# The mock provider is pinned to core 0 and the load generator (stormglass
# live, then oha with -q 10000 --latency-correction) to core 1. Only
# loopback addresses are used; both runs are bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
PORT=18095
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64}'
for tool in oha taskset; do
  command -v "$tool" >/dev/null || { echo "needs $tool (cargo install --locked oha)"; exit 2; }
done
cargo build --release -q -p mock-provider -p stormglass

serve() {
  taskset -c 0 target/release/mock-provider --scenario benches/live/10k.toml --port "$PORT" --log off >/dev/null 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $PORT did not open" >&2; exit 1
}
trap 'kill $SERVER 2>/dev/null || true' EXIT

serve
out=$(mktemp -d)
taskset -c 1 timeout $((SECS + 60)) target/release/stormglass live benches/live/10k.toml \
  --target "http://127.0.0.1:$PORT" --duration "${SECS}s" --out "$out" >/dev/null
python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, l = r["strategies"][0], r["live"]["strategies"][0]
a = s["latency"]["all"]
ms = lambda ns: f"{ns / 1e6:.2f} ms"
print(f"stormglass live: {s['requests']} requests, success {s['success_rate'] * 100:.2f}%, "
      f"latency p50 {a['p50_us'] / 1000:.2f} ms p99 {a['p99_us'] / 1000:.2f} ms; "
      f"schedule lag p50 {ms(l['schedule_lag_p50_ns'])} p99 {ms(l['schedule_lag_p99_ns'])} "
      f"max {ms(l['schedule_lag_max_ns'])}")
PY
kill $SERVER; wait $SERVER 2>/dev/null || true

serve
taskset -c 1 oha -z "${SECS}s" -q 10000 --latency-correction -c 50 --no-tui -m POST \
  -H "Authorization: Bearer bench-key-0001" -H "content-type: application/json" \
  -d "$BODY" "http://127.0.0.1:$PORT/v1/chat/completions" \
  | awk '/Success rate/ {ok=$3} /Requests\/sec/ {rps=$2} /50.00% in/ {p50=$3" "$4} /99.00% in/ {p99=$3" "$4}
         END {print "oha -q 10000 --latency-correction: " rps " requests/s, success " ok ", latency p50 " p50 " p99 " p99}'
