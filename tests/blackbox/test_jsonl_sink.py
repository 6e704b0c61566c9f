"""SPEC §8.4: the JSONL sink: concurrent appenders, fsync modes, creation mode,
an unopenable path at admission, and sink failures after admission."""
import json
import os
import stat
import subprocess

import pytest

from conftest import (HOST_MODE, SUPERVISOR, make_cell_writable, make_spec, new_dir, prepare, run_cell, runs_in, supervisor_env,
                      verify_chain)

# Events of a default run of /usr/bin/true: network_policy, started, process_spawned,
# completed, network_enforcement (a default cell has a private netns), summary, destroyed.
DEFAULT_RUN_EVENTS = 7

pytestmark = pytest.mark.usefixtures("no_residue")


def test_concurrent_supervisors_append_whole_lines():
    n_runs = 8
    path = new_dir("concurrent") / "shared.jsonl"
    procs = []
    for i in range(n_runs):
        # ~64 KiB of argv: command.completed lines are far beyond PIPE_BUF (4 KiB).
        argv = ["/bin/sh", "-c", f"exit {i}", "x"] + [f"{i:02d}" + "y" * 1022] * 64
        _, spec_path, _ = prepare(make_spec(argv, id=f"concurrent-{i}"), jsonl=False)
        env = supervisor_env({"CELLOS_SUBPROCESS_UNSHARE": "all" if i % 2 else "0"}, path)
        procs.append(subprocess.Popen([str(SUPERVISOR), str(spec_path)], env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=30)
        assert p.returncode == i, (i, p.returncode, err)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    for no, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except ValueError as e:
            raise AssertionError(f"line {no} ({len(line)} bytes) is not one JSON event: {e}") from None
    assert max(len(l) for l in lines) > 64 * 1024
    runs = runs_in(lines)
    assert len(runs) == n_runs
    for run_lines in runs.values():
        verify_chain(run_lines)
        assert json.loads(run_lines[-1])["type"].endswith("lifecycle.v1.destroyed")


@pytest.mark.parametrize("mode", [None, "close", "event", "none"])
def test_fsync_modes_are_accepted(mode):
    r = run_cell(make_spec(["/usr/bin/true"]), env={"CELL_OS_JSONL_FSYNC": mode})
    assert r.rc == 0, r
    assert r.types[-1] == "lifecycle.v1.destroyed"


def test_file_is_created_0600():
    r = run_cell(make_spec(["/usr/bin/true"]))
    assert r.rc == 0, r
    assert stat.S_IMODE(r.jsonl.stat().st_mode) == 0o600


def test_existing_file_is_appended_to():
    path = new_dir("append") / "events.jsonl"
    path.write_bytes(b'{"existing":"line"}\n')
    os.chmod(path, 0o644)
    r = run_cell(make_spec(["/usr/bin/true"]), jsonl=path)
    assert r.rc == 0, r
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b'{"existing":"line"}'
    assert len([l for l in lines if l]) == 1 + DEFAULT_RUN_EVENTS
    assert stat.S_IMODE(path.stat().st_mode) == 0o644, "the mode of an existing file was changed"


@pytest.mark.parametrize("kind", ["missing-directory", "is-a-directory", "read-only-dir", "file-as-directory"])
def test_unopenable_jsonl_path_fails_admission(kind):
    d = new_dir("unopenable")
    if kind == "missing-directory":
        path = d / "no" / "such" / "events.jsonl"
    elif kind == "is-a-directory":
        path = d
    elif kind == "read-only-dir":
        # root ignores directory permissions: use a read-only mount point instead
        path = "/proc/sys/cellos-events.jsonl"
    else:
        (d / "plain-file").write_text("")
        path = d / "plain-file" / "events.jsonl"
    # Host mode and a directory the cell's uid may write: were the cell run, the
    # marker would appear on the host.
    marker = make_cell_writable(d) / "ran"
    r = run_cell(make_spec(["/usr/bin/touch", str(marker)]), jsonl=False,
                 env={**HOST_MODE, "CELL_OS_JSONL_EVENTS": str(path)})
    assert r.rc == 125, r
    assert "CELL_OS_JSONL_EVENTS" in r.err
    # One line besides host mode's own warning.
    lines = [l for l in r.err.splitlines() if l.strip() and "host mode" not in l]
    assert len(lines) == 1, r.err
    assert not marker.exists(), "the cell ran although the sink could not be opened"


def test_sink_failure_after_admission_does_not_stop_the_cell():
    # /dev/full opens fine but every write fails with ENOSPC.
    # Host mode and a directory the cell's uid may write: the marker on the host
    # shows that the workload ran.
    marker = new_dir("devfull", cell_writable=True) / "ran"
    r = run_cell(make_spec(["/usr/bin/touch", str(marker)]), jsonl=False,
                 env={**HOST_MODE, "CELL_OS_JSONL_EVENTS": "/dev/full"})
    assert r.rc == 0, r
    assert marker.exists()
    assert "CELL_OS_JSONL_EVENTS" in r.err or "jsonl" in r.err.lower(), "the sink failure was not logged"


def test_noop_primary_sink_keeps_the_jsonl_mirror():
    r = run_cell(make_spec(["/usr/bin/true"]), env={"CELL_OS_USE_NOOP_SINK": "1"})
    assert r.rc == 0, r
    assert len(r.events) == DEFAULT_RUN_EVENTS, r.types


def test_no_jsonl_configured_still_runs():
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 6"]), jsonl=False)
    assert r.rc == 6, r


# SPEC §8.4: workload output (the workload inherits the supervisor's stdout and
# stderr) must never sit among the events, and a terminal is no event log.

def assert_refused(r, marker):
    assert r.rc == 125, r
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1 and "CELL_OS_JSONL_EVENTS" in lines[0], r.err
    assert not marker.exists(), "the cell ran although the sink was refused"
    assert r.out == "", "something was written to stdout"


@pytest.mark.parametrize("path", ["/dev/stdout", "/dev/stderr", "/proc/self/fd/1"])
def test_jsonl_path_that_is_the_supervisors_own_stdout_or_stderr_is_refused(path):
    marker = new_dir("stdio") / "ran"
    r = run_cell(make_spec(["/usr/bin/touch", str(marker)]), jsonl=False, env={"CELL_OS_JSONL_EVENTS": path})
    assert_refused(r, marker)


@pytest.mark.parametrize("link", [False, True], ids=["same-name", "hard-link"])
def test_jsonl_path_that_is_the_same_file_as_redirected_stderr_is_refused(link):
    d = new_dir("samefile")
    log = d / "supervisor.log"
    log.touch()
    path = log
    if link:
        # Another name for the same file: the inode is what counts.
        path = d / "events.jsonl"
        os.link(log, path)
    marker = d / "ran"
    _, spec_path, _ = prepare(make_spec(["/usr/bin/touch", str(marker)]), jsonl=False)
    with open(log, "ab") as f:
        p = subprocess.run([str(SUPERVISOR), str(spec_path)], env=supervisor_env({}, path), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    text = log.read_text()
    assert p.returncode == 125, text
    assert len(text.splitlines()) == 1 and "CELL_OS_JSONL_EVENTS" in text, text
    assert not marker.exists(), "the cell ran although the sink was refused"


def test_jsonl_path_that_is_a_terminal_is_refused():
    master, slave = os.openpty()
    try:
        marker = new_dir("pty") / "ran"
        r = run_cell(make_spec(["/usr/bin/touch", str(marker)]), jsonl=False,
                     env={"CELL_OS_JSONL_EVENTS": os.ttyname(slave)})
        assert_refused(r, marker)
        assert "terminal" in r.err, r.err
    finally:
        os.close(slave)
        os.close(master)


def test_dash_is_refused_with_a_hint():
    marker = new_dir("dash") / "ran"
    r = run_cell(make_spec(["/usr/bin/touch", str(marker)]), jsonl=False, env={"CELL_OS_JSONL_EVENTS": "-"})
    assert_refused(r, marker)
    assert "stdout" in r.err, r.err
    assert not (r.spec_path.parent / "-").exists(), "a file named '-' was created"


def test_dev_null_for_both_the_events_and_stdout_is_accepted():
    # Nothing is kept on either side, so nothing can be mixed: discarding is fine.
    _, spec_path, _ = prepare(make_spec(["/usr/bin/true"]), jsonl=False)
    p = subprocess.run([str(SUPERVISOR), str(spec_path)], env=supervisor_env({}, "/dev/null"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("argv", [["/bin/sh", "-c", "echo workload-out; echo workload-err >&2"], ["/no/such"]],
                         ids=["workload-output", "log-line"])
@pytest.mark.parametrize("closed", [1, 2], ids=["stdout-closed", "stderr-closed"])
def test_events_file_stays_clean_when_started_without_stdout_or_stderr(closed, argv):
    # A closed standard descriptor would be taken by the events file: the log
    # lines (stderr) or the workload's output would then land among the events.
    _, spec_path, jsonl = prepare(make_spec(argv))
    env = supervisor_env({"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline"}, jsonl)
    p = subprocess.run([str(SUPERVISOR), str(spec_path)], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, preexec_fn=lambda: os.close(closed))
    assert p.returncode == (0 if argv[0] == "/bin/sh" else 127), p
    lines = jsonl.read_bytes().split(b"\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert line.startswith(b"{"), f"not an event in the events file: {line!r}"
        json.loads(line)
    assert json.loads(lines[-2])["type"].endswith("lifecycle.v1.destroyed")
