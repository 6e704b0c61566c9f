#!/bin/sh
# gVisor cell overhead: a no-op cell with CELLOS_CELL_BACKEND=gvisor (no-op event
# sink) against bare `runsc --network=none do /bin/true`, timed with hyperfine;
# then the supervisor's own per-step timings of the gVisor cell (CELLOS_LOG=debug).
# Writes the figures into bench/README.md between the GVISOR markers.
# Target: the cell within 10% of bare runsc.
# Usage: bench/bench-gvisor.sh [RUNS]   (default 40; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-40}
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
SUP=$PWD/build-bench/cellos-supervisor
RUNSC=$(command -v runsc)
work=$(mktemp -d /tmp/cellos-bench-gvisor.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/noop.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-gvisor",
 "authority":{"secretRefs":[]},"lifetime":{"ttlSeconds":60},"run":{"argv":["/bin/true"]}}}
JSON

export CELL_OS_USE_NOOP_SINK=1
# The first cell detects the platform (a trial sandbox) and caches it: not timed.
CELLOS_CELL_BACKEND=gvisor "$SUP" "$work/noop.json"
PLATFORM=$(cut -d' ' -f5 /run/cellos/gvisor/.platform 2>/dev/null || echo "?")
cd "$work"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "cellos-supervisor, CELLOS_CELL_BACKEND=gvisor (/bin/true)" "env CELLOS_CELL_BACKEND=gvisor $SUP $work/noop.json" \
	-n "runsc --network=none do /bin/true" "$RUNSC --network=none do /bin/true" >/dev/null
cd - >/dev/null

i=0
: > "$work/steps.log"
while [ $i -lt "$RUNS" ]; do
	CELLOS_CELL_BACKEND=gvisor CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/steps.log"
	i=$((i + 1))
done

/usr/bin/python3 - "$work/hf.json" "$work/steps.log" bench/README.md "$RUNS" "$PLATFORM" "$($RUNSC --version | head -1)" <<'PY'
import datetime, json, os, platform, re, statistics, sys
hf, steps_log, readme, runs, plat, version = sys.argv[1:7]
res = json.load(open(hf))["results"]
cell, bare = res[0], res[1]
lines = ["Measured %s on %s (%s, %d cores), %s, platform %s, %s runs each:" % (
    datetime.date.today().isoformat(), platform.node(), platform.release(), os.cpu_count(), version, plat, runs), "",
    "| command | median ms | mean ms | stddev ms |", "|---|---:|---:|---:|"]
for r in res:
    lines.append("| %s | %.1f | %.1f | %.1f |" % (r["command"], r["median"] * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3))
ratio = cell["median"] / bare["median"]
lines += ["", "gVisor cell / bare runsc (medians): %.3f (%+.1f%%; target: within +10%%)." % (ratio, (ratio - 1) * 100)]
steps = {}
for l in open(steps_log):
    m = re.search(r"step (\S+): ([0-9.]+) ms", l)
    if m:
        steps.setdefault(m.group(1), []).append(float(m.group(2)))
lines += ["", "Supervisor steps of the gVisor cell (median ms, `CELLOS_LOG=debug`; `create.*` are parts of `create`):", "",
          "| step | median ms |", "|---|---:|"]
for k, v in steps.items():
    lines.append("| %s | %.3f |" % (k, statistics.median(v)))
text = open(readme).read()
start, end = "<!-- GVISOR -->", "<!-- /GVISOR -->"
new = text[:text.index(start) + len(start)] + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]
open(readme, "w").write(new)
print("\n".join(lines))
PY
