"""SPEC §1: the exit status of cellos-supervisor (the convention of timeout/env/chroot)."""
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import HOST_MODE, make_spec, new_dir, run_cell, unique_id

ALL = {"CELLOS_SUBPROCESS_UNSHARE": "all"}
# "0": explicit host mode, no namespaces ("" would now mean `all`).
UNSHARE = pytest.mark.parametrize("unshare", ["0", "all"])


def host_dir(tag):
    """A host directory the cell's unprivileged uid can traverse and read (host-mode
    tests that execute host paths): otherwise exec fails for the wrong reason."""
    d = new_dir(tag)
    d.chmod(0o755)
    return d


def sh(script):
    return ["/bin/sh", "-c", script]


def test_success_exits_0():
    rc, out, err, events = run_cell(make_spec(["/usr/bin/true"]))
    assert rc == 0, err
    done = [e for e in events if e["type"].endswith("command.v1.completed")]
    assert [e["data"]["exitCode"] for e in done] == [0]


def test_every_status_1_to_123_is_passed_through():
    def one(code):
        r = run_cell(make_spec(sh(f"exit {code}")), jsonl=False)
        return code, r.rc, r.err

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(1, 124)))
    wrong = [(code, rc, err) for code, rc, err in results if rc != code]
    assert not wrong, f"workload status not passed through (code, rc, stderr): {wrong[:5]}"


@UNSHARE
@pytest.mark.parametrize("code", [124, 125, 126, 127])
def test_workload_exiting_124_to_127_is_passed_through(code, unshare):
    r = run_cell(make_spec(sh(f"exit {code}")), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == code, r
    done = r.event("command.v1.completed")["data"]
    # The events tell the difference from a timeout or a spawn failure.
    assert done["exitCode"] == code
    assert done["timedOut"] is False
    assert "spawnError" not in done
    assert r.has("observability.v1.process_spawned")
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "nonzero_exit"


def _no_exec_file(mode=0o644, content=b"#!/bin/sh\nexit 0\n"):
    p = host_dir("noexec") / "prog"
    p.write_bytes(content)
    p.chmod(mode)
    return str(p)


def _assert_spawn_failed_126(r):
    assert r.rc == 126, r
    done = r.event("command.v1.completed")["data"]
    assert done["exitCode"] == 126
    assert isinstance(done.get("spawnError"), str) and done["spawnError"], done
    assert not r.has("observability.v1.process_spawned")
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "spawn_failed"


@pytest.mark.parametrize("kind", ["no-x-bit", "directory", "bad-format", "bad-interpreter"])
def test_existing_argv0_that_cannot_be_executed_exits_126(kind):
    # Host paths as argv[0]: explicit host mode (a default cell has its own root
    # and /tmp, where these files do not exist).
    if kind == "no-x-bit":
        prog = _no_exec_file(0o644)
    elif kind == "directory":
        prog = str(host_dir("dir"))
    elif kind == "bad-format":
        prog = _no_exec_file(0o755, b"\x00\x01\x02 this is not an executable\n")
    else:  # exists and is executable, but its interpreter does not (bash says 126 too)
        prog = _no_exec_file(0o755, b"#!/nonexistent/interpreter\nexit 0\n")
    r = run_cell(make_spec([prog]), env=HOST_MODE)
    _assert_spawn_failed_126(r)


@pytest.mark.parametrize("prog", ["/etc/passwd", "/usr/bin"])
def test_existing_argv0_in_the_default_cell_that_cannot_be_executed_exits_126(prog):
    # The same in a default cell, with files its read-only root shows.
    _assert_spawn_failed_126(run_cell(make_spec([prog])))


@UNSHARE
def test_absolute_argv0_not_found_exits_127(unshare):
    r = run_cell(make_spec([f"/nonexistent-{unique_id()}/prog"]), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 127, r
    done = r.event("command.v1.completed")["data"]
    assert done["exitCode"] == 127 and done["spawnError"]
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "spawn_failed"
    assert "run.argv[0]" in r.err or "nonexistent" in r.err, r.err


def test_bare_name_not_in_cell_path_exits_127():
    r = run_cell(make_spec([f"no-such-command-{unique_id()}"]))
    assert r.rc == 127, r


def test_bare_name_is_found_in_default_cell_path():
    r = run_cell(make_spec(["true"]))
    assert r.rc == 0, r
    assert r.event("observability.v1.process_spawned")["data"]["program"] in ("/usr/bin/true", "/bin/true")


def test_bare_name_is_looked_up_in_run_env_path():
    # A host directory in run.env's PATH: explicit host mode.
    d = host_dir("bin")
    prog = d / "cellbb-prog"
    prog.write_text("#!/bin/sh\nexit 7\n")
    prog.chmod(0o755)
    r = run_cell(make_spec(["cellbb-prog"], run_extra={"env": {"PATH": f"/nonexistent:{d}"}}), env=HOST_MODE)
    assert r.rc == 7, r
    assert r.event("observability.v1.process_spawned")["data"]["program"] == str(prog)


def test_run_env_path_overrides_default_path():
    r = run_cell(make_spec(["true"], run_extra={"env": {"PATH": "/nonexistent"}}))
    assert r.rc == 127, r


def test_supervisor_path_is_not_used_for_lookup():
    # Host mode, and a directory the workload could use: were the supervisor's PATH
    # used, the program would be found (in a default cell the host directory is
    # not even visible, which would prove nothing).
    d = host_dir("bin")
    prog = d / "cellbb-only-in-supervisor-path"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    r = run_cell(make_spec([prog.name]), env={**HOST_MODE, "PATH": f"{d}:/usr/bin:/bin"})
    assert r.rc == 127, r


@UNSHARE
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1, signal.SIGSEGV, signal.SIGHUP])
def test_workload_killed_by_signal_exits_128_plus_n(sig, unshare):
    # ulimit -c 0: a core-dumping signal must not leave a core file around.
    r = run_cell(make_spec(sh(f"ulimit -c 0; kill -{int(sig)} $$; sleep 5")),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 128 + sig, r
    done = r.event("command.v1.completed")["data"]
    assert done["exitCode"] == 128 + sig
    assert done["termSignal"] == sig
    assert done["timedOut"] is False
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "signal_killed"


def test_timeout_exits_124():
    r = run_cell(make_spec(["/bin/sleep", "30"], run_extra={"timeoutMs": 200}))
    assert r.rc == 124, r
    assert r.elapsed < 5


# Each class of supervisor failure (SPEC §1: 125, one stderr line naming the field or variable).
FAILURES = {
    "invalid-json": (b'{"apiVersion": ', {}, "document"),
    "invalid-field": (make_spec(ttl=0), {}, "spec.lifetime.ttlSeconds"),
    "invalid-config": (make_spec(), {"CELLOS_SUBPROCESS_UNSHARE": "bogus"}, "CELLOS_SUBPROCESS_UNSHARE"),
    "unknown-backend": (make_spec(), {"CELLOS_CELL_BACKEND": "kvm"}, "CELLOS_CELL_BACKEND"),
    "hardened-refused": (make_spec(), {"CELLOS_DEPLOYMENT_PROFILE": "hardened"}, "CELLOS_DEPLOYMENT_PROFILE"),
    "missing-secret": (make_spec(secret_refs=["BB_MISSING"]), {}, "BB_MISSING"),
    "unopenable-jsonl": (make_spec(), {"CELL_OS_JSONL_EVENTS": "/nonexistent-dir/e.jsonl"}, "CELL_OS_JSONL_EVENTS"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_supervisor_failure_exits_125(case):
    doc, env, needle = FAILURES[case]
    r = run_cell(doc, env=env)
    assert r.rc == 125, r
    assert needle in r.err, r.err
    assert not r.has("lifecycle.v1.started")


@pytest.mark.parametrize("argv0", ["/bin/sh", "sh"], ids=["absolute", "bare-name"])
def test_argv0_outside_allowed_prefixes_exits_125(argv0):
    # SPEC §3: argv[0] (after PATH lookup) must lie under one of the prefixes, else 125.
    # Host mode and a directory writable for the run's uid: had the program run, its
    # marker would be on the host (in a default cell it never could be).
    marker = new_dir("prefix", cell_writable=True) / "ran"
    r = run_cell(make_spec([argv0, "-c", f"touch {marker}"]),
                 env={**HOST_MODE, "CELLOS_RUN_ARGV0_ALLOW_PREFIXES": "/usr/local/bin,/opt/tools"})
    assert r.rc == 125, r
    assert "CELLOS_RUN_ARGV0_ALLOW_PREFIXES" in r.err or "argv[0]" in r.err, r.err
    assert not marker.exists(), "the disallowed program ran"


def test_argv0_inside_allowed_prefixes_runs():
    r = run_cell(make_spec(["true"], run_extra={"env": {"PATH": "/usr/bin"}}),
                 env={"CELLOS_RUN_ARGV0_ALLOW_PREFIXES": "/opt/tools,/usr/bin"})
    assert r.rc == 0, r
