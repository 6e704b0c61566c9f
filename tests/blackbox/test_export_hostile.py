"""SPEC §10: a hostile workload cannot make export read anything outside the
cell. Each case replaces the artifact with something that is not a plain
regular file inside the workspace (a symlink to a host file, a symlinked
directory, a FIFO, a device, a socket, a directory, a huge sparse file, a
hardlink to a file it cannot read, a path outside the workspace): that
artifact fails with export.v2.failed, its neighbour still goes out, and no byte
of the host file (a canary) reaches the export root, an event or a log."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from conftest import HOST_MODE, make_cell_writable, make_spec, new_dir, py_argv, run_cell
from exporthelp import HOST_READ_VAR, by_artifact, host_dir, tree

pytestmark = pytest.mark.usefixtures("no_residue")

# mode -> (CELLOS_SUBPROCESS_UNSHARE, workingDirectory or None (host dir), where artifacts are written)
MODES = {
    "workspace": ("all", "/work"),
    "userns-workspace": ("net,mnt,pid,ipc,uts,cgroup,user", "/work"),
    "cell-tmp": ("all", None),          # a mount namespace, no workspace: the cell's private /tmp
    "host": ("0", None),                # explicit host mode, no namespaces: a host directory,
                                        # allowed by CELLOS_EXPORT_HOST_PATHS_ALLOW
}

CASES = {
    "symlink-to-host-file": ("os.symlink(HOST, ART)", "symbolic link"),
    "relative-symlink": ("os.symlink('../../../../../../etc/passwd', ART)", "symbolic link"),
    "symlinked-directory": ("os.symlink(os.path.dirname(HOST), DIR + '/sub')", "symbolic link"),
    "fifo": ("os.mkfifo(ART)", "FIFO"),
    "socket": ("import socket; s = socket.socket(socket.AF_UNIX); s.bind(ART)", "socket"),
    "directory": ("os.mkdir(ART)", "directory"),
    "huge-sparse": ("f = open(ART, 'wb'); f.truncate(3 << 30); f.close()", "CELLOS_EXPORT_MAX_BYTES"),
    "device": (None, None),             # artifact path /dev/zero itself
    "outside-workspace": (None, None),  # artifact path /etc/hostname
}


def cell_dir(mode):
    unshare, wd = MODES[mode]
    if wd:
        return wd
    if unshare != "0":
        return "/tmp/out"
    # Host mode: the workload (the run's unprivileged uid) writes its artifacts here.
    return str(make_cell_writable(host_dir("hostile")))


def run_case(mode, case, canary_file):
    unshare, wd = MODES[mode]
    d = cell_dir(mode)
    code, _ = CASES[case]
    art = f"{d}/art"
    if case == "device":
        art = "/dev/zero"
    elif case == "outside-workspace":
        art = "/etc/hostname"
    elif case == "symlinked-directory":
        art = f"{d}/sub/{os.path.basename(canary_file)}"
    prog = (f"import os, sys\nHOST, DIR, ART = {str(canary_file)!r}, {d!r}, {art!r}\n"
            f"os.makedirs(DIR, exist_ok=True)\nopen(DIR + '/good', 'w').write('good')\n"
            + (code + "\n" if code else ""))
    root = new_dir("exp")
    run_extra = {"workingDirectory": wd} if wd else {}
    doc = make_spec(py_argv(prog), run_extra=run_extra, spec_extra={"export": {"artifacts": [
        {"name": "good", "path": f"{d}/good"}, {"name": "bad", "path": art}]}})
    t0 = time.monotonic()
    r = run_cell(doc, env={"CELLOS_SUBPROCESS_UNSHARE": unshare, "CELLOS_EXPORT_DIR": str(root),
                           HOST_READ_VAR: d if unshare == "0" else None, "CELLOS_LOG": "debug"})
    return r, root, time.monotonic() - t0


@pytest.fixture
def canary_file():
    """A host file the workload would love to exfiltrate through export."""
    d = new_dir("hostsecret")
    os.chmod(d, 0o755)
    p = d / "hostsecret.txt"
    token = "host-canary-" + uuid.uuid4().hex
    p.write_text(token)
    os.chmod(p, 0o644)
    return p, token


def expected_reason(mode, case):
    if case == "device":
        return "not inside the workspace" if MODES[mode][1] else "device"
    if case == "outside-workspace":
        return "not inside the workspace" if MODES[mode][1] else None  # no workspace: the cell's view is the limit
    return CASES[case][1]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_hostile_artifact_fails_and_reads_nothing_outside_the_cell(mode, case, canary_file):
    path, token = canary_file
    r, root, took = run_case(mode, case, path)
    if mode == "host" and case in ("device", "outside-workspace"):
        # A host path outside CELLOS_EXPORT_HOST_PATHS_ALLOW: refused before anything runs.
        assert r.rc == 125 and r.events == [], r
        assert "spec.export.artifacts[1]" in r.err and HOST_READ_VAR in r.err, r.err
        assert tree(root) == {}
        return
    want = expected_reason(mode, case)
    evs = by_artifact(r)
    assert evs["good"]["type"].endswith("export.v2.completed"), r
    if want is None:
        # /etc/hostname of the cell's own (read-only) view: allowed, it is what the workload sees.
        assert r.rc == 0, r
        return
    assert r.rc == 125, r
    bad = evs["bad"]
    assert bad["type"].endswith("export.v2.failed"), bad
    assert want in bad["data"]["reason"], bad["data"]["reason"]
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "export_failed"
    assert took < 10, f"export took {took:.1f}s (a FIFO or a huge file must not be waited on / read)"
    exported = tree(root)
    assert list(exported.values()) == [b"good"], sorted(exported)
    for where, data in (("events", r.raw), ("stderr", r.err_bytes), ("stdout", r.out_bytes)):
        assert token.encode() not in data, f"host file content reached {where}"


def test_hardlink_to_a_file_the_workload_cannot_read_is_not_exported(canary_file):
    """Without a mount namespace the workload may have a hardlink to a root-owned
    file it cannot read in its output; export reads with the run's unprivileged
    uid, not the supervisor's privileges.

    The workload is the run's unprivileged uid now (explicit host mode), and
    fs.protected_hardlinks=1 stops it from linking a root-owned file it cannot read;
    where that sysctl is 0 it can. The test makes the link itself, as root, before
    the run (what such a workload would have done), and checks the workload cannot
    read it."""
    path, token = canary_file
    os.chmod(path, 0o000)
    d = make_cell_writable(host_dir("hostile"))
    os.link(path, d / "art")
    prog = (f"import os\n"
            f"try:\n    open({str(d)!r} + '/art').read()\n    print('READABLE')\nexcept PermissionError:\n    pass\n")
    root = new_dir("exp")
    doc = make_spec(py_argv(prog), spec_extra={"export": {"artifacts": [{"name": "bad", "path": f"{d}/art"}]}})
    r = run_cell(doc, env={**HOST_MODE, "CELLOS_EXPORT_DIR": str(root), HOST_READ_VAR: d})
    assert "READABLE" not in r.out, "the workload could read the file itself: the test proves nothing"
    assert os.path.exists(f"{d}/art"), r
    assert r.rc == 125, r
    assert "permission denied" in r.event("export.v2.failed")["data"]["reason"]
    assert tree(root) == {}
    assert token.encode() not in r.raw + r.err_bytes


def test_masked_path_in_the_cell_is_not_exported():
    """/etc/shadow is masked in the cell (a /dev/null bind): export sees what the
    workload sees, a device, not the host's file."""
    root = new_dir("exp")
    doc = make_spec(["/usr/bin/true"], spec_extra={"export": {"artifacts": [{"name": "s", "path": "/etc/shadow"}]}})
    r = run_cell(doc, env={"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_EXPORT_DIR": str(root)})
    assert r.rc == 125, r
    assert "device" in r.event("export.v2.failed")["data"]["reason"]
    assert tree(root) == {}
