"""SPEC §3/§6.1: the per-cell cgroup leaf `cellos-<cellId>-<runId8>`, under the
supervisor's own cgroup or CELLOS_CGROUP_PARENT, gone after the run."""
import os
import uuid

import pytest

from conftest import HOST_MODE, MARK, make_spec, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")


def v2_mount():
    for line in open("/proc/self/mountinfo"):
        parts = line.split()
        if parts[parts.index("-") + 1] == "cgroup2":
            return parts[4]
    raise AssertionError("no cgroup2 hierarchy mounted")


def own_v2_cgroup():
    for line in open("/proc/self/cgroup"):
        if line.startswith("0::"):
            return line[3:].strip()
    raise AssertionError("no 0:: line in /proc/self/cgroup")


def test_workload_runs_in_a_leaf_named_after_the_run():
    # Host mode: /proc/self/cgroup shows host paths only without a cgroup namespace.
    r = run_cell(make_spec(["/bin/cat", "/proc/self/cgroup"], id="cg-cell"), env=HOST_MODE)
    assert r.rc == 0, r
    run_id = r.event("lifecycle.v1.started")["data"]["runId"]
    leaf_name = f"cellos-cg-cell-{run_id[:8]}"
    expected = os.path.join(v2_mount() + ("" if own_v2_cgroup() == "/" else own_v2_cgroup()), leaf_name)
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["cgroup"] == expected
    v2_line = [l for l in r.out.splitlines() if l.startswith("0::")]
    assert v2_line and v2_line[0].endswith("/" + leaf_name), r.out
    assert not os.path.exists(expected), "the leaf survived the run"


def test_cgroup_namespace_hides_the_host_path():
    r = run_cell(make_spec(["/bin/cat", "/proc/self/cgroup"]), env={"CELLOS_SUBPROCESS_UNSHARE": "cgroup"})
    assert r.rc == 0, r
    assert "0::/\n" in r.out, r.out


def test_cgroup_parent_is_used_and_left_clean():
    parent = os.path.join(v2_mount(), f"{MARK}-parent-{uuid.uuid4().hex[:6]}")
    os.mkdir(parent)
    try:
        # Host mode: /proc/self/cgroup shows host paths only without a cgroup namespace.
        r = run_cell(make_spec(["/bin/cat", "/proc/self/cgroup"], id="cg-parent"),
                     env={**HOST_MODE, "CELLOS_CGROUP_PARENT": parent})
        assert r.rc == 0, r
        cg = r.event("lifecycle.v1.started")["data"]["isolation"]["cgroup"]
        assert cg is not None and os.path.dirname(cg) == parent, cg
        assert os.path.basename(cg).startswith("cellos-cg-parent-")
        assert os.path.basename(cg) in r.out
        leftovers = [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
        assert leftovers == [], f"leaf left under CELLOS_CGROUP_PARENT: {leftovers}"
    finally:
        for d in os.listdir(parent):
            if os.path.isdir(os.path.join(parent, d)):
                os.rmdir(os.path.join(parent, d))
        os.rmdir(parent)
