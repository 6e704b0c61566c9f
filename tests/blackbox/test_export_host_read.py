"""SPEC §10 and §7: export reading host paths. An export-only cell (no `run`) and a
cell without a mount namespace read host files: only under a prefix of
CELLOS_EXPORT_HOST_PATHS_ALLOW (whole components; else 125 at admission, before
anything is read), as the run's unprivileged uid with no capabilities, never
through a symlink, and not at all in `hardened`. Exported files are mode 0640."""
from __future__ import annotations

import base64
import os
import stat
import uuid

import pytest

from conftest import make_spec, new_dir, py_argv, run_cell
from exporthelp import HOST_READ_VAR, by_artifact, host_dir, tree, writer_spec

pytestmark = pytest.mark.usefixtures("no_residue")

# How the artifact is read from the host: by an export-only cell, or by a running
# cell that has no mount namespace (its view of the filesystem is the host's).
READERS = ["export-only", "no-mount-namespace"]


def doc_for(reader, *artifacts):
    """A document whose artifacts [(name, path)] are read from the host by `reader`."""
    export = {"export": {"artifacts": [{"name": n, "path": str(p)} for n, p in artifacts]}}
    if reader == "export-only":
        return make_spec(run=False, spec_extra=export)
    return make_spec(["/usr/bin/true"], spec_extra=export)


def env_for(reader, root, allow=None, **more):
    """Every variable the behaviour depends on, explicitly (allow None: unset)."""
    env = {"CELLOS_EXPORT_DIR": str(root), HOST_READ_VAR: allow, "CELLOS_DEPLOYMENT_PROFILE": "portable",
           "CELLOS_SUBPROCESS_UNSHARE": "all" if reader == "export-only" else "net,ipc,uts"}
    env.update(more)
    return env


def host_file(d, name, data=None, mode=0o644):
    """A root-owned file in the host directory `d`; returns (path, data)."""
    data = data if data is not None else ("host-canary-" + uuid.uuid4().hex).encode()
    p = d / name
    p.write_bytes(data)
    os.chmod(p, mode)
    return p, data


def refused_at_admission(r, *needles):
    """125 before the run: one line on stderr naming the field and the variable, no
    event (nothing was created, nothing was read)."""
    assert r.rc == 125, r
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1, r.err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    assert r.events == [], r.types


def no_leak(r, data):
    for where, got in (("events", r.raw), ("stderr", r.err_bytes), ("stdout", r.out_bytes)):
        assert data not in got, f"the host file's content reached {where}"


def exported_mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_export_only_cell_cannot_read_etc_shadow():
    """Issue 9, finding 1: this document copied /etc/shadow, world-readable."""
    root = new_dir("exp")
    doc = make_spec(run=False, spec_extra={"export": {"artifacts": [{"name": "s", "path": "/etc/shadow"}]}})
    for allow in (None, str(host_dir("elsewhere"))):
        r = run_cell(doc, env=env_for("export-only", root, allow))
        refused_at_admission(r, "spec.export.artifacts[0]", "/etc/shadow", HOST_READ_VAR)
        assert tree(root) == {}
    # --validate applies the same admission.
    r = run_cell(doc, env=env_for("export-only", root), args=["--validate", "{spec}"])
    assert r.rc == 125 and HOST_READ_VAR in r.err, r


@pytest.mark.parametrize("reader", READERS)
def test_a_file_under_an_allowed_prefix_is_exported_mode_0640(reader):
    root, src = new_dir("exp"), host_dir("src")
    (src / "sub").mkdir(mode=0o755)
    path, data = host_file(src / "sub", "build.log")
    doc = doc_for(reader, ("build.log", path))
    cid = doc["spec"]["id"]
    # Several prefixes, one with a trailing slash and a repeated one.
    r = run_cell(doc, env=env_for(reader, root, f"/nonexistent,{src}/,{src}"))
    assert r.rc == 0, r
    assert r.event("export.v2.completed")["data"]["bytes"] == len(data)
    assert tree(root) == {f"{cid}/build.log": data}
    assert exported_mode(root / cid / "build.log") == 0o640
    assert exported_mode(root / cid) & 0o002 == 0, "the cell's export directory is world-writable"


@pytest.mark.parametrize("reader", READERS)
def test_a_file_only_root_can_read_is_not_exported(reader):
    """The read is unprivileged: a 0600 root-owned file under an allowed prefix is
    refused with permission denied (the supervisor, root, could read it)."""
    root, src = new_dir("exp"), host_dir("src")
    path, data = host_file(src, "root-only", mode=0o600)
    r = run_cell(doc_for(reader, ("secret", path)), env=env_for(reader, root, str(src)))
    assert r.rc == 125, r
    failed = r.event("export.v2.failed")["data"]
    assert failed["artifactName"] == "secret"
    assert "permission denied" in failed["reason"], failed["reason"]
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "export_failed"
    assert tree(root) == {}
    no_leak(r, data)


@pytest.mark.parametrize("reader", READERS)
def test_a_symlink_under_the_prefix_is_not_followed(reader):
    root, src, outside = new_dir("exp"), host_dir("src"), host_dir("outside")
    _, data = host_file(outside, "secret")
    os.symlink(outside, src / "link")
    os.symlink(outside / "secret", src / "flink")
    ok, ok_data = host_file(src, "ok", b"fine\n")
    doc = doc_for(reader, ("via-dir", src / "link" / "secret"), ("via-file", src / "flink"), ("ok", ok))
    cid = doc["spec"]["id"]
    r = run_cell(doc, env=env_for(reader, root, str(src)))
    assert r.rc == 125, r
    evs = by_artifact(r)
    for name in ("via-dir", "via-file"):
        assert evs[name]["type"].endswith("export.v2.failed")
        assert "symbolic link" in evs[name]["data"]["reason"], evs[name]["data"]["reason"]
    assert evs["ok"]["type"].endswith("export.v2.completed")
    assert tree(root) == {f"{cid}/ok": ok_data}
    assert exported_mode(root / cid / "ok") == 0o640
    no_leak(r, data)


@pytest.mark.parametrize("reader", READERS)
def test_prefixes_match_whole_components(reader):
    """/srv/ci admits /srv/ci/x, never /srv/ci-evil/x."""
    root, base = new_dir("exp"), host_dir("srv")
    (base / "ci").mkdir(mode=0o755)
    (base / "ci-evil").mkdir(mode=0o755)
    evil, data = host_file(base / "ci-evil", "f")
    for allow in (str(base / "ci"), str(base / "ci") + "/"):
        r = run_cell(doc_for(reader, ("ok", base / "ci" / "nothing-yet"), ("evil", evil)),
                     env=env_for(reader, root, allow))
        refused_at_admission(r, "spec.export.artifacts[1]", "evil", HOST_READ_VAR)
        assert tree(root) == {}
        no_leak(r, data)


def test_a_cell_without_a_mount_namespace_is_refused_before_its_workload_runs():
    root, out = new_dir("exp"), host_dir("out")
    os.chmod(out, 0o777)  # whatever uid the workload has, it could leave the marker
    marker = out / "ran"
    doc = make_spec(py_argv(f"open({str(marker)!r}, 'w')"),
                    spec_extra={"export": {"artifacts": [{"name": "hosts", "path": "/etc/hosts"}]}})
    r = run_cell(doc, env=env_for("no-mount-namespace", root, str(out)))
    refused_at_admission(r, "spec.export.artifacts[0]", "/etc/hosts", HOST_READ_VAR)
    assert not marker.exists(), "the workload ran"
    assert tree(root) == {}


def test_hardened_refuses_host_reads_altogether():
    root, src = new_dir("exp"), host_dir("src")
    path, data = host_file(src, "f")
    key = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
    env = env_for("export-only", root, str(src), CELLOS_DEPLOYMENT_PROFILE="hardened",
                  CELLOS_SUBPROCESS_UNSHARE="net,mnt,pid,ipc,uts,cgroup,user", CELLOS_SECCOMP="baseline",
                  CELLOS_EVENT_SIGNING="hmac", CELLOS_EVENT_SIGNING_KID="cellbb-test",
                  CELLOS_EVENT_SIGNING_KEY_BASE64=key)
    r = run_cell(doc_for("export-only", ("f", path)), env=env)
    refused_at_admission(r, "spec.export.artifacts[0]", "CELLOS_DEPLOYMENT_PROFILE=hardened")
    assert tree(root) == {}
    no_leak(r, data)
    # The same configuration exports from a cell's own workspace: it was the host
    # read that was refused, not a missing piece of the profile.
    doc = writer_spec({"/work/out": b"from the cell"}, [("out", "/work/out")])
    r = run_cell(doc, env=env)
    assert r.rc == 0, r
    assert tree(root) == {f"{doc['spec']['id']}/out": b"from the cell"}
    assert exported_mode(root / doc["spec"]["id"] / "out") == 0o640


def test_a_workspace_artifact_is_exported_mode_0640():
    root = new_dir("exp")
    doc = writer_spec({"/work/report": b"report"}, [("report", "/work/report")])
    cid = doc["spec"]["id"]
    r = run_cell(doc, env={"CELLOS_EXPORT_DIR": str(root), "CELLOS_SUBPROCESS_UNSHARE": "all", HOST_READ_VAR: None})
    assert r.rc == 0, r
    assert exported_mode(root / cid / "report") == 0o640
    assert exported_mode(root / cid) & 0o002 == 0


@pytest.mark.parametrize("value", ["relative/dir", "/srv/../etc", "/srv,etc"])
def test_an_invalid_allow_list_is_refused_naming_the_variable(value):
    root = new_dir("exp")
    doc = writer_spec({"/work/f": b"x"}, [("f", "/work/f")])
    r = run_cell(doc, env={"CELLOS_EXPORT_DIR": str(root), "CELLOS_SUBPROCESS_UNSHARE": "all", HOST_READ_VAR: value})
    refused_at_admission(r, HOST_READ_VAR)
    assert tree(root) == {}
