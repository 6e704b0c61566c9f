"""SPEC §4: every run that does not succeed ends with ONE human line on stderr naming
the cell id and how it ended, e.g.

    cellos-supervisor: cell ci-build-42 failed: out of memory (limit 256 MiB, peak 256 MiB) after 1.2 s

for a non-zero exit, a signal, OOM, timeout, TTL, spawn failure, export failure,
policy denial, supervisor termination, a backend failure and any failure before the
cell started (the line then names the phase and the message of lifecycle.v1.failed).
The line is the supervisor's last; what it says is not said a second time on another
line; a successful run prints no such line."""
from __future__ import annotations

import base64
import os
import re
import signal
import time
import uuid

import pytest

from conftest import HOST_MODE, MARK, Running, make_spec, new_dir, py_argv, run_cell, unique_id

pytestmark = pytest.mark.usefixtures("no_residue")

MiB = 1024 * 1024
END_RE = re.compile(r"^cellos-supervisor: cell (?P<id>\S+) failed(?: at (?P<phase>[a-z_]+))?: (?P<what>.*)$")
DURATION = r"(\d+ ms|\d+\.\d s)"

# Touches 256 MiB page by page (tests/blackbox/test_limits.py).
HOG = "b = bytearray(256 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint('survived')\n"


# The cell with every namespace (the default), and explicit host mode.
MODES = pytest.mark.parametrize("unshare", ["all", HOST_MODE["CELLOS_SUBPROCESS_UNSHARE"]],
                                ids=["unshare-all", "host-mode"])
HOST_MODE_WARNING = "cellos-supervisor: warn: CELLOS_SUBPROCESS_UNSHARE=0: host mode"


def sup_lines(r) -> list[str]:
    """The supervisor's lines, less the warning host mode always gives at start-up."""
    return [l for l in r.err.splitlines() if l.startswith("cellos-supervisor: ") and
            not l.startswith(HOST_MODE_WARNING)]


def end_line(r, cell_id: str, alone: bool = True) -> re.Match:
    """The one end line: it names `cell_id`, it is the supervisor's last line (and,
    with `alone`, its only one: nothing is said twice), and no other line says
    that the cell failed."""
    mine = sup_lines(r)
    ends = [l for l in mine if END_RE.match(l)]
    assert len(ends) == 1, f"expected exactly one end line:\n{r.err}"
    assert len([l for l in r.err.splitlines() if f"cell {cell_id} " in l]) == 1, r.err
    assert mine[-1] == ends[0], f"the end line is not the supervisor's last line:\n{r.err}"
    assert r.err.endswith(ends[0] + "\n"), f"something followed the end line:\n{r.err!r}"
    if alone:
        assert mine == ends, f"the supervisor said more than its end line:\n{r.err}"
    m = END_RE.match(ends[0])
    assert m["id"] == cell_id, ends[0]
    return m


def fmt_bytes(b: int) -> str:
    """outcome.c's rendering (exact MiB, else one decimal)."""
    if b >= MiB and b % MiB == 0:
        return f"{b // MiB} MiB"
    if b >= MiB:
        return f"{b / MiB:.1f} MiB"
    if b >= 1024:
        return f"{b / 1024:.1f} KiB"
    return f"{b} bytes"


def inner(ev: dict) -> dict:
    return ev["data"]["event"] if ev.get("type", "").endswith("signed_envelope.v1") else ev


# --------------------------------------------------------------------------- the workload's end


@MODES
def test_nonzero_exit(unshare):
    cid = unique_id("end-exit")
    # The workload's own stderr comes first; the verdict is the last line.
    r = run_cell(make_spec(["/bin/sh", "-c", "echo workload-said-this >&2; exit 3", MARK], id=cid),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 3, r
    m = end_line(r, cid)
    assert m["phase"] is None
    assert re.fullmatch(rf"exited with status 3 after {DURATION}", m["what"]), m["what"]
    assert r.err.index("workload-said-this") < r.err.index(m[0])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_signal(sig):
    cid = unique_id("end-sig")
    r = run_cell(make_spec(["/bin/sh", "-c", f"ulimit -c 0; kill -{int(sig)} $$; sleep 5", MARK], id=cid),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 128 + sig, r
    m = end_line(r, cid)
    assert re.fullmatch(rf"killed by signal {int(sig)} \({sig.name}\) after {DURATION}", m["what"]), m["what"]


@MODES
def test_oom_names_the_limit_and_the_peak(unshare):
    cid = unique_id("end-oom")
    limit = 64 * MiB
    r = run_cell(make_spec(py_argv(HOG, MARK), id=cid, run_extra={"limits": {"memoryMaxBytes": limit}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 137, r
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "oom"
    peak = r.event("command.v1.completed")["data"]["resourceUsage"]["maxRssBytes"]
    m = end_line(r, cid)
    assert re.fullmatch(rf"out of memory \(limit 64 MiB, peak {re.escape(fmt_bytes(peak))}\) after {DURATION}",
                        m["what"]), (m["what"], peak)


def test_oom_of_a_child_is_still_out_of_memory():
    # The shell survives its child's OOM kill and exits 137 itself.
    cid = unique_id("end-oomchild")
    r = run_cell(make_spec(["/bin/sh", "-c", f"/usr/bin/python3 -c '{HOG}'; exit $?", MARK], id=cid,
                           run_extra={"limits": {"memoryMaxBytes": 48 * MiB}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 137, r
    m = end_line(r, cid)
    assert m["what"].startswith("out of memory (limit 48 MiB, peak "), m["what"]


def test_timeout_names_the_limit():
    cid = unique_id("end-timeout")
    r = run_cell(make_spec(["/bin/sh", "-c", "sleep 30", MARK], id=cid, run_extra={"timeoutMs": 500}))
    assert r.rc == 124, r
    m = end_line(r, cid)
    assert re.fullmatch(rf"timed out after {DURATION} \(run\.timeoutMs 500\)", m["what"]), m["what"]


def test_operator_timeout_is_named_as_such():
    cid = unique_id("end-optimeout")
    r = run_cell(make_spec(["/bin/sh", "-c", "sleep 30", MARK], id=cid), env={"CELLOS_RUN_TIMEOUT_MS": "400"})
    assert r.rc == 124, r
    m = end_line(r, cid)
    assert re.fullmatch(rf"timed out after {DURATION} \(CELLOS_RUN_TIMEOUT_MS 400\)", m["what"]), m["what"]


def test_ttl():
    cid = unique_id("end-ttl")
    r = run_cell(make_spec(["/bin/sh", "-c", "sleep 30", MARK], id=cid, ttl=1))
    assert r.rc == 124, r
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "ttl_exceeded"
    m = end_line(r, cid)
    assert m["what"] == "lifetime.ttlSeconds 1 exceeded", m["what"]


def test_spawn_failure_not_found():
    cid = unique_id("end-notfound")
    r = run_cell(make_spec(["/x-" + MARK], id=cid))
    assert r.rc == 127, r
    m = end_line(r, cid)
    assert m["what"] == f"cannot execute /x-{MARK}: not found", m["what"]


def test_spawn_failure_not_executable():
    # A host file without an x bit, visible in the cell's (read-only) /etc.
    cid = unique_id("end-noexec")
    r = run_cell(make_spec(["/etc/passwd", MARK], id=cid))
    assert r.rc == 126, r
    m = end_line(r, cid)
    assert m["what"] == "cannot execute /etc/passwd: permission denied", m["what"]


def _export_spec(cid, code="0"):
    return make_spec(["/bin/sh", "-c", f"echo ok > /work/there.txt; exit {code}", MARK], id=cid,
                     run_extra={"workingDirectory": "/work"},
                     spec_extra={"export": {"artifacts": [{"name": "there", "path": "/work/there.txt"},
                                                          {"name": "gone", "path": "/work/gone.txt"}]}})


def test_export_failure():
    cid = unique_id("end-export")
    r = run_cell(_export_spec(cid), env={"CELLOS_EXPORT_DIR": str(new_dir("exp"))})
    assert r.rc == 125, r
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "export_failed"
    # The per-artifact line says why; the end line says which, and that the cell failed.
    m = end_line(r, cid, alone=False)
    assert m["what"] == "1 of 2 artifacts not exported (gone)", m["what"]
    why = [l for l in sup_lines(r) if l.startswith("cellos-supervisor: error: export gone: ")]
    assert len(why) == 1 and "does not exist" in why[0], r.err


def test_export_failure_after_a_failed_workload_is_said_in_the_same_line():
    cid = unique_id("end-export4")
    r = run_cell(_export_spec(cid, "4"), env={"CELLOS_EXPORT_DIR": str(new_dir("exp"))})
    assert r.rc == 4, r
    m = end_line(r, cid, alone=False)
    assert re.fullmatch(rf"exited with status 4 after {DURATION}; 1 of 2 artifacts not exported \(gone\)",
                        m["what"]), m["what"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_supervisor_termination(sig):
    cid = unique_id("end-term")
    run = Running(make_spec(["/bin/sh", "-c", "sleep 30", MARK], id=cid), env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    try:
        run.wait_event("observability.v1.process_spawned")
        run.proc.send_signal(sig)
        r = run.finish(timeout=15)
    finally:
        run.kill()
    assert r.rc == 128 + sig, r
    m = end_line(r, cid)
    assert re.fullmatch(rf"stopped by {sig.name} after {DURATION}", m["what"]), m["what"]


# --------------------------------------------------------------------------- before the cell started


def test_policy_denial_argv0_prefixes():
    cid = unique_id("end-argv0")
    r = run_cell(make_spec(["/bin/true", MARK], id=cid), env={"CELLOS_RUN_ARGV0_ALLOW_PREFIXES": "/opt/tools"})
    assert r.rc == 125, r
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["reason"] == "policy_denied"
    m = end_line(r, cid)
    assert m["phase"] == "create", m[0]
    assert m["what"] == f"refused by policy: {f['message']}", m["what"]
    assert "CELLOS_RUN_ARGV0_ALLOW_PREFIXES" in m["what"] and "/bin/true" in m["what"]


def _v1_cpu_mount():
    for line in open("/proc/self/mountinfo"):
        parts = line.split()
        sep = parts.index("-")
        if parts[sep + 1] == "cgroup" and "cpu" in parts[sep + 3].split(","):
            return parts[4]
    return None


def test_policy_denial_hardened_refusal_at_create():
    # v1 refuses a child quota larger than its parent's: the limit cannot apply,
    # which hardened refuses at create (test_limits.py does the same).
    cpu = _v1_cpu_mount()
    if cpu is None:
        pytest.fail("this test needs the v1 cpu controller (a hybrid host, as CI is)")
    parent = os.path.join(cpu, f"{MARK}-endh-{uuid.uuid4().hex[:6]}")
    os.mkdir(parent)
    try:
        with open(os.path.join(parent, "cpu.cfs_quota_us"), "w") as f:
            f.write("10000")
        key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        env = {"CELLOS_DEPLOYMENT_PROFILE": "hardened", "CELLOS_SUBPROCESS_UNSHARE": "all",
               "CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "end", "CELLOS_EVENT_SIGNING_KEY_BASE64": key,
               "CELLOS_CGROUP_PARENT": parent}
        cid = unique_id("end-hardened")
        r = run_cell(make_spec(["/usr/bin/true", MARK], id=cid, run_extra={"limits": {"cpuMax": {"quotaMicros": 50000}}}),
                     env=env)
    finally:
        for d in os.listdir(parent):
            if os.path.isdir(os.path.join(parent, d)):
                os.rmdir(os.path.join(parent, d))
        os.rmdir(parent)
    assert r.rc == 125, r
    failed = [inner(e) for e in r.events if inner(e)["type"].endswith("lifecycle.v1.failed")]
    assert failed and failed[0]["data"]["reason"] == "policy_denied", r.events
    m = end_line(r, cid)
    assert m["phase"] == "create", m[0]
    assert m["what"].startswith("refused by policy: CELLOS_DEPLOYMENT_PROFILE=hardened: run.limits"), m["what"]
    assert "run.limits.cpuMax" in m["what"], m["what"]


def test_backend_failure_at_create():
    cid = unique_id("end-backend")
    r = run_cell(make_spec(["/usr/bin/true", MARK], id=cid, run_extra={"limits": {"memoryMaxBytes": 4096}}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 125, r
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["reason"] == "backend_failed" and f["phase"] == "create", f
    m = end_line(r, cid)
    assert m["phase"] == "create" and m["what"] == f["message"], (m[0], f)
    assert "run.limits.memoryMaxBytes" in m["what"]


def test_failure_before_start_names_the_phase_and_the_message():
    cid = unique_id("end-secret")
    r = run_cell(make_spec(["/usr/bin/true", MARK], id=cid, secret_refs=["END_LINE_MISSING"]))
    assert r.rc == 125, r
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["phase"] == "secrets", f
    m = end_line(r, cid)
    assert m["phase"] == "secrets" and m["what"] == f["message"], (m[0], f)
    assert "END_LINE_MISSING" in m["what"]


# --------------------------------------------------------------------------- success


@MODES
def test_success_prints_no_end_line(unshare):
    cid = unique_id("end-ok")
    r = run_cell(make_spec(["/bin/sh", "-c", "echo fine >&2", MARK], id=cid),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 0, r
    assert not [l for l in r.err.splitlines() if END_RE.match(l) or cid in l], r.err
    assert sup_lines(r) == [] and "fine\n" in r.err, r.err


def test_end_line_is_written_at_the_quietest_log_level():
    cid = unique_id("end-quiet")
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 9", MARK], id=cid), env={"CELLOS_LOG": "error"})
    assert r.rc == 9, r
    assert end_line(r, cid)["what"].startswith("exited with status 9 after ")
