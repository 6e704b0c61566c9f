#!/bin/sh
# JetStream sink benchmark (SPEC §8.4):
#  1. events per second through the supervisor's own event path into JetStream
#     (build-bench/bench-events with CELLOS_NATS_URL: publishes pipelined, the
#     time includes closing the sink, i.e. waiting for the last acks), unsigned
#     and Ed25519;
#  2. what the sink adds to the no-op cell of bench/bench.sh: hyperfine -N wall
#     time with the no-op sink and with the JetStream sink, in ROUNDS rounds (the
#     host is shared: each round runs both cells, and the figure is the median of
#     the rounds' differences of medians), the same two cells interleaved run by
#     run, PAIRS pairs (the median of the paired differences: on a loaded host
#     a run varies by tens of ms, so it takes ~1000 pairs to resolve 1 ms), and
#     the supervisor's own account of
#     the time spent in the sink (CELLOS_LOG=debug), part by part: connecting
#     (the sink's set-up at admission: no network), publishing (emit: queueing;
#     the flushes before waiting: connecting and sending), closing (the rest,
#     and the last acks);
#  3. what linking libnats would cost every supervisor start when NATS is not
#     configured: the no-op cell as built (libnats dlopen()ed only for
#     CELLOS_NATS_URL with TLS or credentials) against the same binary with libnats and its libraries
#     loaded at start-up (LD_PRELOAD: the dynamic loader's work of linking it).
# A nats-server -js on a free loopback port with a temporary store, killed at exit.
# Writes the figures into bench/README.md between the JETSTREAM markers.
# Usage: bench/jetstream.sh [RUNS] [EVENTS] [ROUNDS] [PAIRS]   (defaults 20, 5000, 10, 1000; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-20}
EVENTS=${2:-5000}
ROUNDS=${3:-10}
PAIRS=${4:-1000}
REPS=3
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
BIN=$PWD/build-bench
work=$(mktemp -d /tmp/bench-jetstream.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/store" >"$work/nats.log" 2>&1 &
nats_pid=$!
trap 'kill -9 $nats_pid 2>/dev/null; wait $nats_pid 2>/dev/null || true; rm -rf "$work"' EXIT
i=0
until grep -q "Server is ready" "$work/nats.log"; do
	i=$((i + 1))
	[ $i -lt 200 ] || { cat "$work/nats.log"; exit 1; }
	sleep 0.05
done
cut -d' ' -f1 /proc/loadavg > "$work/load-start"
export CELLOS_NATS_URL=nats://127.0.0.1:$port
"$BIN/cellctl" queue init >/dev/null

"$BIN/cellctl" keygen --kid bench > "$work/key"
SEED=$(sed -n 1p "$work/key")
sign_env() {
	case $1 in
	off) echo "CELLOS_EVENT_SIGNING=off" ;;
	ed25519) echo "CELLOS_EVENT_SIGNING=ed25519 CELLOS_EVENT_SIGNING_KID=bench CELLOS_EVENT_SIGNING_KEY_BASE64=$SEED" ;;
	esac
}

# 1. Events per second (median of REPS).
for alg in off ed25519; do
	i=0
	while [ $i -lt $REPS ]; do
		# shellcheck disable=SC2046
		env $(sign_env $alg) "$BIN/bench-events" "$EVENTS" >> "$work/events-$alg.txt"
		i=$((i + 1))
	done
done

# 2. and 3. The no-op cell of bench/bench.sh.
cat > "$work/noop.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-noop",
 "authority":{"secretRefs":[],"egressRules":[{"host":"192.0.2.10","port":443,"protocol":"tcp"}]},
 "lifetime":{"ttlSeconds":60},"run":{"argv":["/bin/true"]}}}
JSON
SUP=$BIN/cellos-supervisor
LIBNATS=$(/sbin/ldconfig -p | awk '/libnats\.so\.3\.4 .*x86-64/ {print $NF; exit}')
[ -n "$LIBNATS" ] || LIBNATS=/usr/lib/x86_64-linux-gnu/libnats.so.3.4
unset CELLOS_NATS_URL
r=0
while [ $r -lt "$ROUNDS" ]; do
	hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf-$r.json" \
		-n "no-op sink" "env CELL_OS_USE_NOOP_SINK=1 $SUP $work/noop.json" \
		-n "JetStream sink" "env CELLOS_NATS_URL=nats://127.0.0.1:$port $SUP $work/noop.json" \
		-n "no-op sink, libnats loaded at start-up" "env CELL_OS_USE_NOOP_SINK=1 LD_PRELOAD=$LIBNATS $SUP $work/noop.json" \
		>/dev/null
	r=$((r + 1))
done
# The same two cells interleaved run by run (random order in each pair), for
# paired differences that a shared host's drift between rounds cannot fake.
/usr/bin/python3 - "$SUP" "$work/noop.json" "nats://127.0.0.1:$port" "$PAIRS" > "$work/paired.json" <<'PY'
import json, os, random, subprocess, sys, time
sup, doc, url, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = {"PATH": os.environ["PATH"]}
cells = {"no-op sink": dict(base, CELL_OS_USE_NOOP_SINK="1"), "JetStream sink": dict(base, CELLOS_NATS_URL=url)}
out = {k: [] for k in cells}
for _ in range(n):
    for k in random.sample(list(cells), 2):
        t = time.perf_counter()
        subprocess.run([sup, doc], env=cells[k], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out[k].append((time.perf_counter() - t) * 1e3)
json.dump(out, sys.stdout)
PY
load_end=$(cut -d' ' -f1 /proc/loadavg)
i=0
while [ $i -lt "$RUNS" ]; do
	CELLOS_NATS_URL=nats://127.0.0.1:$port CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/debug.log"
	i=$((i + 1))
done

load_start=$(cat "$work/load-start")
/usr/bin/python3 - "$work" bench/README.md "$RUNS" "$EVENTS" "$REPS" "$ROUNDS" "$load_start" "$load_end" <<'PY'
import datetime, glob, json, os, platform, re, statistics, sys
work, readme, runs, events, reps, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
load_start, load_end = float(sys.argv[7]), float(sys.argv[8])
names = {"off": "unsigned", "ed25519": "Ed25519"}
rate = {alg: statistics.median(float(re.search(r"([0-9.]+) events/s", l)[1]) for l in open(f"{work}/events-{alg}.txt"))
        for alg in names}
lines = ["Measured %s on %s (%s, %d cores; load average %.1f at the start, %.1f at the end), nats-server 2.9 on "
    "loopback, file storage, R1." % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), platform.node(),
                                     platform.release(), os.cpu_count(), load_start, load_end), "",
    "Events through the JetStream sink (%d events of about 700 bytes in one run, publishes pipelined, the time "
    "includes the last acks; median of %s runs):" % (events, reps), "",
    "| events | events/s | µs per event |", "|---|---:|---:|"]
for alg, name in names.items():
    lines.append("| %s | %.0f | %.1f |" % (name, rate[alg], 1e6 / rate[alg]))
labels = ("no-op sink", "JetStream sink", "no-op sink, libnats loaded at start-up")
per_round = []
for f in sorted(glob.glob(f"{work}/hf-*.json")):
    per_round.append({r["command"]: r["median"] * 1e3 for r in json.load(open(f))["results"]})
lines += ["", "The no-op cell of `bench/bench.sh`, hyperfine -N, %d rounds of %s runs of each cell (wall median ms "
          "per round; the last column is the median over the rounds of the difference to the no-op sink of the "
          "same round):" % (rounds, runs), "",
          "| cell | " + " | ".join("round %d" % (i + 1) for i in range(len(per_round))) + " | vs no-op sink, ms |",
          "|---|" + "---:|" * (len(per_round) + 1)]
for label in labels:
    meds = [r[label] for r in per_round]
    delta = "" if label == labels[0] else "%+.2f" % statistics.median(r[label] - r[labels[0]] for r in per_round)
    lines.append("| %s | %s | %s |" % (label, " | ".join("%.2f" % m for m in meds), delta))
paired = json.load(open(f"{work}/paired.json"))
a, b = paired["no-op sink"], paired["JetStream sink"]
lines += ["", "The same two cells interleaved, %d pairs (each pair in random order; wall time of the run from Python, "
          "so about 1 ms of its own is in both):" % len(a), "",
          "| cell | median ms | mean ms |", "|---|---:|---:|",
          "| no-op sink | %.2f | %.2f |" % (statistics.median(a), statistics.mean(a)),
          "| JetStream sink | %.2f | %.2f |" % (statistics.median(b), statistics.mean(b))]
d = sorted(y - x for x, y in zip(a, b))
# A distribution-free 95% interval of the median (binomial order statistics).
k = int(len(d) / 2 - 1.96 * len(d) ** 0.5 / 2)
lines += ["", "Median of the paired differences (JetStream sink minus no-op sink): **%+.2f ms** (95%% interval of the "
          "median %+.2f to %+.2f ms); the difference of the medians: %+.2f ms." % (
              statistics.median(d), d[max(k, 0)], d[min(len(d) - 1 - k, len(d) - 1)],
              statistics.median(b) - statistics.median(a))]
parts = {k: [] for k in ("total", "connecting", "publishing", "closing")}
for m in re.finditer(r"NATS: \d+ events acked.*?; ([0-9.]+) ms in the sink \(loading libnats [0-9.]+, "
                     r"connecting ([0-9.]+), publishing ([0-9.]+), closing ([0-9.]+)\)", open(f"{work}/debug.log").read()):
    for k, v in zip(parts, m.groups()):
        parts[k].append(float(v))
lines += ["", "Where the supervisor spends that time, by its own account (`CELLOS_LOG=debug`, median over %d runs of "
          "the no-op cell's 7 events; wall time in the sink's calls, so a busy host inflates it):" % len(parts["total"]),
          "", "| part | median ms |", "|---|---:|"]
for k, v in parts.items():
    lines.append("| %s | %.3f |" % (k, statistics.median(v)))
text = open(readme).read()
start, end = "<!-- JETSTREAM -->", "<!-- /JETSTREAM -->"
new = text[:text.index(start) + len(start)] + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]
open(readme, "w").write(new)
print("\n".join(lines))
PY
