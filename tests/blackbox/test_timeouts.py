"""SPEC §1/§4: run.timeoutMs, CELLOS_RUN_TIMEOUT_MS, lifetime.ttlSeconds, and the
TERM -> gracefulShutdownSeconds -> KILL sequence, measured."""
import pytest

from conftest import MARK, make_spec, marked_processes, new_dir, py_argv, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")

# "0": explicit host mode, no namespaces ("" would now mean `all`).
UNSHARE = pytest.mark.parametrize("unshare", ["0", "all"])


def assert_timed_out(r, reason):
    assert r.rc == 124, r
    done = r.event("command.v1.completed")["data"]
    assert done["timedOut"] is True
    assert done["exitCode"] == 124
    assert isinstance(done.get("spawnError"), str) and done["spawnError"], done
    de = r.event("lifecycle.v1.destroyed")["data"]
    assert de["outcome"] == "failed"
    assert de["reason"] == reason, de
    assert r.event("compliance.v1.summary")["data"]["commandExitCode"] == 124
    assert r.types[-1] == "lifecycle.v1.destroyed"


@UNSHARE
def test_run_timeout_ms(unshare):
    r = run_cell(make_spec(["/bin/sleep", "30"], run_extra={"timeoutMs": 300}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert_timed_out(r, "timeout")
    assert 0.3 <= r.elapsed < 2.0, r.elapsed
    assert 300 <= r.event("command.v1.completed")["data"]["durationMs"] < 2000


def test_operator_run_timeout_applies_when_spec_has_none():
    r = run_cell(make_spec(["/bin/sleep", "30"]), env={"CELLOS_RUN_TIMEOUT_MS": "300"})
    assert_timed_out(r, "timeout")
    assert 0.3 <= r.elapsed < 2.0, r.elapsed


def test_operator_run_timeout_is_ignored_when_spec_has_one():
    r = run_cell(make_spec(["/bin/sleep", "0.8"], run_extra={"timeoutMs": 5000}),
                 env={"CELLOS_RUN_TIMEOUT_MS": "200"})
    assert r.rc == 0, r
    assert r.event("command.v1.completed")["data"]["timedOut"] is False
    assert r.elapsed >= 0.8


def test_workload_finishing_before_timeout_is_not_timed_out():
    r = run_cell(make_spec(["/bin/sh", "-c", "sleep 0.2; exit 5"], run_extra={"timeoutMs": 3000}))
    assert r.rc == 5, r
    assert r.event("command.v1.completed")["data"]["timedOut"] is False


@UNSHARE
def test_ttl_seconds_bounds_the_run(unshare):
    r = run_cell(make_spec(["/bin/sleep", "30"], ttl=1), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert_timed_out(r, "ttl_exceeded")
    assert 0.9 <= r.elapsed < 3.0, r.elapsed


def test_ttl_wins_over_a_longer_run_timeout():
    r = run_cell(make_spec(["/bin/sleep", "30"], ttl=1, run_extra={"timeoutMs": 20000}))
    assert_timed_out(r, "ttl_exceeded")
    assert r.elapsed < 3.0


def test_shorter_run_timeout_wins_over_ttl():
    r = run_cell(make_spec(["/bin/sleep", "30"], ttl=5, run_extra={"timeoutMs": 200}))
    assert_timed_out(r, "timeout")
    assert r.elapsed < 2.0


GRACEFUL = r"""
import os, signal, sys, time
marker = sys.argv[1]
def on_term(signum, frame):
    time.sleep(0.5)
    try:  # with a mount namespace the host's directory need not be visible
        with open(marker, "w") as f:
            f.write("graceful")
    except OSError:
        pass
    print("graceful-done", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.05)
"""


@UNSHARE
def test_graceful_shutdown_gives_a_term_handler_its_time(unshare):
    # Writable for the run's uid: in host mode the handler writes its marker there.
    marker = new_dir("graceful", cell_writable=True) / "marker"
    # timeoutMs leaves the interpreter time to install its handler.
    r = run_cell(make_spec(py_argv(GRACEFUL, str(marker), MARK),
                           run_extra={"timeoutMs": 700, "limits": {"gracefulShutdownSeconds": 3}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert_timed_out(r, "timeout")
    assert "graceful-done" in r.out, (r.out, r.err)
    if unshare == "0":  # with a mount namespace the cell's files need not be the host's
        assert marker.read_text() == "graceful"
    # The handler took ~0.5 s: the supervisor waited for it, and no longer.
    assert 1.1 <= r.elapsed < 2.5, r.elapsed


IGNORE_TERM = r"""
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring", flush=True)
while True:
    time.sleep(0.05)
"""


@UNSHARE
@pytest.mark.parametrize("grace", [0, 1])
def test_term_ignoring_workload_is_killed_after_grace(unshare, grace):
    r = run_cell(make_spec(py_argv(IGNORE_TERM, MARK),
                           run_extra={"timeoutMs": 400, "limits": {"gracefulShutdownSeconds": grace}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert_timed_out(r, "timeout")
    assert "ignoring" in r.out
    assert 0.4 + grace <= r.elapsed < 0.4 + grace + 0.8, f"elapsed {r.elapsed:.2f}s with grace {grace}s"
    assert not marked_processes(), "the TERM-ignoring workload survived"


def test_default_grace_is_two_seconds():
    r = run_cell(make_spec(py_argv(IGNORE_TERM, MARK), run_extra={"timeoutMs": 300}))
    assert_timed_out(r, "timeout")
    assert 2.2 <= r.elapsed < 3.2, r.elapsed
