#!/bin/sh
# Signed-event benchmark (SPEC §9):
#  1. events signed and written per second through the supervisor's own event path
#     (build-bench/bench-events: envelope, canonical form, chain, signature, JSONL
#     sink with CELL_OS_JSONL_FSYNC=none), unsigned / Ed25519 / HMAC-SHA256, and
#     how fast `cellctl verify` checks the Ed25519 log;
#  2. what signing adds to the foundation bench's no-op cell
#     (CELLOS_SUBPROCESS_UNSHARE=all, one egress rule, no-op sink): the
#     supervisor's own account of the time it spent deriving the key and signing
#     (CELLOS_LOG=debug), and hyperfine's wall time with and without signing.
# Writes the figures into bench/README.md between the SIGNING markers.
# Usage: bench/bench-signing.sh [RUNS] [EVENTS]   (defaults 50 and 20000; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-50}
EVENTS=${2:-20000}
REPS=5
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
BIN=$PWD/build-bench
work=$(mktemp -d /tmp/bench-signing.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$BIN/cellctl" keygen --kid bench > "$work/key"
SEED=$(sed -n 1p "$work/key")
sed -n 2p "$work/key" > "$work/keys.json"
HMAC=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
sign_env() {
	case $1 in
	off) echo "CELLOS_EVENT_SIGNING=off" ;;
	ed25519) echo "CELLOS_EVENT_SIGNING=ed25519 CELLOS_EVENT_SIGNING_KID=bench CELLOS_EVENT_SIGNING_KEY_BASE64=$SEED" ;;
	hmac) echo "CELLOS_EVENT_SIGNING=hmac CELLOS_EVENT_SIGNING_KID=bench CELLOS_EVENT_SIGNING_KEY_BASE64=$HMAC" ;;
	esac
}

# 1. Events per second (median of REPS), and the verifier on the Ed25519 log.
for alg in off ed25519 hmac; do
	i=0
	while [ $i -lt $REPS ]; do
		rm -f "$work/$alg.jsonl"
		# shellcheck disable=SC2046
		env $(sign_env $alg) CELL_OS_JSONL_EVENTS="$work/$alg.jsonl" CELL_OS_JSONL_FSYNC=none \
			"$BIN/bench-events" "$EVENTS" >> "$work/events-$alg.txt"
		i=$((i + 1))
	done
done
t0=$(date +%s%N)
"$BIN/cellctl" verify "$work/ed25519.jsonl" --keys "$work/keys.json" 2>/dev/null
t1=$(date +%s%N)
echo "$EVENTS $(( (t1 - t0) / 1000 ))" > "$work/verify.txt"

# 2. The no-op cell of bench/bench.sh, with and without signing.
cat > "$work/noop.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-noop",
 "authority":{"secretRefs":[],"egressRules":[{"host":"192.0.2.10","port":443,"protocol":"tcp"}]},
 "lifetime":{"ttlSeconds":60},"run":{"argv":["/bin/true"]}}}
JSON
export CELLOS_SUBPROCESS_UNSHARE=all CELL_OS_USE_NOOP_SINK=1
SUP=$BIN/cellos-supervisor
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "no-op cell, unsigned" "env $(sign_env off) $SUP $work/noop.json" \
	-n "no-op cell, Ed25519" "env $(sign_env ed25519) $SUP $work/noop.json" \
	-n "no-op cell, HMAC-SHA256" "env $(sign_env hmac) $SUP $work/noop.json" >/dev/null
for alg in ed25519 hmac; do
	i=0
	while [ $i -lt "$RUNS" ]; do
		# shellcheck disable=SC2046
		env $(sign_env $alg) CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/debug-$alg.log"
		i=$((i + 1))
	done
done

/usr/bin/python3 - "$work" bench/README.md "$RUNS" "$EVENTS" "$REPS" <<'PY'
import datetime, json, os, platform, re, statistics, sys
work, readme, runs, events, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
names = {"off": "unsigned", "ed25519": "Ed25519", "hmac": "HMAC-SHA256"}
rate = {}
for alg in names:
    rate[alg] = statistics.median(float(re.search(r"([0-9.]+) events/s", l)[1])
                                  for l in open(f"{work}/events-{alg}.txt"))
n, us = map(int, open(f"{work}/verify.txt").read().split())
lines = ["Measured %s on %s (%s, %d cores)." % (datetime.date.today().isoformat(), platform.node(),
                                                 platform.release(), os.cpu_count()), "",
         "Events signed and written per second (%d events of about 700 bytes in one run, JSONL sink with "
         "`CELL_OS_JSONL_FSYNC=none`, median of %s):" % (events, reps), "",
         "| events | events/s | µs per event | added by signing, µs per event |", "|---|---:|---:|---:|"]
for alg, name in names.items():
    extra = "" if alg == "off" else "%.1f" % (1e6 / rate[alg] - 1e6 / rate["off"])
    lines.append("| %s | %.0f | %.1f | %s |" % (name, rate[alg], 1e6 / rate[alg], extra))
lines += ["", "`cellctl verify` checked the Ed25519 log (%d events) in %.2f s: %.0f events/s." % (
    n + 1, us / 1e6, (n + 1) / (us / 1e6))]
res = {r["command"]: r for r in json.load(open(f"{work}/hf.json"))["results"]}
base = res["no-op cell, unsigned"]["median"]
lines += ["", "What signing adds to the no-op cell of `bench/bench.sh` (`CELLOS_SUBPROCESS_UNSHARE=all`, one egress "
          "rule, no-op sink), %s runs:" % runs, "",
          "| cell | wall median ms | vs unsigned, ms | signing in the supervisor, median ms (events) |",
          "|---|---:|---:|---:|"]
for label, alg in (("no-op cell, unsigned", None), ("no-op cell, Ed25519", "ed25519"),
                   ("no-op cell, HMAC-SHA256", "hmac")):
    inproc = ""
    if alg:
        vals, counts = [], []
        for l in open(f"{work}/debug-{alg}.log"):
            m = re.search(r"events: (\d+) emitted.*signing ([0-9.]+) ms", l)
            if m:
                counts.append(int(m[1]))
                vals.append(float(m[2]))
        inproc = "%.3f (%d)" % (statistics.median(vals), statistics.median(counts))
    r = res[label]
    lines.append("| %s | %.2f | %s | %s |" % (label.replace("no-op cell, ", ""), r["median"] * 1e3,
                                               "" if not alg else "%+.2f" % ((r["median"] - base) * 1e3), inproc))
lines += ["", "The supervisor's own figure (from `CELLOS_LOG=debug`: deriving the key, signing and wrapping every "
          "event) is the precise one; the wall-time difference is the same thing seen through the noise of "
          "process start-up and namespace creation."]
text = open(readme).read()
start, end = "<!-- SIGNING -->", "<!-- /SIGNING -->"
new = text[:text.index(start) + len(start)] + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]
open(readme, "w").write(new)
print("\n".join(lines))
PY
