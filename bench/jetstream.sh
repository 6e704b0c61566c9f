#!/bin/sh
# JetStream sink benchmark (SPEC §8.4):
#  1. events per second through the supervisor's own event path into JetStream
#     (build-bench/bench-events with CELLOS_NATS_URL: every event published and
#     its ack awaited before the next), unsigned and Ed25519;
#  2. what the sink adds to the no-op cell of bench/bench.sh: hyperfine wall time
#     with the no-op sink and with the JetStream sink, and the supervisor's own
#     account of the time spent in the sink (CELLOS_LOG=debug), part by part:
#     loading libnats, connecting, publishing, closing;
#  3. what linking libnats would cost every supervisor start when NATS is not
#     configured: the no-op cell as built (libnats dlopen()ed only for
#     CELLOS_NATS_URL) against the same binary with libnats and its libraries
#     loaded at start-up (LD_PRELOAD: the dynamic loader's work of linking it).
# A nats-server -js on a free loopback port with a temporary store, killed at exit.
# Writes the figures into bench/README.md between the JETSTREAM markers.
# Usage: bench/jetstream.sh [RUNS] [EVENTS]   (defaults 50 and 5000; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-50}
EVENTS=${2:-5000}
REPS=3
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
BIN=$PWD/build-bench
work=$(mktemp -d /tmp/bench-jetstream.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/store" >"$work/nats.log" 2>&1 &
nats_pid=$!
trap 'kill -9 $nats_pid 2>/dev/null; wait $nats_pid 2>/dev/null; rm -rf "$work"' EXIT
i=0
until grep -q "Server is ready" "$work/nats.log"; do
	i=$((i + 1))
	[ $i -lt 200 ] || { cat "$work/nats.log"; exit 1; }
	sleep 0.05
done
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
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "no-op sink" "env CELL_OS_USE_NOOP_SINK=1 $SUP $work/noop.json" \
	-n "JetStream sink" "env CELLOS_NATS_URL=nats://127.0.0.1:$port $SUP $work/noop.json" \
	-n "no-op sink, libnats loaded at start-up" "env CELL_OS_USE_NOOP_SINK=1 LD_PRELOAD=$LIBNATS $SUP $work/noop.json" \
	>/dev/null
i=0
while [ $i -lt "$RUNS" ]; do
	CELLOS_NATS_URL=nats://127.0.0.1:$port CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/debug.log"
	i=$((i + 1))
done

/usr/bin/python3 - "$work" bench/README.md "$RUNS" "$EVENTS" "$REPS" <<'PY'
import datetime, json, os, platform, re, statistics, sys
work, readme, runs, events, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
names = {"off": "unsigned", "ed25519": "Ed25519"}
rate = {alg: statistics.median(float(re.search(r"([0-9.]+) events/s", l)[1]) for l in open(f"{work}/events-{alg}.txt"))
        for alg in names}
lines = ["Measured %s on %s (%s, %d cores; load average %.1f at the end), nats-server 2.9 on loopback, file "
    "storage, R1." % (datetime.date.today().isoformat(), platform.node(), platform.release(), os.cpu_count(),
                      os.getloadavg()[0]), "",
    "Events through the JetStream sink (%d events of about 700 bytes in one run, each acked before the next, "
    "median of %s runs):" % (events, reps), "",
    "| events | events/s | µs per event |", "|---|---:|---:|"]
for alg, name in names.items():
    lines.append("| %s | %.0f | %.1f |" % (name, rate[alg], 1e6 / rate[alg]))
res = {r["command"]: r for r in json.load(open(f"{work}/hf.json"))["results"]}
base = res["no-op sink"]
lines += ["", "The no-op cell of `bench/bench.sh` (%s runs each, hyperfine -N):" % runs, "",
          "| cell | wall median ms | mean ms | vs no-op sink, ms (median) |", "|---|---:|---:|---:|"]
for label in ("no-op sink", "JetStream sink", "no-op sink, libnats loaded at start-up"):
    r = res[label]
    lines.append("| %s | %.2f | %.2f | %s |" % (label, r["median"] * 1e3, r["mean"] * 1e3,
                                              "" if r is base else "%+.2f" % ((r["median"] - base["median"]) * 1e3)))
parts = {k: [] for k in ("total", "loading libnats", "connecting", "publishing", "closing")}
for m in re.finditer(r"NATS: \d+ events acked.*?; ([0-9.]+) ms in the sink \(loading libnats ([0-9.]+), "
                     r"connecting ([0-9.]+), publishing ([0-9.]+), closing ([0-9.]+)\)", open(f"{work}/debug.log").read()):
    for k, v in zip(parts, m.groups()):
        parts[k].append(float(v))
lines += ["", "Where the supervisor spends that time, by its own account (`CELLOS_LOG=debug`, median over %d runs of "
          "the no-op cell's 7 events; connecting includes starting libnats's threads):" % len(parts["total"]), "",
          "| part | median ms |", "|---|---:|"]
for k, v in parts.items():
    lines.append("| %s | %.3f |" % (k, statistics.median(v)))
text = open(readme).read()
start, end = "<!-- JETSTREAM -->", "<!-- /JETSTREAM -->"
new = text[:text.index(start) + len(start)] + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]
open(readme, "w").write(new)
print("\n".join(lines))
PY
