"""SPEC §2 run.limits, §3 CELLOS_CGROUP_PARENT / CELLOS_CGROUP_CPU_MAX, §6.1, §7, §8.1:
memory, CPU and process limits through the cell's cgroup leaves (v2, and the v1
controllers of hybrid hosts), OOM reported as such, whole-cell resource usage, and
no leaf left behind by any run, a SIGKILLed supervisor's included."""
import base64
import errno
import os
import shlex
import signal
import subprocess
import time
import uuid

import pytest

from conftest import (MARK, SUPERVISOR, Result, Running, assert_no_residue, host_snapshot, make_spec,
                      marked_processes, prepare, py_argv, run_cell, supervisor_env, unique_id, wait_no_marked)

MiB = 1024 * 1024

# A memory hog: touches 256 MiB page by page.
HOG = "b = bytearray(256 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint('survived')\n"

# Forks sleeping children until fork fails; exits with how many it got. Bounded
# (300) so that a limit that failed to apply cannot hurt the host.
FORK_BOMB = r"""
import os, sys, time
n = 0
while n < 300:
    try:
        pid = os.fork()
    except OSError as e:
        print("fork failed:", e.errno, "after", n, flush=True)
        sys.exit(n if e.errno == 11 else 121)
    if pid == 0:
        time.sleep(100)
        os._exit(0)
    n += 1
print("fork never failed", flush=True)
sys.exit(120)
"""

# Spins for `sys.argv[1]` seconds of wall time.
BUSY = "import sys, time\nt = time.monotonic()\nwhile time.monotonic() - t < float(sys.argv[1]):\n    pass\n"
# Burns `sys.argv[1]` seconds of CPU time, however long that takes on a busy host.
BURN = "import sys, time\nwhile time.process_time() < float(sys.argv[1]):\n    pass\n"

SLEEPER = "import sys, time\nprint('up', flush=True)\ntime.sleep(float(sys.argv[1]))\n"


# --------------------------------------------------------------------------- helpers


def cgroup_mounts() -> list[tuple[str, str, set]]:
    """(mount point, fstype, controllers) of every cgroup hierarchy we can see."""
    out = []
    for line in open("/proc/self/mountinfo"):
        parts = line.split()
        sep = parts.index("-")
        fstype = parts[sep + 1]
        if fstype in ("cgroup", "cgroup2"):
            ctrls = set(parts[sep + 3].split(",")) if fstype == "cgroup" else set()
            out.append((parts[4], fstype, ctrls))
    return out


def v1_mount(ctrl: str):
    for mnt, fstype, ctrls in cgroup_mounts():
        if fstype == "cgroup" and ctrl in ctrls:
            return mnt
    return None


def v2_mount() -> str:
    mounts = [m for m, t, _ in cgroup_mounts() if t == "cgroup2"]
    assert mounts, "no cgroup2 hierarchy mounted"
    return min(mounts, key=len)


def hybrid() -> bool:
    return v1_mount("memory") is not None


def own_cgroup_dir(ctrl: str | None) -> str:
    """The supervisor's (= this test's) cgroup directory in the v2 (ctrl None) or a v1 hierarchy."""
    for line in open("/proc/self/cgroup"):
        hid, ctrls, path = line.rstrip("\n").split(":", 2)
        if (ctrl is None and hid == "0") or (ctrl and ctrl in ctrls.split(",")):
            mnt = v2_mount() if ctrl is None else v1_mount(ctrl)
            return mnt + ("" if path == "/" else path)
    raise AssertionError(f"no {ctrl or 'v2'} line in /proc/self/cgroup")


def leaves_named(name: str) -> list[str]:
    """Every cgroup directory called `name`, in every hierarchy, at any depth."""
    found = []
    for mnt, _, _ in cgroup_mounts():
        for dirpath, dirnames, _ in os.walk(mnt):
            for d in dirnames:
                if d == name:
                    found.append(os.path.join(dirpath, d))
            dirnames[:] = [d for d in dirnames if not d.startswith("cellos-")]
    return sorted(found)


def leaf_name(cell_id: str, run_id: str) -> str:
    return f"cellos-{cell_id}-{run_id[:8]}"


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def limits_of(r: Result) -> dict:
    return r.event("lifecycle.v1.started")["data"]["isolation"].get("limits")


def completed(r: Result) -> dict:
    return r.event("command.v1.completed")["data"]


def destroyed(r: Result) -> dict:
    return r.event("lifecycle.v1.destroyed")["data"]


def run_wrapped(prefix: list[str], spec, env=None, timeout=30) -> Result:
    """Run the supervisor under `prefix` (e.g. a private mount namespace)."""
    d, spec_path, jpath = prepare(spec)
    t0 = time.monotonic()
    p = subprocess.run(prefix + [str(SUPERVISOR), str(spec_path)], env=supervisor_env(env, jpath),
                       capture_output=True, timeout=timeout, cwd=d, stdin=subprocess.DEVNULL)
    return Result(p.returncode, p.stdout, p.stderr, jpath, spec_path, time.monotonic() - t0)


def read_only(*mounts: str) -> list[str]:
    """A prefix running the supervisor in a private mount namespace where `mounts`
    are read-only: a host whose cgroup hierarchies cannot be written."""
    script = "set -e\n" + "".join(f"mount -o remount,bind,ro {shlex.quote(m)}\n" for m in mounts) + 'exec "$@"\n'
    return ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"]


def hardened_env(**extra) -> dict:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = {"CELLOS_DEPLOYMENT_PROFILE": "hardened", "CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline",
           "CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "limits-test",
           "CELLOS_EVENT_SIGNING_KEY_BASE64": key}
    env.update(extra)
    return env


def inner(ev: dict) -> dict:
    """The event itself, signed or not."""
    return ev["data"]["event"] if ev.get("type", "").endswith("signed_envelope.v1") else ev


@pytest.fixture
def cgroup_dirs():
    """Make cgroup directories for a test (CELLOS_CGROUP_PARENT), removed afterwards."""
    made = []

    def mk(path):
        os.mkdir(path)
        made.append(path)
        return path

    yield mk
    for path in reversed(made):
        for d in os.listdir(path):
            if os.path.isdir(os.path.join(path, d)):
                os.rmdir(os.path.join(path, d))
        os.rmdir(path)


UNSHARE = pytest.mark.parametrize("unshare", ["all", ""], ids=["unshare-all", "no-namespaces"])


# --------------------------------------------------------------------------- memory


@UNSHARE
def test_memory_hog_is_oom_killed(no_residue, unshare):
    limit = 64 * MiB
    r = run_cell(make_spec(py_argv(HOG, MARK), run_extra={"limits": {"memoryMaxBytes": limit}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 137, r
    assert "survived" not in r.out
    c = completed(r)
    assert c["exitCode"] == 137 and c["termSignal"] == 9 and c["timedOut"] is False, c
    # The peak is the cell's (its cgroup's), the figure memoryMaxBytes bounds.
    assert limit * 0.9 <= c["resourceUsage"]["maxRssBytes"] <= limit, c["resourceUsage"]
    d = destroyed(r)
    assert d["outcome"] == "failed" and d["reason"] == "oom", d
    assert limits_of(r) == {"memoryMaxBytes": limit, "applied": True}
    assert r.types[-1] == "lifecycle.v1.destroyed"


def test_oom_of_a_child_fails_the_cell_as_oom(no_residue):
    # The shell survives its child's OOM kill and reports 137 itself.
    hog = shlex.quote(HOG)
    r = run_cell(make_spec(["/bin/sh", "-c", f"{shlex.quote('/usr/bin/python3')} -c {hog}; exit $?", MARK],
                           run_extra={"limits": {"memoryMaxBytes": 48 * MiB}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 137, r
    c = completed(r)
    assert c["exitCode"] == 137 and "termSignal" not in c, c
    assert destroyed(r)["reason"] == "oom"


def test_workload_within_its_memory_limit_succeeds(no_residue):
    code = "b = bytearray(24 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint('ok')\n"
    r = run_cell(make_spec(py_argv(code, MARK), run_extra={"limits": {"memoryMaxBytes": 96 * MiB}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert r.out.strip() == "ok"
    usage = completed(r)["resourceUsage"]
    assert 24 * MiB <= usage["maxRssBytes"] < 96 * MiB, usage
    d = destroyed(r)
    assert d["outcome"] == "succeeded" and "reason" not in d, d


def test_memory_limit_below_the_cells_own_needs_is_refused(no_residue):
    r = run_cell(make_spec(["/usr/bin/true", MARK], run_extra={"limits": {"memoryMaxBytes": 4096}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 125, r
    assert "run.limits.memoryMaxBytes" in r.err, r.err
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["phase"] == "create" and "run.limits.memoryMaxBytes" in f["message"], f
    assert not r.has("lifecycle.v1.started")


# --------------------------------------------------------------------------- pids


@UNSHARE
def test_fork_bomb_is_contained(no_residue, unshare):
    marker = unique_id("forkbomb")
    r = run_cell(make_spec(py_argv(FORK_BOMB, marker), run_extra={"limits": {"pidsMax": 64}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare}, timeout=60)
    # pidsMax counts the workload's processes (the cell's own init is not one of
    # them): the main process and 63 children.
    assert f"fork failed: {errno.EAGAIN} after 63" in r.out, r
    assert r.rc == 63, r
    assert limits_of(r) == {"pidsMax": 64, "applied": True}
    assert destroyed(r)["reason"] == "nonzero_exit"
    # The 63 sleeping children died with the cell.
    left, _ = wait_no_marked(marker, 5)
    assert not left, left


def test_threads_count_against_pids_max(no_residue):
    code = ("import threading, time, sys\nn = 0\ntry:\n    for _ in range(100):\n"
            "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n        n += 1\n"
            "except RuntimeError:\n    pass\nprint(n, flush=True)\nsys.exit(0)\n")
    r = run_cell(make_spec(py_argv(code, MARK), run_extra={"limits": {"pidsMax": 10}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert r.out.strip() == "9", r.out  # main thread + 9


# --------------------------------------------------------------------------- cpu


def cpu_ms(r: Result) -> int:
    u = completed(r)["resourceUsage"]
    return u["userCpuMs"] + u["sysCpuMs"]


def test_cpu_quota_throttles_a_busy_loop(no_residue):
    r = run_cell(make_spec(py_argv(BUSY, "1.0", MARK),
                           run_extra={"limits": {"cpuMax": {"quotaMicros": 20000, "periodMicros": 100000}}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    wall = completed(r)["durationMs"]
    assert wall >= 1000
    # 20% of one CPU for ~1 s (plus the interpreter's start-up, also throttled).
    assert cpu_ms(r) < 0.4 * wall, (cpu_ms(r), wall)
    assert limits_of(r) == {"cpuMax": {"quotaMicros": 20000, "periodMicros": 100000}, "applied": True}


def test_cpu_usage_is_measured(no_residue):
    # The counterpart of the test above: the measure itself is sound.
    r = run_cell(make_spec(py_argv(BURN, "0.5", MARK)), env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert 500 <= cpu_ms(r) <= completed(r)["durationMs"] * os.cpu_count(), completed(r)
    assert limits_of(r) is None


def test_resource_usage_covers_the_whole_cell(no_residue):
    # A grandchild the main process never waits for (it is orphaned) burns 0.5 s
    # of CPU while the main process blocks on a pipe; wait4 of the main process
    # would report almost nothing.
    code = ("import os, time\nr, w = os.pipe()\nif os.fork() == 0:\n    if os.fork() == 0:\n"
            "        while time.process_time() < 0.5:\n            pass\n        os.write(w, b'x')\n"
            "    os._exit(0)\nos.wait()\nos.read(r, 1)\n")
    r = run_cell(make_spec(py_argv(code, MARK)), env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert cpu_ms(r) >= 500, completed(r)["resourceUsage"]


def test_cgroup_cpu_max_env_used_when_spec_is_silent(no_residue):
    r = run_cell(make_spec(py_argv(BUSY, "1.0", MARK)),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_CGROUP_CPU_MAX": "20000 100000"})
    assert r.rc == 0, r
    assert limits_of(r) == {"cpuMax": {"quotaMicros": 20000, "periodMicros": 100000}, "applied": True}
    assert cpu_ms(r) < 0.4 * completed(r)["durationMs"], completed(r)


def test_spec_cpu_max_wins_over_the_env(no_residue):
    r = run_cell(make_spec(["/usr/bin/true", MARK],
                           run_extra={"limits": {"cpuMax": {"quotaMicros": 150000, "periodMicros": 50000}}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_CGROUP_CPU_MAX": "20000 100000"})
    assert r.rc == 0, r
    assert limits_of(r) == {"cpuMax": {"quotaMicros": 150000, "periodMicros": 50000}, "applied": True}


def test_cpu_quota_below_the_kernel_minimum_is_raised(no_residue):
    r = run_cell(make_spec(["/usr/bin/true", MARK], run_extra={"limits": {"cpuMax": {"quotaMicros": 10}}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert limits_of(r) == {"cpuMax": {"quotaMicros": 1000, "periodMicros": 100000}, "applied": True}
    assert "raised to 1000" in r.err, r.err


@pytest.mark.parametrize("value", ["20000 100", "20000 2000000"])
def test_cgroup_cpu_max_period_out_of_the_kernels_range(value):
    r = run_cell(make_spec(["/usr/bin/true"]), env={"CELLOS_CGROUP_CPU_MAX": value})
    assert r.rc == 125, r
    assert "CELLOS_CGROUP_CPU_MAX" in r.err and not r.events


# --------------------------------------------------------------------------- the leaves


def check_leaves(leaves: list[str], pid: int, memory=None, pids=None, cpu=None):
    """Every limit is in the leaf of its controller, and `pid` is in every leaf."""
    seen = set()
    for leaf in leaves:
        assert str(pid) in read(os.path.join(leaf, "cgroup.procs")).split(), (leaf, pid)
        f = lambda n: os.path.join(leaf, n)  # noqa: E731
        if os.path.exists(f("memory.limit_in_bytes")) and memory:
            assert int(read(f("memory.limit_in_bytes"))) == memory
            if os.path.exists(f("memory.memsw.limit_in_bytes")):
                assert int(read(f("memory.memsw.limit_in_bytes"))) == memory
            seen.add("memory")
        if os.path.exists(f("memory.max")) and memory:
            assert int(read(f("memory.max"))) == memory
            seen.add("memory")
        if os.path.exists(f("pids.max")) and pids:
            assert read(f("pids.max")) == str(pids + 1)  # and one for the cell's init
            seen.add("pids")
        if os.path.exists(f("cpu.cfs_quota_us")) and cpu:
            assert (int(read(f("cpu.cfs_quota_us"))), int(read(f("cpu.cfs_period_us")))) == cpu
            seen.add("cpu")
        if os.path.exists(f("cpu.max")) and cpu:
            assert read(f("cpu.max")) == f"{cpu[0]} {cpu[1]}"
            seen.add("cpu")
    want = {k for k, v in (("memory", memory), ("pids", pids), ("cpu", cpu)) if v}
    assert seen == want, (seen, want, leaves)


def start_sleeper(cell_id, env, limits, seconds="30"):
    run = Running(make_spec(py_argv(SLEEPER, seconds, MARK), id=cell_id, run_extra={"limits": limits}), env=env)
    spawned = run.wait_event("observability.v1.process_spawned")
    started = [e for e in run.events() if e["type"].endswith("lifecycle.v1.started")][0]
    return run, leaf_name(cell_id, started["data"]["runId"]), spawned["data"]["pid"], started


@UNSHARE
def test_limits_are_written_into_the_leaves_of_every_hierarchy(no_residue, unshare):
    cell_id = unique_id("leaves")
    limits = {"memoryMaxBytes": 80 * MiB, "pidsMax": 20, "cpuMax": {"quotaMicros": 30000, "periodMicros": 60000}}
    run, name, pid, started = start_sleeper(cell_id, {"CELLOS_SUBPROCESS_UNSHARE": unshare}, limits)
    try:
        leaves = leaves_named(name)
        if hybrid():
            # The v2 leaf, and memory, pids, cpu on v1.
            assert len(leaves) == 4, leaves
            for ctrl in ("memory", "pids", "cpu"):
                assert os.path.join(own_cgroup_dir(ctrl), name) in leaves, (ctrl, leaves)
        assert started["data"]["isolation"]["cgroup"] == os.path.join(own_cgroup_dir(None), name)
        assert started["data"]["isolation"]["limits"]["applied"] is True
        check_leaves(leaves, pid, memory=80 * MiB, pids=20, cpu=(30000, 60000))
        run.proc.send_signal(signal.SIGTERM)
        r = run.finish()
    finally:
        run.kill()
    assert r.rc == 128 + signal.SIGTERM, r
    assert leaves_named(name) == [], "leaves survived the run"


def test_memory_leaf_without_limits_on_hybrid_hosts(no_residue):
    # Memory accounting (peak, OOM) always has a leaf; pids and cpu only when limited.
    cell_id = unique_id("acct")
    run, name, pid, started = start_sleeper(cell_id, {"CELLOS_SUBPROCESS_UNSHARE": "all"}, {}, seconds="0.5")
    try:
        leaves = leaves_named(name)
        want = {os.path.join(own_cgroup_dir(None), name)}
        if hybrid():
            want.add(os.path.join(own_cgroup_dir("memory"), name))
        assert set(leaves) == want, leaves
        assert "limits" not in started["data"]["isolation"]
        r = run.finish()
    finally:
        run.kill()
    assert r.rc == 0, r
    assert leaves_named(name) == []


@pytest.mark.parametrize("kind", ["timeout", "spawn-failure", "oom", "fork-bomb", "success", "failure"])
def test_no_leaf_survives_any_outcome(kind):
    before = host_snapshot()
    cell_id = unique_id("outcome")
    limits = {"memoryMaxBytes": 48 * MiB, "pidsMax": 16, "cpuMax": {"quotaMicros": 50000}}
    argv, extra, rc = {
        "timeout": (["/bin/sh", "-c", "sleep 30", MARK], {"timeoutMs": 200}, 124),
        "spawn-failure": (["/nonexistent/prog", MARK], {}, 127),
        "oom": (py_argv(HOG, MARK), {}, 137),
        "fork-bomb": (py_argv(FORK_BOMB, MARK), {}, 15),
        "success": (["/usr/bin/true", MARK], {}, 0),
        "failure": (["/bin/sh", "-c", "exit 7", MARK], {}, 7),
    }[kind]
    r = run_cell(make_spec(argv, id=cell_id, run_extra=dict(extra, limits=limits)),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == rc, r
    name = leaf_name(cell_id, r.event("lifecycle.v1.started")["data"]["runId"])
    assert leaves_named(name) == []
    assert_no_residue(before)


def test_sigkilled_supervisors_leaves_are_removed_by_the_next_run():
    before = host_snapshot()
    cell_id = unique_id("killed")
    marker = unique_id("killedcell")
    limits = {"memoryMaxBytes": 64 * MiB, "pidsMax": 32, "cpuMax": {"quotaMicros": 50000}}
    run = Running(make_spec(py_argv(SLEEPER, "60", marker), id=cell_id, run_extra={"limits": limits}),
                  env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    try:
        run.wait_event("observability.v1.process_spawned")
        run_id = [e for e in run.events() if e["type"].endswith("lifecycle.v1.started")][0]["data"]["runId"]
        name = leaf_name(cell_id, run_id)
        leaves = leaves_named(name)
        assert len(leaves) == (4 if hybrid() else 1), leaves
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=10)
    finally:
        run.kill()
    # The cell died with its supervisor (PDEATHSIG) ...
    left, _ = wait_no_marked(marker, 5)
    assert not left, left
    # ... but nobody was left to remove its leaves and registration.
    assert leaves_named(name) == leaves
    assert os.path.exists(f"/run/cellos/runs/{name}.lock")
    r = run_cell(make_spec(["/usr/bin/true", MARK]), env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert leaves_named(name) == [], "the next supervisor did not remove the dead one's leaves"
    assert not os.path.exists(f"/run/cellos/runs/{name}.lock")
    assert_no_residue(before)


# --------------------------------------------------------------------------- CELLOS_CGROUP_PARENT


def test_cgroup_parent_v2_holds_the_v2_leaf(no_residue, cgroup_dirs):
    parent = cgroup_dirs(os.path.join(v2_mount(), f"{MARK}-v2p-{uuid.uuid4().hex[:6]}"))
    cell_id = unique_id("v2parent")
    run, name, pid, started = start_sleeper(cell_id, {"CELLOS_SUBPROCESS_UNSHARE": "all",
                                                      "CELLOS_CGROUP_PARENT": parent},
                                            {"memoryMaxBytes": 64 * MiB, "pidsMax": 32}, seconds="0.5")
    try:
        assert started["data"]["isolation"]["cgroup"] == os.path.join(parent, name)
        leaves = leaves_named(name)
        assert os.path.join(parent, name) in leaves
        if hybrid():
            # The parent's relative path has no counterpart in the v1 hierarchies:
            # their leaves go under the supervisor's own cgroups there.
            for ctrl in ("memory", "pids"):
                assert os.path.join(own_cgroup_dir(ctrl), name) in leaves, leaves
        check_leaves(leaves, pid, memory=64 * MiB, pids=32)
        r = run.finish()
    finally:
        run.kill()
    assert r.rc == 0, r
    assert os.listdir(parent) == [] or all(not os.path.isdir(os.path.join(parent, d)) for d in os.listdir(parent))


def test_cgroup_parent_v1_maps_to_the_same_path_in_the_other_hierarchies(no_residue, cgroup_dirs):
    if not hybrid():
        pytest.fail("this test needs v1 controllers (a hybrid host, as CI is)")
    rel = f"{MARK}-v1p-{uuid.uuid4().hex[:6]}"
    mem_parent = cgroup_dirs(os.path.join(v1_mount("memory"), rel))
    pids_parent = cgroup_dirs(os.path.join(v1_mount("pids"), rel))
    v2_parent = cgroup_dirs(os.path.join(v2_mount(), rel))
    # No counterpart in the cpu hierarchy: its leaf goes under our own cpu cgroup.
    cell_id = unique_id("v1parent")
    run, name, pid, started = start_sleeper(
        cell_id, {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_CGROUP_PARENT": mem_parent},
        {"memoryMaxBytes": 64 * MiB, "pidsMax": 32, "cpuMax": {"quotaMicros": 50000}}, seconds="0.5")
    try:
        leaves = leaves_named(name)
        assert sorted(leaves) == sorted([os.path.join(mem_parent, name), os.path.join(pids_parent, name),
                                         os.path.join(v2_parent, name),
                                         os.path.join(own_cgroup_dir("cpu"), name)]), leaves
        assert started["data"]["isolation"]["cgroup"] == os.path.join(v2_parent, name)
        check_leaves(leaves, pid, memory=64 * MiB, pids=32, cpu=(50000, 100000))
        r = run.finish()
    finally:
        run.kill()
    assert r.rc == 0, r
    assert leaves_named(name) == []


@pytest.mark.parametrize("parent", ["/tmp", "/nonexistent/cgroup", "/sys/fs/cgroup/memory/nonexistent-xyz"])
def test_cgroup_parent_must_be_a_cgroup_directory(parent):
    r = run_cell(make_spec(["/usr/bin/true"]), env={"CELLOS_CGROUP_PARENT": parent})
    assert r.rc == 125, r
    assert "CELLOS_CGROUP_PARENT" in r.err and parent in r.err, r.err
    assert not r.events


# --------------------------------------------------------------------------- limits that cannot be applied


def test_portable_runs_on_without_a_writable_memory_hierarchy(no_residue):
    if not hybrid():
        pytest.fail("this test needs v1 controllers (a hybrid host, as CI is)")
    r = run_wrapped(read_only(v1_mount("memory")),
                    make_spec(["/usr/bin/true", MARK], run_extra={"limits": {"memoryMaxBytes": 64 * MiB,
                                                                             "pidsMax": 16}}),
                    env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    lim = limits_of(r)
    assert lim["applied"] is False and lim["memoryMaxBytes"] == 64 * MiB and lim["pidsMax"] == 16, lim
    assert "run.limits.memoryMaxBytes" in lim["error"] and "Read-only" in lim["error"], lim
    assert "pidsMax" not in lim["error"], lim  # the pids limit did apply
    assert "run.limits not enforced" in r.err
    assert destroyed(r)["outcome"] == "succeeded"


def test_portable_runs_on_without_any_writable_cgroup(no_residue):
    mounts = [m for m, _, _ in cgroup_mounts() if m.startswith("/sys/fs/cgroup")]
    r = run_wrapped(read_only(*mounts),
                    make_spec(["/bin/sh", "-c", "echo ran", MARK],
                              run_extra={"limits": {"memoryMaxBytes": 64 * MiB, "pidsMax": 16,
                                                    "cpuMax": {"quotaMicros": 50000}}}),
                    env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert r.out == "ran\n"
    iso = r.event("lifecycle.v1.started")["data"]["isolation"]
    assert iso["cgroup"] is None
    assert iso["limits"]["applied"] is False
    for field in ("memoryMaxBytes", "pidsMax", "cpuMax"):
        assert field in iso["limits"]["error"], iso["limits"]


def test_portable_reports_a_limit_the_kernel_refuses(no_residue, cgroup_dirs):
    # v1 refuses a child quota larger than its parent's: the limit cannot apply.
    if not hybrid():
        pytest.fail("this test needs v1 controllers (a hybrid host, as CI is)")
    parent = cgroup_dirs(os.path.join(v1_mount("cpu"), f"{MARK}-cpup-{uuid.uuid4().hex[:6]}"))
    with open(os.path.join(parent, "cpu.cfs_quota_us"), "w") as f:
        f.write("10000")
    r = run_cell(make_spec(["/usr/bin/true", MARK], run_extra={"limits": {"cpuMax": {"quotaMicros": 50000}}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_CGROUP_PARENT": parent})
    assert r.rc == 0, r
    lim = limits_of(r)
    assert lim["applied"] is False and "run.limits.cpuMax" in lim["error"], lim


def test_hardened_refuses_without_a_writable_hierarchy():
    if not hybrid():
        pytest.fail("this test needs v1 controllers (a hybrid host, as CI is)")
    spec = make_spec(["/usr/bin/true"], run_extra={"limits": {"memoryMaxBytes": 64 * MiB}})
    r = run_wrapped(read_only(v1_mount("memory")), spec, env=hardened_env())
    assert r.rc == 125, r
    assert "hardened" in r.err and "a cgroup leaf with limits" in r.err and "memory" in r.err, r.err
    assert not r.events


def test_hardened_runs_with_its_limits_applied(no_residue):
    r = run_cell(make_spec(["/usr/bin/true", MARK], run_extra={"limits": {"memoryMaxBytes": 64 * MiB,
                                                                          "pidsMax": 16}}),
                 env=hardened_env())
    assert "a cgroup leaf with limits" not in r.err, r.err
    assert r.rc == 0, r
    started = [inner(e) for e in r.events if inner(e)["type"].endswith("lifecycle.v1.started")][0]
    assert started["data"]["isolation"]["limits"]["applied"] is True


def test_hardened_refuses_a_limit_the_kernel_refuses(no_residue, cgroup_dirs):
    if not hybrid():
        pytest.fail("this test needs v1 controllers (a hybrid host, as CI is)")
    parent = cgroup_dirs(os.path.join(v1_mount("cpu"), f"{MARK}-cpuh-{uuid.uuid4().hex[:6]}"))
    with open(os.path.join(parent, "cpu.cfs_quota_us"), "w") as f:
        f.write("10000")
    r = run_cell(make_spec(["/usr/bin/true", MARK], run_extra={"limits": {"cpuMax": {"quotaMicros": 50000}}}),
                 env=hardened_env(CELLOS_CGROUP_PARENT=parent))
    assert r.rc == 125, r
    assert "hardened" in r.err and "run.limits.cpuMax" in r.err, r.err
    failed = [inner(e) for e in r.events if inner(e)["type"].endswith("lifecycle.v1.failed")]
    assert failed and failed[0]["data"]["phase"] == "create", r.events
