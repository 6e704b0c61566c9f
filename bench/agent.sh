#!/bin/sh
# cellos-agent benchmark (SPEC §11):
#  1. cells per second end to end through the JetStream queue (publish -> every
#     run's lifecycle.v1.destroyed in the events) with 1, 2 and 4 agents on this
#     host, each with CELLOS_AGENT_MAX_CELLS=2, without and with warm cells
#     (CELLOS_AGENT_WARM=2), side by side with the same no-op cells run by
#     cellos-supervisor in a shell loop (same configuration: events to
#     JetStream and to a JSONL file);
#  2. job latency, submit -> observability.v1.process_spawned, p50 and p90, one
#     job at a time with an idle agent, cold and with a warm cell free.
# The cell is the default isolated no-op cell (/bin/true, every namespace).
# A nats-server -js on a free loopback port with a temporary store, killed at exit.
# Writes the figures into bench/README.md between the AGENT markers.
#  3. the CPU time per cell: agents, supervisors and cells (their rusage), and
#     nats-server's, so that figures of a loaded host can be read against it.
#  4. what the JetStream sink adds to a no-op cell run by the agent, one cell at
#     a time: through the agent's relay (default), with CELLOS_AGENT_RELAY=0
#     (each supervisor its own connection) and with CELL_OS_USE_NOOP_SINK=1,
#     interleaved rounds; wall and CPU ms per cell, nats-server CPU per cell.
#     Written between the AGENT-SINK markers.
#  5. a burst that warm cells were ready for: BURST jobs published at once to one
#     agent (CELLOS_AGENT_MAX_CELLS=4) with BURST warm cells ready, against the
#     same burst cold, interleaved rounds; cells/s and the whole machine's CPU per
#     job. Written between the AGENT-BURST markers.
# Usage: bench/agent.sh [JOBS] [LATENCY_JOBS]   (defaults 300 and 40; needs root)
#        bench/agent.sh sink [JOBS] [ROUNDS]     (4. alone; defaults 300 and 6)
#        bench/agent.sh burst [BURST] [ROUNDS]   (5. alone; defaults 60 and 6)
set -eu
cd "$(dirname "$0")/.."
MODE=all
if [ "${1:-}" = sink ] || [ "${1:-}" = burst ]; then
	MODE=$1
	shift
fi
JOBS=${1:-300}
LJOBS=${2:-40}
ROUNDS=6
BURST=60
[ $MODE = sink ] && ROUNDS=${2:-6}
[ $MODE = burst ] && BURST=${1:-60} && ROUNDS=${2:-6}
make -s B=build-bench all >/dev/null
BIN=$PWD/build-bench
work=$(mktemp -d /tmp/bench-agent.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/store" >"$work/nats.log" 2>&1 &
nats_pid=$!
export NATS_PID=$nats_pid
trap 'kill -9 $nats_pid 2>/dev/null; wait $nats_pid 2>/dev/null || true; rm -rf "$work"' EXIT
URL=nats://127.0.0.1:$port
i=0
until CELLOS_NATS_URL=$URL "$BIN/cellctl" queue init >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 50 ] || { echo "nats-server did not start" >&2; exit 1; }
	sleep 0.1
done

# Put the text of file $2 between bench/README.md's markers <!-- $1:START -->
# and <!-- $1:END --> (appended with them where they are missing).
readme_section() {
	/usr/bin/python3 - bench/README.md "$1" "$2" <<'PY'
import sys
path, name, sec = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(path).read()
start, end = f"<!-- {name}:START -->", f"<!-- {name}:END -->"
block = f"{start}\n{sec}{end}"
if start in text:
    text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
PY
}

# bench_section NAME LABEL MODE ARG...: run agent_bench.py MODE ARG..., turn
# its JSON into a README block (a "Run ..." line naming `bench/agent.sh LABEL`,
# then what the Python program on stdin prints from the JSON file), write it
# between NAME's markers and print it.
bench_section() {
	name=$1 label=$2 mode=$3
	shift 3
	/usr/bin/python3 bench/agent_bench.py "$mode" "$URL" "$BIN" "$@" "$work" </dev/null | tee "$work/$mode.json"
	printf 'Run %s UTC on %s (load average %s at the end), `bench/agent.sh %s`: ' \
		"$(date -u '+%Y-%m-%d %H:%M')" "$(hostname)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$label" >"$work/$mode.md"
	/usr/bin/python3 - "$work/$mode.json" >>"$work/$mode.md"
	readme_section "$name" "$work/$mode.md"
	cat "$work/$mode.md"
}

# 4. The sink through the relay, against the supervisor's own connection and
# against no JetStream sink.
sink_section() {
	bench_section AGENT-SINK "sink $JOBS $ROUNDS" sink "$JOBS" "$ROUNDS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"one agent, CELLOS_AGENT_MAX_CELLS=1, {r['jobs_per_round']} no-op cells per round and configuration, "
      f"{r['rounds']} interleaved rounds, medians over rounds; in brackets the difference to the no-op sink, and "
      f"(last column) the median of each round's own difference to it.\n")
print("| no-op cell through the agent | wall ms per cell | CPU ms per cell (agent, supervisors, cells) | nats-server CPU ms per cell | added wall ms, paired by round |")
print("|---|---|---|---|---|")
base = r["no-op sink"]
for name in ("no-op sink", "relay", "own connection"):
    x = r[name]
    d = "" if name == "no-op sink" else f" ({x['ms_per_cell'] - base['ms_per_cell']:+.2f})"
    dc = "" if name == "no-op sink" else f" ({x['cpu_ms_per_cell'] - base['cpu_ms_per_cell']:+.2f})"
    dn = "" if name == "no-op sink" else f" ({x['nats_cpu_ms_per_cell'] - base['nats_cpu_ms_per_cell']:+.2f})"
    label = {"no-op sink": "CELL_OS_USE_NOOP_SINK=1", "relay": "JetStream through the agent's relay (default)",
             "own connection": "JetStream, CELLOS_AGENT_RELAY=0 (own connection)"}[name]
    dp = "" if name == "no-op sink" else f"{x['added_ms_paired']:+.2f}"
    print(f"| {label} | {x['ms_per_cell']}{d} | {x['cpu_ms_per_cell']}{dc} | {x['nats_cpu_ms_per_cell']}{dn} | {dp} |")
PY
}

# 5. A burst through warm cells, against the same burst cold.
burst_section() {
	bench_section AGENT-BURST "burst $BURST $ROUNDS" burst "$BURST" "$ROUNDS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"one agent, CELLOS_AGENT_MAX_CELLS=4, {r['jobs']} no-op isolated cells published at once, {r['rounds']} "
      "interleaved rounds, medians over rounds. CPU: the whole machine's, per job, while the burst ran. "
      "Middle 80%: the rate between the 10th and the 90th percentile of the cells' ends (the burst under way).\n")
print("| a burst of no-op cells | cells/s | middle 80%, cells/s | CPU ms per job | rounds, cells/s |")
print("|---|---:|---:|---:|---|")
for k, label in (("warm", f"{r['jobs']} warm cells ready (CELLOS_AGENT_WARM={r['jobs']})"), ("cold", "no warm cell")):
    x = r[k]
    print(f"| {label} | {x['cells_per_s']} | {x['middle_cells_per_s']} | {x['cpu_ms_per_job']} | "
          f"{', '.join(map(str, x['rounds_cells_per_s']))} |")
PY
}
if [ $MODE = sink ]; then
	sink_section
	exit 0
fi
if [ $MODE = burst ]; then
	burst_section
	exit 0
fi

res=$work/results
: >"$res"
for warm in 0 2; do
	for n in 1 2 4; do
		/usr/bin/python3 bench/agent_bench.py throughput "$URL" "$BIN" "$JOBS" "$n" "$warm" 2 "$work" | tee -a "$res"
	done
done

# The same cells, one supervisor after another (agent_bench.py loop: a loop of
# cellos-supervisor processes, as a shell loop runs them, timing CPU too).
/usr/bin/python3 bench/agent_bench.py loop "$URL" "$BIN" "$JOBS" "$work" | tee -a "$res"

for warm in 0 1; do
	/usr/bin/python3 bench/agent_bench.py latency "$URL" "$BIN" "$LJOBS" "$warm" "$work" | tee -a "$res"
done

# The README section.
sec=$work/section
/usr/bin/python3 - "$res" "$JOBS" "$LJOBS" >"$sec" <<'PY'
import json, sys, platform, datetime
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tp = {(r["agents"], r["warm"]): r for r in rows if "agents" in r}
loop = [r for r in rows if r.get("loop")][0]
lat = {r["warm"]: r for r in rows if "p50_ms" in r}
load = open("/proc/loadavg").read().split()[:3]
print(f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()} "
      f"({open('/proc/cpuinfo').read().count('processor')} CPUs, load average {' '.join(load)} at the end), "
      f"`bench/agent.sh {sys.argv[2]} {sys.argv[3]}`, optimised build, one nats-server -js on loopback, each agent "
      "CELLOS_AGENT_MAX_CELLS=2, events to JetStream and a JSONL file. CPU: ms per cell of agents, supervisors "
      "and cells / of nats-server.\n")
def cell(r):
    return f"{r['cells_per_s']} ({r['cpu_ms_per_cell']} / {r['nats_cpu_ms_per_cell']} ms CPU)"
print("| cells/s (no-op isolated cell) | 1 agent | 2 agents | 4 agents |")
print("|---|---|---|---|")
print(f"| through the queue, cold | {cell(tp[(1,0)])} | {cell(tp[(2,0)])} | {cell(tp[(4,0)])} |")
print(f"| through the queue, CELLOS_AGENT_WARM=2 | {cell(tp[(1,2)])} | {cell(tp[(2,2)])} | {cell(tp[(4,2)])} |")
print(f"| loop of cellos-supervisor | {cell(loop)} | | |")
print()
print("| job latency, submit -> process_spawned | p50 | p90 |")
print("|---|---|---|")
print(f"| cold (fresh supervisor) | {lat[0]['p50_ms']} ms | {lat[0]['p90_ms']} ms |")
print(f"| a warm cell free | {lat[1]['p50_ms']} ms | {lat[1]['p90_ms']} ms |")
PY
readme_section AGENT "$sec"
cat "$sec"
sink_section
burst_section
