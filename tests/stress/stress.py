#!/usr/bin/python3
"""Stress: many cells of every outcome, one after the other and several at once,
then proof that the host is exactly as it was before (SPEC §4 destroy: "Nothing
survives the run").

    /usr/bin/python3 tests/stress/stress.py [--cells N] [--jobs J] [--only-mine]

As root. Half the cells run sequentially, the other half J at a time; their kinds
rotate through success, failure, timeout, OOM, fork bomb, CPU quota, spawn
failure, a setsid daemon left behind, and a supervisor stopped by SIGTERM or
killed by SIGKILL (the next supervisor must clean up after that one), with
CELLOS_SUBPROCESS_UNSHARE rotating through the default (all) / 0 / mnt,net,ipc.

Snapshot before and after: processes (every one whose command line names cellos
or this run's marker: supervisors, cell inits, workloads and their children all
carry one), host mounts, cgroup directories named cellos-* in every hierarchy,
host nft tables, /run/netns, /tmp/cellos-*, /run/cellos/runs. They must be
identical. --only-mine restricts the cellos-named objects to this run's cells (for
a development host where other people's cells come and go); CI runs it strict.
Exit 0 when every cell ended as expected and nothing changed, 1 otherwise.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"
MARK = "cellstress" + uuid.uuid4().hex[:10]
MiB = 1024 * 1024

SLEEP = "import sys, time\nprint('up', flush=True)\ntime.sleep(30)\n"
HOG = "b = bytearray(256 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
FORK_BOMB = ("import os, sys, time\nn = 0\nwhile n < 300:\n    try:\n        pid = os.fork()\n"
             "    except OSError:\n        sys.exit(n)\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
             "    n += 1\nsys.exit(120)\n")
BUSY = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.2:\n    pass\n"
DAEMON = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"


def py(code):
    return [PY, "-c", code, MARK]


# kind -> (argv, run fields, expected exit status, expected destroyed.reason, what to do to the supervisor)
KINDS = {
    "success": (["/usr/bin/true", MARK], {}, 0, None, None),
    "failure": (["/bin/sh", "-c", "exit 3", MARK], {}, 3, "nonzero_exit", None),
    "timeout": (py(SLEEP), {"timeoutMs": 150}, 124, "timeout", None),
    "oom": (py(HOG), {"limits": {"memoryMaxBytes": 32 * MiB}}, 137, "oom", None),
    "fork-bomb": (py(FORK_BOMB), {"limits": {"pidsMax": 16}}, 15, "nonzero_exit", None),
    "cpu-quota": (py(BUSY), {"limits": {"cpuMax": {"quotaMicros": 20000}}}, 0, None, None),
    "spawn-failure": (["/nonexistent/prog", MARK], {}, 127, "spawn_failed", None),
    "daemon": (py(DAEMON), {}, 0, None, None),
    "sigterm": (py(SLEEP), {}, 128 + signal.SIGTERM, "supervisor_terminated", signal.SIGTERM),
    "sigkill": (py(SLEEP), {"limits": {"memoryMaxBytes": 64 * MiB, "pidsMax": 32}}, -signal.SIGKILL, None,
                signal.SIGKILL),
}
# "" is the default (all namespaces incl. user), "0" explicit host mode (the
# workload as the run's uid), "mnt,net,ipc" a list without user (pid follows mnt).
UNSHARE = ["", "0", "mnt,net,ipc"]


# --------------------------------------------------------------------------- host snapshot


def cgroup_mounts():
    out = []
    for line in open("/proc/self/mountinfo"):
        parts = line.split()
        if parts[parts.index("-") + 1] in ("cgroup", "cgroup2"):
            out.append(parts[4])
    return out


def cellos_cgroups():
    found = set()
    for mnt in cgroup_mounts():
        for dirpath, dirnames, _ in os.walk(mnt):
            for d in dirnames:
                # `cellos-supervisor` is the one shared, structural leaf a pure v2
                # host may get (docs/DESIGN.md): not per run.
                if d.startswith("cellos-") and d != "cellos-supervisor":
                    found.add(os.path.join(dirpath, d))
            dirnames[:] = [d for d in dirnames if not d.startswith("cellos-")]
    return found


def processes():
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            raw = open(f"/proc/{name}/cmdline", "rb").read()
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        if cmd and ("cellos" in cmd or MARK in cmd):
            procs[int(name)] = cmd
    return procs


def listing(path, prefix=""):
    try:
        return {n for n in os.listdir(path) if n.startswith(prefix)}
    except FileNotFoundError:
        return set()


def snapshot():
    nft = subprocess.run(["/usr/sbin/nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return {
        "processes": processes(),
        "mounts": sorted(re.sub(r"^\d+ \d+ ", "", l) for l in open("/proc/self/mountinfo").read().splitlines()),
        "cgroups": cellos_cgroups(),
        "nft tables": sorted(nft.splitlines()),
        "/run/netns": listing("/run/netns"),
        "/tmp/cellos-*": listing("/tmp", "cellos-"),
        "/run/cellos/runs": listing("/run/cellos/runs"),
        # Per-run host uids (SPEC §3): every allocation is released, or swept
        # after a SIGKILLed supervisor.
        "/run/cellos/uids": listing("/run/cellos/uids"),
    }


def compare(before, after, only_mine):
    """Every difference, as text. --only-mine ignores cellos-named objects of other runs."""
    mine = (lambda s: MARK in s) if only_mine else (lambda s: True)
    problems = []
    for key in before:
        b, a = before[key], after[key]
        if isinstance(b, dict):
            b, a = {f"{p} {c}" for p, c in b.items()}, {f"{p} {c}" for p, c in a.items()}
        b, a = set(b), set(a)
        if key in ("processes", "cgroups", "/tmp/cellos-*", "/run/cellos/runs"):
            b, a = {x for x in b if mine(x)}, {x for x in a if mine(x)}
        if a != b:
            problems.append(f"{key} changed: new={sorted(a - b)[:10]} gone={sorted(b - a)[:10]}")
    return problems


# --------------------------------------------------------------------------- running cells


def spec(cell_id, kind):
    argv, run, _, _, _ = KINDS[kind]
    return {"apiVersion": "cellos.io/v1", "kind": "ExecutionCell",
            "spec": {"id": cell_id, "authority": {"secretRefs": []}, "lifetime": {"ttlSeconds": 60},
                     "run": dict(run, argv=argv)}}


def events(path):
    try:
        return [json.loads(l) for l in open(path, "rb").read().split(b"\n") if l.strip()]
    except FileNotFoundError:
        return []


def run_one(sup, work, i, kind):
    """Run cell number i; returns a problem description or None, and the elapsed time."""
    cell_id = f"{MARK}-{kind}-{i}"
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-{i}-", dir=work))
    spec_path, jsonl = d / "spec.json", d / "events.jsonl"
    spec_path.write_text(json.dumps(spec(cell_id, kind)))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CELL_OS_JSONL_EVENTS": str(jsonl),
           "CELLOS_SUBPROCESS_UNSHARE": UNSHARE[i % len(UNSHARE)]}
    _, _, want_rc, want_reason, action = KINDS[kind]
    t0 = time.monotonic()
    p = subprocess.Popen([sup, str(spec_path)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=d)
    if action:
        deadline = time.monotonic() + 20
        while not any(e["type"].endswith("process_spawned") for e in events(jsonl)):
            if time.monotonic() > deadline or p.poll() is not None:
                break
            time.sleep(0.005)
        p.send_signal(action)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return f"{cell_id}: supervisor hung; stderr: {err[-300:]!r}", time.monotonic() - t0
    took = time.monotonic() - t0
    evs = events(jsonl)
    types = [e["type"].rsplit(".", 3)[-3] + "." + e["type"].rsplit(".", 1)[-1] for e in evs]
    why = None
    if p.returncode != want_rc:
        why = f"exit {p.returncode}, want {want_rc}"
    elif action != signal.SIGKILL:
        last = evs[-1] if evs else {}
        if not last.get("type", "").endswith("lifecycle.v1.destroyed"):
            why = f"last event is not destroyed: {types}"
        elif last["data"].get("reason") != want_reason:
            why = f"destroyed.reason {last['data'].get('reason')!r}, want {want_reason!r}"
        elif kind == "oom":
            c = [e for e in evs if e["type"].endswith("command.v1.completed")][0]["data"]
            if (c["exitCode"], c.get("termSignal")) != (137, 9):
                why = f"command.completed {c}"
    return (f"{cell_id} [{env['CELLOS_SUBPROCESS_UNSHARE'] or 'default'}]: {why}; stderr: "
            f"{err.decode(errors='replace')[-300:]!r}" if why else None), took


def wait_unmarked(timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(MARK in c for c in processes().values()):
            return
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=200, help="number of cells (default 200)")
    ap.add_argument("--jobs", type=int, default=4, help="cells at once in the parallel half (default 4)")
    ap.add_argument("--supervisor", default=os.environ.get("CELLOS_SUPERVISOR") or str(REPO / "build/cellos-supervisor"))
    ap.add_argument("--only-mine", action="store_true", help="ignore other runs' cellos objects (shared hosts)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("stress.py: must run as root (namespaces, cgroups, nftables)")
    if not os.access(a.supervisor, os.X_OK):
        sys.exit(f"stress.py: no supervisor at {a.supervisor}: run make")

    work = tempfile.mkdtemp(prefix=MARK + "-")
    # Settle first: a supervisor removes what earlier dead ones left, and that
    # must not count as a change made by this run.
    settle, _ = run_one(a.supervisor, work, -1, "success")
    if settle:
        print("FAIL run:", settle)
        return 1
    before = snapshot()
    kinds = list(KINDS)
    plan = [(i, kinds[i % len(kinds)]) for i in range(a.cells)]
    seq, par = plan[: a.cells // 2], plan[a.cells // 2:]
    t0 = time.monotonic()
    results = [run_one(a.supervisor, work, i, k) for i, k in seq]
    t_seq = time.monotonic() - t0
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        results += list(pool.map(lambda ik: run_one(a.supervisor, work, *ik), par))
    t_all = time.monotonic() - t0

    # Cells of SIGKILLed supervisors die with them, asynchronously; the next
    # supervisor removes what they left: run one more, as a user would.
    wait_unmarked(10)
    sweep = run_one(a.supervisor, work, a.cells, "success")
    subprocess.run(["rm", "-rf", work], check=True)
    after = snapshot()

    problems = [why for why, _ in results + [sweep] if why]
    residue = compare(before, after, a.only_mine)
    per_kind = {}
    for (i, k), (_, took) in zip(plan, results):
        per_kind.setdefault(k, []).append(took)
    print(f"stress: {a.cells} cells ({len(seq)} sequential in {t_seq:.1f} s, {len(par)} {a.jobs} at a time "
          f"in {t_all - t_seq:.1f} s), marker {MARK}")
    for k, ts in per_kind.items():
        ts.sort()
        print(f"  {k:14} {len(ts):4} cells, median {ts[len(ts) // 2] * 1000:7.1f} ms, max {ts[-1] * 1000:7.1f} ms")
    for p in problems[:20]:
        print("FAIL run:", p)
    for p in residue:
        print("FAIL residue:", p)
    if problems or residue:
        print(f"stress: FAILED ({len(problems)} runs wrong, {len(residue)} residue kinds)")
        return 1
    print("stress: ok: every cell ended as expected; processes, mounts, cgroups, nft tables, /run/netns, "
          "/tmp/cellos-*, /run/cellos/runs as before")
    return 0


if __name__ == "__main__":
    sys.exit(main())
