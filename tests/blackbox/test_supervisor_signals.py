"""SPEC §1: a supervisor that receives SIGTERM/SIGINT kills the cell, still emits its
teardown events and exits 128+signal; a SIGKILLed supervisor cannot clean up, but its
cell must die anyway, and the next supervisor removes what the dead one left."""
import os
import signal
import subprocess
import time

import pytest

from conftest import (SUPERVISOR, Result, Running, assert_no_residue, cellos_cgroups, host_snapshot, make_spec,
                      marked_processes, prepare, py_argv, run_cell, supervisor_env, unique_id, wait_no_marked)

# The workload and a setsid'd grandchild both carry the marker (argv[1]).
CELL = r"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    while True:
        time.sleep(1)
print("cell-up", flush=True)
while True:
    time.sleep(1)
"""


def start(marker, unshare, **kw):
    doc = make_spec(py_argv(CELL, marker), **kw)
    run = Running(doc, env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    run.wait_event("observability.v1.process_spawned")
    # The workload and its child are up once both carry the marker.
    deadline = time.monotonic() + 5
    while len(marked_processes(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(marked_processes(marker)) >= 2, marked_processes(marker)
    return run


@pytest.mark.parametrize("unshare", ["0", "all", "net"], ids=["no-namespaces", "unshare-all", "net-only"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_term_or_int_to_supervisor_tears_down_and_exits_128_plus_sig(sig, unshare):
    before = host_snapshot()
    marker = unique_id("sigcell")
    run = start(marker, unshare)
    try:
        t0 = time.monotonic()
        run.proc.send_signal(sig)
        r = run.finish(timeout=15)
    finally:
        run.kill()
    assert r.rc == 128 + sig, r
    # The cell was stopped through TERM (the workload has no handler): no long grace.
    assert time.monotonic() - t0 < 2.0
    types = r.types
    assert types[-2:] == ["compliance.v1.summary", "lifecycle.v1.destroyed"], types
    assert "command.v1.completed" in types
    de = r.event("lifecycle.v1.destroyed")["data"]
    assert de["outcome"] == "failed" and de["reason"] == "supervisor_terminated", de
    left = marked_processes(marker)
    assert not left, f"cell processes survived: {left}"
    assert_no_residue(before)


@pytest.mark.parametrize("unshare", ["0", "all"], ids=["no-namespaces", "unshare-all"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_term_ignoring_cell_is_killed_after_grace_when_supervisor_is_signalled(sig, unshare):
    # Killing a cell is TERM, gracefulShutdownSeconds, then KILL for every process.
    before = host_snapshot()
    code = "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
           "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\nwhile True: time.sleep(1)\n"
    marker = unique_id("grace")
    doc = make_spec(py_argv(code, marker), run_extra={"limits": {"gracefulShutdownSeconds": 1}})
    run = Running(doc, env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    try:
        run.wait_event("observability.v1.process_spawned")
        run.wait_stdout(b"up")  # the interpreter has installed its handlers
        t0 = time.monotonic()
        run.proc.send_signal(sig)
        r = run.finish(timeout=15)
        took = time.monotonic() - t0
    finally:
        run.kill()
    assert r.rc == 128 + sig, r
    assert 1.0 <= took < 2.0, f"teardown took {took:.2f}s with a 1 s grace"
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "supervisor_terminated"
    assert not marked_processes(marker)
    assert_no_residue(before)


@pytest.mark.parametrize("unshare", ["0", "all", "pid"], ids=["no-namespaces", "unshare-all", "pid-only"])
def test_sigkilled_supervisor_takes_its_cell_with_it(unshare):
    before = host_snapshot()
    marker = unique_id("orphan")
    cell_id = unique_id("sigkill")
    run = start(marker, unshare, id=cell_id)
    leaves = set()
    try:
        leaves = {c for c in cellos_cgroups() if os.path.basename(c).startswith(f"cellos-{cell_id}-")}
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=5)
        left, waited = wait_no_marked(marker, timeout=3.0)
        assert not left, f"cell processes outlived the SIGKILLed supervisor by {waited:.1f}s: {left}"
        assert waited < 1.5, f"the cell took {waited:.2f}s to die"
    finally:
        run.kill()
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)

    # The next supervisor on the host removes what the dead one left (SPEC §1).
    try:
        r = run_cell(make_spec(["/usr/bin/true"]), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
        assert r.rc == 0, r
        stale = {c for c in leaves if os.path.exists(c)}
        assert not stale, f"the next supervisor left the dead run's cgroup leaves: {sorted(stale)}"
    finally:
        for c in leaves:
            try:
                os.rmdir(c)
            except OSError:
                pass
    assert_no_residue(before)


# A workload whose own child exits 5: it reports what its wait says.
CHILD_STATUS = "import subprocess, sys\nsys.exit(subprocess.run(['/bin/sh', '-c', 'exit 5']).returncode)\n"


@pytest.mark.usefixtures("no_residue")
@pytest.mark.parametrize("env", [{"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline"},
                                 {"CELLOS_CELL_BACKEND": "oci", "CELLOS_OCI_RUNTIME": "runc"}],
                         ids=["stub", "oci-runc"])
def test_a_supervisor_started_with_sigchld_ignored_still_sees_exit_statuses(env):
    # Some launchers start programs with SIGCHLD ignored (it survives execve).
    # The kernel then reaps children by itself and no wait can tell their exit
    # status: the oci backend reported the workload's exit 5 as 0, the stub
    # backend hung, and the workload's own waits failed too.
    d, spec_path, jsonl = prepare(make_spec(py_argv(CHILD_STATUS)))
    t0 = time.monotonic()
    try:
        p = subprocess.run([str(SUPERVISOR), str(spec_path)], env=supervisor_env(env, jsonl), capture_output=True,
                           stdin=subprocess.DEVNULL, cwd=d, timeout=20,
                           preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the supervisor hung; stderr: {e.stderr!r}")
    r = Result(p.returncode, p.stdout, p.stderr, jsonl, spec_path, time.monotonic() - t0)
    assert r.rc == 5, r
    assert r.event("command.v1.completed")["data"]["exitCode"] == 5


@pytest.mark.usefixtures("no_residue")
@pytest.mark.parametrize("unshare", ["0", "all"], ids=["no-namespaces", "unshare-all"])
def test_signals_the_supervisor_was_started_with_ignored_are_default_in_the_workload(unshare):
    # An ignored disposition survives execve: a supervisor started under nohup
    # (SIGHUP ignored) or by a launcher that ignores SIGINT/SIGQUIT/SIGUSR1 must
    # not hand that on, or the workload could never be stopped by those signals.
    # The supervisor ignores SIGPIPE itself; the workload must not inherit that
    # either (SIGPIPE ignored turns a closed pipe into EPIPE errors).
    d, spec_path, jsonl = prepare(make_spec(["/bin/grep", "SigIgn:", "/proc/self/status"]))

    def ignore():
        for s in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)

    p = subprocess.run([str(SUPERVISOR), str(spec_path)],
                       env=supervisor_env({"CELLOS_SUBPROCESS_UNSHARE": unshare}, jsonl), capture_output=True,
                       stdin=subprocess.DEVNULL, cwd=d, timeout=20, preexec_fn=ignore)
    assert p.returncode == 0, p.stderr
    line = [ln for ln in p.stdout.decode().splitlines() if ln.startswith("SigIgn:")]
    assert line and int(line[0].split()[1], 16) == 0, p.stdout
