#!/bin/sh
# Cell overhead benchmark: a no-op cell (CELLOS_SUBPROCESS_UNSHARE=all, one egress
# rule, no-op sink) side by side with bwrap, unshare and bare exec, timed with
# hyperfine; then the supervisor's own per-step timings (CELLOS_LOG=debug) and peak
# RSS. Writes the figures into bench/README.md between the RESULTS markers.
# Usage: bench/bench.sh [RUNS]   (default 50; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-50}
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
SUP=$PWD/build-bench/cellos-supervisor
work=$(mktemp -d /tmp/cellos-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/noop.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-noop",
 "authority":{"secretRefs":[],"egressRules":[{"host":"192.0.2.10","port":443,"protocol":"tcp"}]},
 "lifetime":{"ttlSeconds":60},"run":{"argv":["/bin/true"]}}}
JSON
# The same cell with run.limits (v1 memory, pids and cpu leaves on hybrid hosts).
cat > "$work/limits.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-limits",
 "authority":{"secretRefs":[],"egressRules":[{"host":"192.0.2.10","port":443,"protocol":"tcp"}]},
 "lifetime":{"ttlSeconds":60},"run":{"argv":["/bin/true"],"limits":{"memoryMaxBytes":268435456,
 "pidsMax":64,"cpuMax":{"quotaMicros":50000,"periodMicros":100000}}}}}
JSON

export CELLOS_SUBPROCESS_UNSHARE=all CELL_OS_USE_NOOP_SINK=1
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "cellos-supervisor (UNSHARE=all, 1 egress rule)" "$SUP $work/noop.json" \
	-n "cellos-supervisor (same, with memory, cpu and pids limits)" "$SUP $work/limits.json" \
	-n "bwrap --unshare-all" "bwrap --ro-bind / / --unshare-all --dev /dev --proc /proc /bin/true" \
	-n "unshare (net,mnt,pid,ipc,uts,cgroup)" "unshare --net --mount --pid --ipc --uts --cgroup --fork --mount-proc /bin/true" \
	-n "bare /bin/true" "/bin/true" >/dev/null
# The fully isolated cell: the same, plus the seccomp baseline (hyperfine -N
# cannot set a variable per command, hence a run of its own).
CELLOS_SECCOMP=baseline hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf2.json" \
	-n "cellos-supervisor (UNSHARE=all, seccomp baseline, 1 egress rule)" "$SUP $work/noop.json" >/dev/null

# Per-step timings from the supervisor's own debug log.
i=0
: > "$work/steps.log"
while [ $i -lt "$RUNS" ]; do
	CELLOS_LOG=debug CELLOS_SECCOMP=baseline "$SUP" "$work/noop.json" 2>>"$work/steps.log"
	i=$((i + 1))
done

/usr/bin/python3 - "$work/hf.json" "$work/steps.log" bench/README.md "$RUNS" <<'PY'
import json, re, statistics, sys, datetime, platform, subprocess
hf, steps_log, readme, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
res = json.load(open(hf))["results"]
res[1:1] = json.load(open(hf.replace("hf.json", "hf2.json")))["results"]
lines = ["Measured %s on %s (%s, %d cores), %s runs each, median:" % (
    datetime.date.today().isoformat(), platform.node(), platform.release(),
    __import__("os").cpu_count(), runs), "",
    "| command | median ms | mean ms | stddev ms |", "|---|---:|---:|---:|"]
for r in res:
    lines.append("| %s | %.2f | %.2f | %.2f |" % (r["command"], r["median"] * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3))
steps, rss = {}, []
for l in open(steps_log):
    m = re.search(r"step (\S+): ([0-9.]+) ms", l)
    if m:
        steps.setdefault(m.group(1), []).append(float(m.group(2)))
    m = re.search(r"peak rss (\d+) kB", l)
    if m:
        rss.append(int(m.group(1)))
lines += ["", "Supervisor steps of the fully isolated cell (median ms over %s runs, from `CELLOS_LOG=debug`; `create.*` are parts of `create`, `cell.*` run in the cell's init in parallel with `create.net`):" % runs, "",
          "| step | median ms |", "|---|---:|"]
for k, v in steps.items():
    lines.append("| %s | %.3f |" % (k, statistics.median(v)))
if rss:
    lines += ["", "Supervisor peak RSS (VmHWM): median %d kB, max %d kB." % (statistics.median(rss), max(rss))]
text = open(readme).read()
start, end = "<!-- RESULTS -->", "<!-- /RESULTS -->"
new = text[:text.index(start) + len(start)] + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]
open(readme, "w").write(new)
print("\n".join(lines))
PY
