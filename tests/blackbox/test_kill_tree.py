"""SPEC §4: when the workload ends (or is timed out), every process of the cell dies,
including ones that double-forked, called setsid or left the process group."""
import random

import pytest

from conftest import make_spec, marked_processes, py_argv, run_cell, unique_id

DAEMON = r"""
import os, sys, time
marker, mode = sys.argv[1], sys.argv[2]
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()                      # leave the session and process group
    if os.fork() == 0:               # double fork: reparented away from us
        print("daemon-up", os.getpid(), flush=True)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(w, b"x")
        os.close(w)
        while True:
            time.sleep(1)
    os._exit(0)
os.close(w)
os.read(r, 1)                        # the daemon is up
os.wait()
if mode == "hang":
    time.sleep(60)
sys.exit(0)
"""


def workload(kind, mode, marker):
    if kind == "python-double-fork":
        return py_argv(DAEMON, marker, mode)
    # A setsid'd sleep daemon; the unique duration is its marker.
    tail = "sleep 60" if mode == "hang" else "sleep 0.2; exit 0"
    return ["/bin/sh", "-c", f"setsid /bin/sleep {marker} </dev/null >/dev/null 2>&1 & {tail}"]


@pytest.mark.usefixtures("no_residue")
@pytest.mark.parametrize("unshare", ["0", "all"], ids=["no-namespaces", "unshare-all"])
@pytest.mark.parametrize("mode", ["exit", "hang"], ids=["normal-exit", "timeout"])
@pytest.mark.parametrize("kind", ["python-double-fork", "sh-setsid-sleep"])
def test_no_process_of_the_cell_survives(kind, mode, unshare):
    if kind == "python-double-fork":
        marker = unique_id("daemon")
    else:
        marker = f"{random.randint(3000, 9000)}.{random.randint(10**8, 10**9)}"
    extra = {"timeoutMs": 600, "limits": {"gracefulShutdownSeconds": 1}} if mode == "hang" else {}
    r = run_cell(make_spec(workload(kind, mode, marker), run_extra=extra), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == (124 if mode == "hang" else 0), r
    if kind == "python-double-fork":
        assert "daemon-up" in r.out, "the daemon never started: the test proves nothing"
    left = marked_processes(marker)
    assert not left, f"processes of the cell survived the supervisor: {left}"
