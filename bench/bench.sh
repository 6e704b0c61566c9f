#!/bin/sh
# Cell overhead benchmark: the default no-op cell (no variables: all namespaces incl.
# user, seccomp baseline; one egress rule, no-op sink) side by side with bwrap,
# unshare (with and without a user namespace) and bare exec, timed with
# hyperfine; then the supervisor's own per-step timings (CELLOS_LOG=debug) and peak
# RSS; then the sustained throughput with 2 supervisors in parallel
# (bench/throughput.sh, TPUT_CELLS cells, default 1000; 0 skips it). Prints issue
# 15's three ratios and the throughput, and writes the figures into
# bench/README.md between the RESULTS markers.
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

# The default cell: no variable but the no-op sink (all namespaces incl. user, the
# seccomp baseline, the run's own uid), side by side with its peers in one
# hyperfine run. The unshare line with --user is the floor the kernel sets for
# these namespaces (SPEC issue 15's ratios are against it and bwrap).
export CELL_OS_USE_NOOP_SINK=1
unset CELLOS_SUBPROCESS_UNSHARE CELLOS_SECCOMP
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "cellos-supervisor, default cell (no variables; 1 egress rule)" "$SUP $work/noop.json" \
	-n "cellos-supervisor, default cell with memory, cpu and pids limits" "$SUP $work/limits.json" \
	-n "bwrap --unshare-all" "bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true" \
	-n "unshare --user --map-root-user (net,mnt,pid,ipc,uts,cgroup)" "unshare --user --map-root-user --net --mount --pid --ipc --uts --cgroup --fork --mount-proc /bin/true" \
	-n "unshare (net,mnt,pid,ipc,uts,cgroup)" "unshare --net --mount --pid --ipc --uts --cgroup --fork --mount-proc /bin/true" \
	-n "bare /bin/true" "/bin/true" >/dev/null
# What the secure defaults cost: the isolated cell as it was before them (no user
# namespace, no seccomp filter; the workload then runs as the run's uid).
CELLOS_SUBPROCESS_UNSHARE=net,mnt,pid,ipc,uts,cgroup CELLOS_SECCOMP=off \
	hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/hf2.json" \
	-n "cellos-supervisor, UNSHARE=net,mnt,pid,ipc,uts,cgroup, CELLOS_SECCOMP=off" "$SUP $work/noop.json" \
	>/dev/null 2>&1

# Per-step timings of the default cell from the supervisor's own debug log.
i=0
: > "$work/steps.log"
while [ $i -lt "$RUNS" ]; do
	CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/steps.log"
	i=$((i + 1))
done

# Sustained throughput, 2 supervisors in parallel (bench/throughput.sh).
TPUT_CELLS=${TPUT_CELLS:-1000}
if [ "$TPUT_CELLS" -gt 0 ]; then
	./bench/throughput.sh --peers "$TPUT_CELLS" > "$work/tput.txt" || true
fi
export TPUT_OUT="$work/tput.txt"

/usr/bin/python3 - "$work/hf.json" "$work/steps.log" bench/README.md "$RUNS" <<'PY'
import json, re, statistics, sys, datetime, platform, subprocess
hf, steps_log, readme, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
res = json.load(open(hf))["results"]
res += json.load(open(hf.replace("hf.json", "hf2.json")))["results"]
lines = ["Measured %s on %s (%s, %d cores), %s runs each, median:" % (
    datetime.date.today().isoformat(), platform.node(), platform.release(),
    __import__("os").cpu_count(), runs), "",
    "| command | median ms | mean ms | stddev ms |", "|---|---:|---:|---:|"]
for r in res:
    lines.append("| %s | %.2f | %.2f | %.2f |" % (r["command"], r["median"] * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3))
med = {r["command"]: r["median"] for r in res}
cell = med["cellos-supervisor, default cell (no variables; 1 egress rule)"]
nouser = med["cellos-supervisor, UNSHARE=net,mnt,pid,ipc,uts,cgroup, CELLOS_SECCOMP=off"]
ratios = [("default cell / bwrap --unshare-all", cell / med["bwrap --unshare-all"], "<= 0.8"),
          ("default cell / unshare --user (the kernel's floor)",
           cell / med["unshare --user --map-root-user (net,mnt,pid,ipc,uts,cgroup)"], "<= 1.3"),
          ("cell without user namespace or seccomp / unshare without --user",
           nouser / med["unshare (net,mnt,pid,ipc,uts,cgroup)"], "(the same floor without a user namespace)")]
lines += ["", "| ratio of medians | value | target (issue 15) |", "|---|---:|---|"]
lines += ["| %s | %.2f | %s |" % r for r in ratios]
steps, rss = {}, []
for l in open(steps_log):
    m = re.search(r"step (\S+): ([0-9.]+) ms", l)
    if m:
        steps.setdefault(m.group(1), []).append(float(m.group(2)))
    m = re.search(r"peak rss (\d+) kB", l)
    if m:
        rss.append(int(m.group(1)))
lines += ["", "Supervisor steps of the default cell (median ms over %s runs, from `CELLOS_LOG=debug`; `create.*` are parts of `create`, `cell.*` run in the cell's init in parallel with `create.net`):" % runs, "",
          "| step | median ms |", "|---|---:|"]
for k, v in steps.items():
    lines.append("| %s | %.3f |" % (k, statistics.median(v)))
if rss:
    lines += ["", "Supervisor peak RSS (VmHWM): median %d kB, max %d kB (target <= 3072 kB)." % (statistics.median(rss), max(rss))]
import os
tput = os.environ.get("TPUT_OUT")
if tput and os.path.exists(tput):
    lines += ["", "Throughput (`bench/throughput.sh`):", "", "```"] + open(tput).read().rstrip().split("\n") + ["```"]
text = open(readme).read()
start, end = "<!-- RESULTS -->", "<!-- /RESULTS -->"
new = text[:text.index(start) + len(start)] + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]
open(readme, "w").write(new)
print("\n".join(lines))
PY
