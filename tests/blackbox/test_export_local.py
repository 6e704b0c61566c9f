"""SPEC §10 local export (CELLOS_EXPORT_DIR), the export phase in the lifecycle,
exit status and admission rules that do not need a server."""
from __future__ import annotations

import os

import pytest

from conftest import make_spec, new_dir, py_argv, run_cell, unique_id
from exporthelp import HOST_READ_VAR, by_artifact, check_provenance, export_events, host_dir, sha256, tree, writer_spec

pytestmark = pytest.mark.usefixtures("no_residue")

ORDER_TAIL = ["export.v2.completed", "compliance.v1.summary", "lifecycle.v1.destroyed"]


def local_env(root, unshare="all", allow=None, **more):
    """`allow`: CELLOS_EXPORT_HOST_PATHS_ALLOW (None: unset), for host reads."""
    env = {"CELLOS_EXPORT_DIR": str(root), "CELLOS_SUBPROCESS_UNSHARE": unshare, HOST_READ_VAR: allow}
    env.update(more)
    return env


@pytest.mark.parametrize("unshare", ["all", ""], ids=["workspace", "no-namespaces"])
def test_artifact_is_copied_with_a_complete_receipt(unshare):
    root = new_dir("exp")
    data = b"<testsuite tests='3'/>\n" * 100
    # Without a mount namespace the workload writes a host directory of its own,
    # which export may read only when the operator allows it.
    wd = "/work" if unshare else str(host_dir("wd"))
    cid = unique_id("exp")
    r = run_cell(writer_spec({f"{wd}/report.xml": data}, [("report.xml", f"{wd}/report.xml")], workdir=wd, id=cid),
                 env=local_env(root, unshare, allow=None if unshare else wd))
    assert r.rc == 0, r
    ev = r.event("export.v2.completed")
    d = ev["data"]
    assert d["artifactName"] == "report.xml"
    assert d["targetKind"] == "LocalPath"
    assert "targetName" not in d
    assert d["destination"] == f"{root}/{cid}/report.xml"
    assert d["bytes"] == len(data)
    assert d["sha256"] == sha256(data)
    assert d["receipt"]["attempts"] == 1
    assert d["cellId"] == cid and d["runId"] == r.event("lifecycle.v1.started")["data"]["runId"]
    check_provenance(r, ev)
    assert r.types[-3:] == ORDER_TAIL, r.types
    if unshare:
        assert r.types.index("observability.v1.network_enforcement") < r.types.index("export.v2.completed")
    assert tree(root) == {f"{cid}/report.xml": data}
    assert r.event("lifecycle.v1.destroyed")["data"]["outcome"] == "succeeded"


def test_two_sequential_cells_sharing_a_root_keep_separate_folders():
    root = new_dir("exp")
    a, b = unique_id("first"), unique_id("second")
    for cid, content in ((a, b"from A\n"), (b, b"from B\n")):
        r = run_cell(writer_spec({"/work/out.txt": content}, [("out.txt", "/work/out.txt")], id=cid),
                     env=local_env(root))
        assert r.rc == 0, r
    assert tree(root) == {f"{a}/out.txt": b"from A\n", f"{b}/out.txt": b"from B\n"}
    assert sorted(os.listdir(root)) == sorted([a, b])


def test_several_artifacts_one_event_each_and_an_empty_file():
    root = new_dir("exp")
    files = {"/work/a.txt": b"A", "/work/sub/b.bin": bytes(range(256)) * 40, "/work/empty": b""}
    code_mk = "os.makedirs('/work/sub', exist_ok=True)\n"
    doc = writer_spec({}, [("a.txt", "/work/a.txt"), ("b.bin", "/work/sub/b.bin"), ("empty", "/work/empty")],
                      extra_code=code_mk + "".join(f"open({p!r}, 'wb').write({d!r})\n" for p, d in files.items()))
    r = run_cell(doc, env=local_env(root))
    assert r.rc == 0, r
    evs = by_artifact(r)
    assert set(evs) == {"a.txt", "b.bin", "empty"}
    for name, path in (("a.txt", "/work/a.txt"), ("b.bin", "/work/sub/b.bin"), ("empty", "/work/empty")):
        assert evs[name]["data"]["bytes"] == len(files[path])
        assert evs[name]["data"]["sha256"] == sha256(files[path])
    cid = doc["spec"]["id"]
    assert tree(root) == {f"{cid}/a.txt": b"A", f"{cid}/b.bin": files["/work/sub/b.bin"], f"{cid}/empty": b""}


def test_export_only_cell_reads_a_host_file():
    root, src = new_dir("exp"), host_dir("src")
    (src / "build.log").write_bytes(b"built\n")
    doc = make_spec(run=False, spec_extra={"export": {"artifacts": [{"name": "build.log",
                                                                     "path": str(src / "build.log")}]}})
    r = run_cell(doc, env=local_env(root, allow=src))
    assert r.rc == 0, r
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.started", "observability.v1.network_enforcement",
                       "export.v2.completed", "compliance.v1.summary", "lifecycle.v1.destroyed"], r.types
    assert tree(root) == {f"{doc['spec']['id']}/build.log": b"built\n"}


def test_export_only_cell_does_not_follow_a_symlink_on_any_component():
    root, src = new_dir("exp"), host_dir("src")
    (src / "real").mkdir()
    (src / "real" / "f").write_bytes(b"x")
    (src / "link").symlink_to(src / "real")
    (src / "flink").symlink_to(src / "real" / "f")
    doc = make_spec(run=False, spec_extra={"export": {"artifacts": [
        {"name": "via-dir", "path": str(src / "link" / "f")}, {"name": "via-file", "path": str(src / "flink")},
        {"name": "ok", "path": str(src / "real" / "f")}]}})
    r = run_cell(doc, env=local_env(root, "", allow=src))
    assert r.rc == 125, r
    evs = by_artifact(r)
    assert "symbolic link" in evs["via-dir"]["data"]["reason"]
    assert "symbolic link" in evs["via-file"]["data"]["reason"]
    assert evs["ok"]["type"].endswith("export.v2.completed")
    assert tree(root) == {f"{doc['spec']['id']}/ok": b"x"}


def test_missing_artifact_after_a_successful_workload_is_export_failed_125():
    root = new_dir("exp")
    r = run_cell(writer_spec({"/work/there": b"1"}, [("there", "/work/there"), ("gone", "/work/gone")]),
                 env=local_env(root))
    assert r.rc == 125, r
    evs = by_artifact(r)
    assert evs["there"]["type"].endswith("completed")
    f = evs["gone"]
    assert f["type"].endswith("export.v2.failed")
    assert f["data"]["targetKind"] == "LocalPath"
    assert "/work/gone" in f["data"]["reason"] and "does not exist" in f["data"]["reason"]
    check_provenance(r, f)
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["outcome"] == "failed" and d["reason"] == "export_failed"
    assert r.event("compliance.v1.summary")["data"]["commandExitCode"] == 0
    assert "gone" in r.err  # stderr says which


def test_failed_workload_keeps_its_status_and_its_artifacts_still_go_out():
    root = new_dir("exp")
    r = run_cell(writer_spec({"/work/log": b"failure details"}, [("log", "/work/log"), ("nope", "/work/nope")],
                             exit_code=3), env=local_env(root))
    assert r.rc == 3, r
    assert by_artifact(r)["log"]["type"].endswith("completed")
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "nonzero_exit"


def test_timed_out_workload_still_exports_what_it_wrote():
    root = new_dir("exp")
    doc = writer_spec({"/work/partial": b"half"}, [("partial", "/work/partial")],
                      extra_code="import time\ntime.sleep(30)\n", run_extra={"timeoutMs": 300})
    r = run_cell(doc, env=local_env(root))
    assert r.rc == 124, r
    assert r.event("export.v2.completed")["data"]["bytes"] == 4
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "timeout"


@pytest.mark.parametrize("size,ok", [(1000, True), (1001, False)])
def test_export_max_bytes_caps_the_artifact(size, ok):
    root = new_dir("exp")
    r = run_cell(writer_spec({"/work/big": b"z" * size}, [("big", "/work/big")]),
                 env=local_env(root, CELLOS_EXPORT_MAX_BYTES="1000"))
    if ok:
        assert r.rc == 0, r
        assert r.event("export.v2.completed")["data"]["bytes"] == 1000
    else:
        assert r.rc == 125, r
        reason = r.event("export.v2.failed")["data"]["reason"]
        assert "CELLOS_EXPORT_MAX_BYTES" in reason and "1001" in reason, reason
        assert tree(root) == {}


def test_a_symlink_planted_in_the_export_root_is_not_followed():
    root, elsewhere = new_dir("exp"), new_dir("elsewhere")
    cid = unique_id("planted")
    os.symlink(elsewhere, root / cid)
    r = run_cell(writer_spec({"/work/f": b"data"}, [("f", "/work/f")], id=cid), env=local_env(root))
    assert r.rc == 125, r
    assert "symbolic link" in r.event("export.v2.failed")["data"]["reason"]
    assert os.listdir(elsewhere) == []


def test_a_symlink_at_the_artifact_name_is_replaced_not_written_through():
    root, outside = new_dir("exp"), new_dir("outside")
    victim = outside / "victim"
    victim.write_bytes(b"untouched")
    cid = unique_id("planted")
    (root / cid).mkdir()
    os.symlink(victim, root / cid / "f")
    r = run_cell(writer_spec({"/work/f": b"data"}, [("f", "/work/f")], id=cid), env=local_env(root))
    assert r.rc == 0, r
    assert victim.read_bytes() == b"untouched"
    assert not os.path.islink(root / cid / "f") and (root / cid / "f").read_bytes() == b"data"


def test_second_run_of_the_same_cell_replaces_its_artifact():
    root = new_dir("exp")
    cid = unique_id("again")
    for content in (b"one", b"two"):
        assert run_cell(writer_spec({"/work/f": content}, [("f", "/work/f")], id=cid), env=local_env(root)).rc == 0
    assert tree(root) == {f"{cid}/f": b"two"}


# ------------------------------------------------------------------ admission


def refused(r, *needles):
    assert r.rc == 125, r
    for n in needles:
        assert n in r.err, f"{n!r} not on stderr:\n{r.err}"
    assert r.events == [], r.types
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1, r.err


def test_artifacts_without_any_target_are_refused_before_anything_runs():
    marker = new_dir("m") / "ran"
    doc = writer_spec({}, [("f", "/work/f")], extra_code=f"open({str(marker)!r}, 'w')\n", workdir=None)
    r = run_cell(doc, env={"CELLOS_SUBPROCESS_UNSHARE": ""})
    refused(r, "spec.export.artifacts[0]", "CELLOS_EXPORT_HTTP_BASE_URL", "CELLOS_EXPORT_DIR")
    assert not marker.exists()
    r = run_cell(doc, args=["--validate", "{spec}"])
    assert r.rc == 125 and "spec.export.artifacts[0]" in r.err, r


def test_named_local_target_needs_the_export_dir():
    doc = writer_spec({}, [("f", "/work/f", "keep")], targets=[{"name": "keep", "kind": "local"}])
    refused(run_cell(doc, env={"CELLOS_EXPORT_HTTP_BASE_URL": "http://127.0.0.1:9/"}),
            "spec.export.targets[0]", "CELLOS_EXPORT_DIR")


@pytest.mark.parametrize("var,value", [
    ("CELLOS_EXPORT_DIR", "/nonexistent/cellos-export-root"),
    ("CELLOS_EXPORT_MAX_BYTES", "0"), ("CELLOS_EXPORT_MAX_BYTES", "1G"),
    ("CELLOS_EXPORT_HTTP_TIMEOUT_MS", "-1"),
    ("CELLOS_EXPORT_HTTP_BASE_URL", "ftp://127.0.0.1/x"),
    ("CELLOS_EXPORT_HTTP_BASE_URL__RESULTS", "file:///etc/passwd"),
    ("CELLOS_EXPORT_S3_PRESIGNED_URL__BUCKET", "s3://bucket/key"),
    ("CELLOS_EXPORT_HTTP_BEARER_TOKEN", "tok\nInjected: header"),
])
def test_invalid_export_configuration_is_refused_naming_the_variable(var, value):
    doc = writer_spec({}, [("f", "/work/f")])
    env = {"CELLOS_EXPORT_DIR": str(new_dir("exp"))}
    env[var] = value
    refused(run_cell(doc, env=env), var)


def test_export_dir_file_instead_of_directory_is_refused():
    f = new_dir("exp") / "file"
    f.write_text("x")
    refused(run_cell(writer_spec({}, [("f", "/work/f")]), env={"CELLOS_EXPORT_DIR": str(f)}), "CELLOS_EXPORT_DIR")


def test_path_with_dotdot_is_refused_by_the_validator():
    doc = writer_spec({}, [("f", "/work/../etc/passwd")])
    r = run_cell(doc, env={"CELLOS_EXPORT_DIR": str(new_dir("exp"))})
    assert r.rc == 125 and "spec.export.artifacts[0].path" in r.err, r
