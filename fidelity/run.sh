#!/usr/bin/env bash
# Sim against live for a window of each bundled scenario (FIDELITY.md).
#
# `run` simulates a whole scenario, so each window is written out as a
# scenario of its own: the same file with [run] duration = the window, no
# warm-up, and the incidents (and runaway loops) moved back by the
# window's start. Both modes
# then run that file from time zero, one strategy, live against
# mock-provider (--serve). Figures go to target/fidelity/<name>/{sim,live}.
#
# Usage: fidelity/run.sh [NAME...]   (default: all six)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/stormglass
out=target/fidelity
mkdir -p "$out"
ln -sfn ../../scenarios/catalog "$out/catalog"

# name  from(s)  window(s)  strategy
windows="retry-storm 225 90 full-jitter
provider-outage 690 90 fallback-breaker
slow-provider 570 90 latency
slow-tail 0 60 hedge-p95
runaway-loop 3585 60 daily-alert
layered-retries 105 90 app-gateway-sdk"

want="${*:-retry-storm provider-outage slow-provider slow-tail runaway-loop layered-retries}"
while read -r name from window strategy; do
  [[ " $want " == *" $name "* ]] || continue
  python3 - "$name" "$from" "$window" "$out" <<'PY'
import re, sys
name, start, window, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def secs(v):
    n = {"s": 1, "m": 60, "h": 3600}
    return sum(int(a) * n[u] for a, u in re.findall(r"(\d+)([smh])", v))
text = open(f"scenarios/{name}.toml").read()
out_lines, section = [], ""
for line in text.splitlines():
    m = re.match(r"\s*\[\[?([\w.]+)\]\]?", line)
    if m:
        section = m.group(1)
    if section == "run" and re.match(r"duration\s*=", line):
        line = f'duration = "{window}s"'
    elif section == "run" and re.match(r"warmup\s*=", line):
        line = 'warmup = "0s"'
    elif section in ("incident", "traffic.runaway"):
        s = re.match(r'(\s*)start\s*=\s*"([^"]+)"', line)
        if s:
            line = f'{s.group(1)}start = "{max(0, secs(s.group(2)) - start)}s"'
    out_lines.append(line)
open(f"{out}/{name}.toml", "w").write("\n".join(out_lines) + "\n")
PY
  "$bin" run "$out/$name.toml" --no-exemplars --out "$out/$name/sim" >/dev/null
  "$bin" live "$out/$name.toml" --serve --strategy "$strategy" --out "$out/$name/live" >/dev/null
  python3 - "$out/$name" "$strategy" <<'PY'
import json, sys
d, strat = sys.argv[1], sys.argv[2]
pick = lambda p: next(s for s in json.load(open(p))["strategies"] if s["name"] == strat)
s, l = pick(f"{d}/sim/report.json"), pick(f"{d}/live/report.json")
lag = json.load(open(f"{d}/live/report.json"))["live"]["strategies"][0]
def row(k, a, b, fmt):
    print(f"| {k} | {fmt(a)} | {fmt(b)} |")
print(f"\n{d.split('/')[-1]} / {strat}\n\n| figure | sim | live |\n|---|---|---|")
row("requests", s["requests"], l["requests"], str)
row("success", s["success_rate"], l["success_rate"], lambda x: f"{100*x:.2f}%")
row("attempts/request", s["amplification"], l["amplification"], lambda x: f"{x:.3f}")
for q in ["p50_us", "p90_us", "p99_us"]:
    row(q[:-3], s["latency"]["all"][q], l["latency"]["all"][q], lambda x: f"{x/1000:.0f} ms")
row("cost USD", s["cost"]["nano_usd"], l["cost"]["nano_usd"], lambda x: f"{x/1e9:.4f}")
fails = sorted(set(k for k, v in s["failures"].items() if v) | set(k for k, v in l["failures"].items() if v))
for k in fails:
    row(f"failed: {k}", s["failures"][k], l["failures"][k], str)
for k in ["hedges", "hedge_wins", "breaker_opens", "cost_downgraded"]:
    if s.get(k) or l.get(k):
        row(k, s[k], l[k], str)
if s["alerts"] or l["alerts"]:
    row("cost alerts fired", len(s["alerts"]), len(l["alerts"]), str)
print(f"\nschedule lag: {json.dumps({k: v for k, v in lag.items() if 'lag' in k})}")
PY
done <<< "$windows"
