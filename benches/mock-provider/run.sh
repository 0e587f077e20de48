#!/usr/bin/env bash
# The mock provider's throughput, against the machine's ceiling and
# VidaiMock, measured with oha in one run (see BENCHMARKS.md).
#
#   cargo install --locked oha vidaimock     # once
#   benches/mock-provider/run.sh [SECONDS]   # default 10 s per measurement
#
# Each server is pinned to core 0 and oha to core 1 (taskset); 50
# connections, a 2 s warm-up, then three measurements; the median counts.
# Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64}'
for tool in oha vidaimock taskset; do
  command -v "$tool" >/dev/null || { echo "needs $tool (cargo install --locked oha vidaimock)"; exit 2; }
done
cargo build --release -q -p mock-provider --bin mock-provider --example bare

load() { # port seconds -> "requests/s responses"
  taskset -c 1 oha -z "${2}s" -c 50 --no-tui -m POST \
    -H "Authorization: Bearer bench-key-0001" -H "content-type: application/json" \
    -d "$BODY" "http://127.0.0.1:$1/v1/chat/completions" \
    | awk '/Requests\/sec/ {rps=$2} /^ *\[200\]/ {n=$2} /Success rate/ {ok=$3}
           END {if (ok != "100.00%") print "FAILED " ok > "/dev/stderr"; print rps, n}'
}

cpu_ticks() { # pid -> user+system clock ticks so far
  awk '{print $14 + $15}' "/proc/$1/stat"
}

wait_port() {
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open" >&2; exit 1
}

# Every server runs at once (an idle one costs nothing), and the rounds
# interleave them, so a drift in the machine's load hits all alike.
NAMES=(bare-axum mock-provider mock-provider-logging vidaimock)
PORTS=(18091 18090 18093 18092)
PIDS=()
taskset -c 0 target/release/examples/bare 18091 >/dev/null 2>&1 & PIDS+=($!)
taskset -c 0 target/release/mock-provider --scenario benches/mock-provider/zero-latency.toml \
  --port 18090 --log off >/dev/null 2>&1 & PIDS+=($!)
taskset -c 0 target/release/mock-provider --scenario benches/mock-provider/zero-latency.toml \
  --port 18093 --log on >/dev/null 2>&1 & PIDS+=($!)
taskset -c 0 vidaimock --host 127.0.0.1 -p 18092 --workers 1 --mode benchmark >/dev/null 2>&1 & PIDS+=($!)
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
declare -A RUNS PERCPU
TICK=$(getconf CLK_TCK)
for i in "${!NAMES[@]}"; do wait_port "${PORTS[$i]}"; load "${PORTS[$i]}" 2 >/dev/null; done
for round in 1 2 3; do
  for i in "${!NAMES[@]}"; do
    before=$(cpu_ticks "${PIDS[$i]}")
    read -r rps n < <(load "${PORTS[$i]}" "$SECS")
    after=$(cpu_ticks "${PIDS[$i]}")
    RUNS[${NAMES[$i]}]+="$rps "
    # Requests per CPU-second of the server: what it costs, whatever share
    # of the core the machine's other load left it.
    PERCPU[${NAMES[$i]}]+="$(awk -v n="$n" -v t=$((after - before)) -v hz="$TICK" 'BEGIN {printf "%.0f", n / (t / hz)}') "
  done
done
kill "${PIDS[@]}" 2>/dev/null || true
declare -A MEDIAN CPU
for n in "${NAMES[@]}"; do
  MEDIAN[$n]=$(printf '%s\n' ${RUNS[$n]} | sort -n | sed -n 2p)
  CPU[$n]=$(printf '%s\n' ${PERCPU[$n]} | sort -n | sed -n 2p)
  printf '%-24s %8.0f req/s  %8.0f req/CPU-s   (req/s runs: %s; req/CPU-s runs: %s)\n' \
    "$n" "${MEDIAN[$n]}" "${CPU[$n]}" "${RUNS[$n]}" "${PERCPU[$n]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "ratios (req/s | req/CPU-s):"
echo "  mock-provider / bare axum:       $(ratio "${MEDIAN[mock-provider]}" "${MEDIAN[bare-axum]}") | $(ratio "${CPU[mock-provider]}" "${CPU[bare-axum]}")"
echo "  mock-provider (logging) / bare:  $(ratio "${MEDIAN[mock-provider-logging]}" "${MEDIAN[bare-axum]}") | $(ratio "${CPU[mock-provider-logging]}" "${CPU[bare-axum]}")"
echo "  mock-provider / vidaimock:       $(ratio "${MEDIAN[mock-provider]}" "${MEDIAN[vidaimock]}") | $(ratio "${CPU[mock-provider]}" "${CPU[vidaimock]}")"

# 5,000 concurrent streams at the default model speed, for 20 s.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
taskset -c 0 target/release/mock-provider --scenario benches/mock-provider/streams.toml \
  --port 18094 --log off >/dev/null 2>&1 &
pid=$!
wait_port 18094
STREAM='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Tell a story."}],"max_tokens":400,"stream":true}'
echo "5,000 concurrent streams (20 s):"
taskset -c 1 oha -z 20s -c 5000 --no-tui -m POST \
  -H "Authorization: Bearer bench-key-0001" -H "content-type: application/json" \
  -d "$STREAM" http://127.0.0.1:18094/v1/chat/completions \
  | grep -E "Success rate|Requests/sec|Slowest|Fastest|Average|\[[0-9]+\] |Error" || true
kill "$pid"; wait "$pid" 2>/dev/null || true
