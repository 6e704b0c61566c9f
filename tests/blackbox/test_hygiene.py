"""SPEC §2: the workload's environment is cleared and rebuilt; only fds 0-2 reach it;
stdin is /dev/null; stdout/stderr pass through."""
import json
import os

import pytest

from conftest import DEFAULT_CELL_PATH, make_spec, new_dir, py_argv, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")
# "0" is explicit host mode (no namespaces); unset/empty now means "all".
UNSHARE = pytest.mark.parametrize("unshare", ["0", "all"], ids=["no-namespaces", "unshare-all"])
# HOME (SPEC §2): run.workingDirectory when set, else /tmp; never the supervisor's.
DEFAULT_HOME = "/tmp"

# Everything a careless supervisor could pass on.
NOISY_ENV = {
    "HOME": "/root", "USER": "root", "LANG": "C.UTF-8", "TERM": "xterm", "FOO": "bar",
    "LD_PRELOAD": "", "PYTHONPATH": "/nonexistent", "CELLOS_LOG": "warn",
    "CELLOS_SECRET_UNREFERENCED": "unreferenced-secret-value", "CELLOS_STRICT_SPEC": "0",
    "CELL_OS_JSONL_FSYNC": "none", "CELLOS_RUN_TIMEOUT_MS": "60000",
}


def env_of(r):
    lines = [l for l in r.out.splitlines() if l]
    return dict(l.split("=", 1) for l in lines)


@UNSHARE
def test_workload_environment_is_exactly_the_expected_set(unshare):
    env = dict(NOISY_ENV, CELLOS_SUBPROCESS_UNSHARE=unshare)
    r = run_cell(make_spec(["/usr/bin/env"], id="env-cell"), env=env)
    assert r.rc == 0, r
    run_id = r.event("lifecycle.v1.started")["data"]["runId"]
    assert env_of(r) == {"PATH": DEFAULT_CELL_PATH, "HOME": DEFAULT_HOME, "CELLOS_CELL_ID": "env-cell",
                         "CELLOS_RUN_ID": run_id}


@UNSHARE
def test_run_env_is_delivered_and_path_overridable(unshare):
    run_env = {"CI": "1", "PATH": "/usr/bin:/bin", "EMPTY": "", "SPACES": "a b  c", "UNICODE": "h\u00e9llo"}
    r = run_cell(make_spec(["/usr/bin/env"], id="env-cell2", run_extra={"env": run_env}),
                 env=dict(NOISY_ENV, CELLOS_SUBPROCESS_UNSHARE=unshare))
    assert r.rc == 0, r
    run_id = r.event("lifecycle.v1.started")["data"]["runId"]
    assert env_of(r) == dict(run_env, HOME=DEFAULT_HOME, CELLOS_CELL_ID="env-cell2", CELLOS_RUN_ID=run_id)


def test_home_is_the_working_directory_and_overridable():
    r = run_cell(make_spec(["/usr/bin/env"], run_extra={"workingDirectory": "/work/sub"}), env=NOISY_ENV)
    assert r.rc == 0, r
    assert env_of(r)["HOME"] == "/work/sub"
    r = run_cell(make_spec(["/usr/bin/env"], run_extra={"workingDirectory": "/work/sub",
                                                        "env": {"HOME": "/custom"}}), env=NOISY_ENV)
    assert r.rc == 0, r
    assert env_of(r)["HOME"] == "/custom"


def test_secrets_are_delivered_and_no_broker_variable_leaks():
    env = dict(NOISY_ENV, CELLOS_SECRET_API_TOKEN="tok-123", CELLOS_SECRET_DB_PASS_WORD="pw 456")
    r = run_cell(make_spec(["/usr/bin/env"], id="env-secrets", secret_refs=["API_TOKEN", "db_Pass_word"]), env=env)
    assert r.rc == 0, r
    got = env_of(r)
    run_id = r.event("lifecycle.v1.started")["data"]["runId"]
    assert got == {"PATH": DEFAULT_CELL_PATH, "HOME": DEFAULT_HOME, "CELLOS_CELL_ID": "env-secrets",
                   "CELLOS_RUN_ID": run_id, "API_TOKEN": "tok-123", "db_Pass_word": "pw 456"}
    assert not any(k.startswith("CELLOS_SECRET") for k in got)


def test_configured_run_id_reaches_the_workload():
    rid = "0c3b0a4e-8f7e-4c59-9d1e-2a6f5b7c8d9e"
    r = run_cell(make_spec(["/usr/bin/env"]), env={"CELLOS_RUN_ID": rid})
    assert r.rc == 0, r
    assert env_of(r)["CELLOS_RUN_ID"] == rid


FDS = r"""
import json, os, sys
open_fds = []
for fd in range(0, 4096):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
print(json.dumps({"fds": open_fds, "stdin": os.readlink("/proc/self/fd/0"),
                  "stdin_data": sys.stdin.buffer.read().decode()}))
"""


@UNSHARE
def test_only_fds_0_1_2_reach_the_workload_and_stdin_is_dev_null(unshare):
    # The supervisor itself gets extra inheritable fds and a stdin with data in it.
    d = new_dir("fds")
    leak_r = os.open(d / "leak", os.O_RDWR | os.O_CREAT, 0o600)
    pipe_r, pipe_w = os.pipe()
    os.set_inheritable(leak_r, True)
    os.set_inheritable(pipe_r, True)
    os.set_inheritable(pipe_w, True)
    try:
        r = run_cell(make_spec(py_argv(FDS)), env={"CELLOS_SUBPROCESS_UNSHARE": unshare},
                     pass_fds=(leak_r, pipe_r, pipe_w), input=b"data on the supervisor's stdin\n")
    finally:
        for fd in (leak_r, pipe_r, pipe_w):
            os.close(fd)
    assert r.rc == 0, r
    got = json.loads(r.out)
    assert got["fds"] == [0, 1, 2], got
    assert got["stdin"] == "/dev/null"
    assert got["stdin_data"] == ""


def test_stdout_and_stderr_pass_through():
    r = run_cell(make_spec(["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; printf 'no newline'"]))
    assert r.rc == 0, r
    assert r.out == "to-stdout\nno newline"
    assert "to-stderr\n" in r.err
    assert "to-stdout" not in r.err


def test_argv_is_executed_directly_not_through_a_shell():
    args = ["$HOME", "$(id -u)", "`id`", "; exit 3", "*", "a b", "'q'", ""]
    r = run_cell(make_spec(["/usr/bin/printf", "[%s]\\n"] + args))
    assert r.rc == 0, r
    assert r.out.splitlines() == [f"[{a}]" for a in args]
