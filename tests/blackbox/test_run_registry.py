"""The run registry (/run/cellos/runs, docs/DESIGN.md): a run's host objects are
named after its cell id and run id, and a run id that a live supervisor on this
host uses is refused (SPEC §3, CELLOS_RUN_ID): a second supervisor must neither
take over nor tear down what the first one made."""
import os
import shutil
import signal
import uuid

from conftest import (MARK, RUNREG_DIR, Running, assert_no_residue, cellos_cgroups, held_by_live_run, host_snapshot,
                      make_spec, run_cell, unique_id, wait_no_marked)

ENV = {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline"}


def _name(cell_id: str, run_id: str) -> str:
    return f"cellos-{cell_id}-{run_id[:8]}"


def _leaves(name: str) -> set[str]:
    return {c for c in cellos_cgroups() if os.path.basename(c) == name}


def test_second_supervisor_with_a_live_run_id_is_refused():
    before = host_snapshot()
    cell_id, run_id = unique_id("samerun"), str(uuid.uuid4())
    env = dict(ENV, CELLOS_RUN_ID=run_id)
    name = _name(cell_id, run_id)
    # Long enough to outlast the second supervisor, which waits up to 2 s for a
    # held registration to be let go (it could be a sweeper's) before refusing.
    first = Running(make_spec(["/bin/sh", "-c", "sleep 5", MARK], id=cell_id), env=env)
    try:
        first.wait_event("observability.v1.process_spawned")
        leaves = _leaves(name)
        assert leaves, "the first run has no cgroup leaf"

        second = run_cell(make_spec(["/usr/bin/true", MARK], id=cell_id), env=env)
        assert first.proc.poll() is None, "the first run ended before the second was refused: not concurrent"
        assert second.rc == 125, second
        lines = [l for l in second.err.splitlines() if l.strip()]
        assert len(lines) == 1, second.err
        assert "CELLOS_RUN_ID" in lines[0] and "a live run on this host uses this run id" in lines[0], lines[0]
        assert not second.has("lifecycle.v1.started"), second.types
        assert second.event("lifecycle.v1.failed")["data"]["runId"] == run_id
        # The first run's registration and leaves are untouched.
        assert held_by_live_run(name), "the first run's registration was taken over"
        assert _leaves(name) == leaves

        r = first.finish()
    finally:
        first.kill()
    assert r.rc == 0, r
    assert r.types[-1] == "lifecycle.v1.destroyed", r.types
    assert r.event("command.v1.completed")["data"]["exitCode"] == 0
    assert _leaves(name) == set()
    assert not os.path.exists(os.path.join(RUNREG_DIR, name + ".lock"))
    assert_no_residue(before)


def test_run_id_of_a_sigkilled_supervisor_can_be_used_again():
    before = host_snapshot()
    cell_id, run_id = unique_id("reuse"), str(uuid.uuid4())
    marker = unique_id("reusecell")
    env = dict(ENV, CELLOS_RUN_ID=run_id)
    name = _name(cell_id, run_id)
    dead = Running(make_spec(["/bin/sh", "-c", "sleep 30", marker], id=cell_id), env=env)
    try:
        dead.wait_event("observability.v1.process_spawned")
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait(timeout=10)
    finally:
        dead.kill()
    left, _ = wait_no_marked(marker, 5)
    assert not left, left
    # Its registration stays until the next supervisor on the host sweeps it:
    # ours below, or another one running meanwhile on this shared host.

    r = run_cell(make_spec(["/usr/bin/true", MARK], id=cell_id), env=env)
    assert r.rc == 0, r
    assert r.event("lifecycle.v1.started")["data"]["runId"] == run_id
    assert _leaves(name) == set()
    assert not os.path.exists(os.path.join(RUNREG_DIR, name + ".lock"))
    assert_no_residue(before)


def test_on_a_fresh_host_the_first_cell_makes_the_run_base_traversable_not_listable():
    """/run/cellos, made by whichever cell comes first: root's and 0711. A VM's or an
    OCI runtime's process, as the run's uid, must traverse it to reach its own
    directory (0700 made every later microVM cell fail), and must not list it."""
    aside = f"/run/cellos.aside-{MARK}"
    os.rename("/run/cellos", aside)
    try:
        old_umask = os.umask(0o077)  # an operator's strict umask must not close it
        try:
            r = run_cell(make_spec(["/bin/true"]))
        finally:
            os.umask(old_umask)
        assert r.rc == 0, r
        st = os.stat("/run/cellos")
        assert st.st_uid == 0 and st.st_mode & 0o7777 == 0o711, oct(st.st_mode)
    finally:
        shutil.rmtree("/run/cellos", ignore_errors=True)
        os.rename(aside, "/run/cellos")
