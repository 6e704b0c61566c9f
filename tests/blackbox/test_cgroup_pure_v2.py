"""A pure cgroup v2 host (SPEC §6.1, issue: "a pure-v2 host must work too").

This host and CI are hybrid (v1 memory/pids/cpu, a controller-less v2 at
/sys/fs/cgroup/unified). The supervisor is run here in a private mount namespace
whose /sys/fs/cgroup *is* the cgroup2 hierarchy and shows no v1 hierarchy at all:
the layout of a pure-v2 host. The controllers stay bound to v1 on this kernel, so
limits cannot be tested this way; the leaf, whole-tree kill and cleanup can."""
import os
import random
import subprocess
import time

from conftest import SUPERVISOR, Result, make_spec, marked_processes, ours, prepare, supervisor_env

# /sys/fs/cgroup becomes a tmpfs (hiding the v1 mounts) with cgroup2 mounted on it.
PURE_V2 = ("mount --make-rprivate / && mount -t tmpfs none /sys/fs/cgroup && "
           "mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"")


def run_pure_v2(spec, env=None, timeout=30):
    d, spec_path, jpath = prepare(spec)
    argv = ["unshare", "-m", "/bin/sh", "-c", PURE_V2, "sh", str(SUPERVISOR), str(spec_path)]
    t0 = time.monotonic()
    p = subprocess.run(argv, env=supervisor_env(env, jpath), capture_output=True, timeout=timeout, cwd=d,
                       stdin=subprocess.DEVNULL)
    return Result(p.returncode, p.stdout, p.stderr, jpath, spec_path, time.monotonic() - t0)


def v2_leaves():
    return sorted(n for n in os.listdir("/sys/fs/cgroup/unified") if n.startswith("cellos-"))


def test_pure_v2_layout_gets_a_leaf_kills_the_whole_tree_and_removes_it():
    marker = f"{random.randint(3000, 9000)}.{random.randint(10**8, 10**9)}"
    before = v2_leaves()
    argv = ["/bin/sh", "-c", f"setsid /bin/sleep {marker} </dev/null >/dev/null 2>&1 & "
            "cat /proc/self/cgroup; sleep 0.2"]
    # "0": explicit host mode (no cgroup namespace: the host path of the leaf shows);
    # "all": the default, with a cgroup namespace rooted at the leaf.
    for unshare in ("0", "all"):
        r = run_pure_v2(make_spec(argv), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
        assert r.rc == 0, r
        cg = r.event("lifecycle.v1.started")["data"]["isolation"]["cgroup"]
        # The leaf sits in the pure-v2 layout: /sys/fs/cgroup/<own cgroup>/cellos-...
        assert cg.startswith("/sys/fs/cgroup/") and not cg.startswith("/sys/fs/cgroup/unified/"), cg
        assert os.path.basename(cg).startswith("cellos-"), cg
        if unshare == "all":
            assert r.out.strip().endswith("0::/"), r.out   # cgroup namespace rooted at the leaf
        else:
            assert r.out.strip().endswith(os.path.basename(cg)), r.out
        assert not marked_processes(marker), "a setsid'd daemon survived its cell"
    # The same hierarchy, seen from the host: nothing of ours left (other people's
    # supervisors may come and go there meanwhile).
    assert [n for n in v2_leaves() if n not in before and ours(n)] == []


def test_pure_v2_layout_reports_limits_it_cannot_apply():
    spec = make_spec(["/bin/true"], run_extra={"limits": {"memoryMaxBytes": 64 << 20, "pidsMax": 32}})
    r = run_pure_v2(spec, env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    # portable: the run goes on; the event says the limits did not apply and why.
    assert r.rc == 0, r
    limits = r.event("lifecycle.v1.started")["data"]["isolation"]["limits"]
    assert limits["applied"] is False, limits
    assert "memoryMaxBytes" in limits["error"] and "pidsMax" in limits["error"], limits
