"""SPEC §10 HTTP PUT and S3 presigned PUT export against real servers on
loopback: URL rules, target naming, bearer token, bounded retries, and
credentials that never reach an event or a log line."""
from __future__ import annotations

import signal
import time

import pytest

from conftest import Running, new_dir, run_cell, unique_id
from exporthelp import by_artifact, check_provenance, sha256, tree, writer_spec
from httprecorder import Recorder, closed_port

pytestmark = pytest.mark.usefixtures("no_residue")

DATA = b"artifact body \x00\xff\n" * 50


def one(name="report.xml", target=None, **kw):
    art = ("report.xml" if name is None else name, "/work/out")
    return writer_spec({"/work/out": DATA}, [art + ((target,) if target else ())], **kw)


def env(**kw):
    e = {"CELLOS_SUBPROCESS_UNSHARE": "all"}
    e.update({k: str(v) for k, v in kw.items()})
    return e


def test_put_with_bearer_token_and_receipt():
    with Recorder() as srv:
        doc = one()
        cid = doc["spec"]["id"]
        r = run_cell(doc, env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url + "/upload",
                                  CELLOS_EXPORT_HTTP_BEARER_TOKEN="tok-abc"))
    assert r.rc == 0, r
    assert len(srv.requests) == 1
    req = srv.requests[0]
    assert req.method == "PUT" and req.path == f"/upload/{cid}/report.xml"
    assert req.body == DATA
    assert req.headers["authorization"] == "Bearer tok-abc"
    assert req.headers["content-length"] == str(len(DATA))
    ev = r.event("export.v2.completed")
    d = ev["data"]
    assert d["targetKind"] == "Http" and "targetName" not in d
    assert d["destination"] == f"{srv.url}/upload/{cid}/report.xml"
    assert d["bytes"] == len(DATA) and d["sha256"] == sha256(DATA)
    assert d["receipt"] == {"attempts": 1, "httpStatus": 201, "etag": '"e-1"'}
    check_provenance(r, ev)


@pytest.mark.parametrize("template,expect", [
    ("/put/{cell_id}/files/{artifact_name}", "/put/CID/files/report.xml"),
    ("/{artifact_name}?owner={cell_id}", "/report.xml?owner=CID"),
    ("/only-cell/{cell_id}", "/only-cell/CID"),
    ("/presigned/object?X-Sig=abc&y=1", "/presigned/object?X-Sig=abc&y=1"),
    ("/base", "/base/CID/report.xml"),
    ("/base/", "/base/CID/report.xml"),
    ("", "/CID/report.xml"),
])
def test_url_template_rules(template, expect):
    with Recorder() as srv:
        doc = one()
        cid = doc["spec"]["id"]
        r = run_cell(doc, env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url + template))
    assert r.rc == 0, r
    assert [q.target for q in srv.requests] == [expect.replace("CID", cid)]
    # The destination shows no query string (it may be a signature).
    assert "?" not in r.event("export.v2.completed")["data"]["destination"]


def test_default_target_is_http_when_both_are_configured():
    root = new_dir("exp")
    with Recorder() as srv:
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url, CELLOS_EXPORT_DIR=root))
    assert r.rc == 0, r
    assert len(srv.requests) == 1 and tree(root) == {}
    assert r.event("export.v2.completed")["data"]["targetKind"] == "Http"


@pytest.mark.parametrize("target,suffix", [
    ("artifact-bucket", "ARTIFACT_BUCKET"), ("results", "RESULTS"), ("Mixed.Case_1", "MIXED_CASE_1"),
    ("a-b.c", "A_B_C"),
])
def test_named_http_target_maps_to_its_variable_suffix(target, suffix):
    with Recorder() as named, Recorder() as default:
        doc = one(target=target, targets=[{"name": target, "kind": "http"}])
        r = run_cell(doc, env=env(**{"CELLOS_EXPORT_HTTP_BASE_URL": default.url,
                                     f"CELLOS_EXPORT_HTTP_BASE_URL__{suffix}": named.url + "/t"}))
    assert r.rc == 0, r
    assert len(named.requests) == 1 and default.requests == []
    d = r.event("export.v2.completed")["data"]
    assert d["targetName"] == target and d["targetKind"] == "Http"


def test_named_http_target_without_its_own_url_uses_the_default_one():
    with Recorder() as srv:
        doc = one(target="results", targets=[{"name": "results", "kind": "http"}])
        r = run_cell(doc, env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
    assert r.rc == 0, r
    assert len(srv.requests) == 1
    assert r.event("export.v2.completed")["data"]["targetName"] == "results"


def test_named_http_target_without_any_url_is_refused_at_admission():
    doc = one(target="results", targets=[{"name": "results", "kind": "http"}])
    r = run_cell(doc, env=env(CELLOS_EXPORT_DIR=new_dir("exp")))
    assert r.rc == 125 and r.events == [], r
    assert "CELLOS_EXPORT_HTTP_BASE_URL__RESULTS" in r.err


def test_artifacts_go_to_their_own_targets():
    root = new_dir("exp")
    with Recorder() as srv, Recorder() as s3:
        doc = writer_spec({"/work/a": b"A", "/work/b": b"B", "/work/c": b"C", "/work/d": b"D"},
                          [("a", "/work/a"), ("b", "/work/b", "disk"), ("c", "/work/c", "web"),
                           ("d", "/work/d", "store")],
                          targets=[{"name": "disk", "kind": "local"}, {"name": "web", "kind": "http"},
                                   {"name": "store", "kind": "s3", "bucket": "bk"}])
        cid = doc["spec"]["id"]
        r = run_cell(doc, env=env(CELLOS_EXPORT_DIR=root, CELLOS_EXPORT_HTTP_BASE_URL=srv.url + "/default",
                                  CELLOS_EXPORT_HTTP_BASE_URL__WEB=srv.url + "/web",
                                  CELLOS_EXPORT_S3_PRESIGNED_URL__STORE=s3.url + "/bk/{cell_id}/{artifact_name}?sig=1"))
    assert r.rc == 0, r
    evs = by_artifact(r)
    assert {n: e["data"]["targetKind"] for n, e in evs.items()} == {"a": "Http", "b": "LocalPath", "c": "Http",
                                                                     "d": "S3"}
    assert sorted(q.target for q in srv.requests) == [f"/default/{cid}/a", f"/web/{cid}/c"]
    assert [q.target for q in s3.requests] == [f"/bk/{cid}/d?sig=1"]
    assert tree(root) == {f"{cid}/b": b"B"}


# ------------------------------------------------------------------ S3


def test_s3_presigned_put_and_its_receipt():
    with Recorder() as s3:
        doc = one(target="artifact-bucket",
                  targets=[{"name": "artifact-bucket", "kind": "s3", "bucket": "ci", "keyPrefix": "runs/"}])
        cid = doc["spec"]["id"]
        url = s3.url + "/ci/runs/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=s3cr3tsig"
        r = run_cell(doc, env=env(CELLOS_EXPORT_S3_PRESIGNED_URL__ARTIFACT_BUCKET=url,
                                  CELLOS_EXPORT_HTTP_BEARER_TOKEN="not-for-s3"))
    assert r.rc == 0, r
    req = s3.requests[0]
    assert req.target == "/ci/runs/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=s3cr3tsig"
    assert req.body == DATA
    assert "authorization" not in req.headers  # the signature is in the URL
    d = r.event("export.v2.completed")["data"]
    assert d["targetKind"] == "S3" and d["targetName"] == "artifact-bucket"
    assert d["destination"] == f"s3://ci/runs/{cid}/report.xml"
    assert d["sha256"] == sha256(DATA)
    assert "s3cr3tsig" not in r.raw.decode() + r.err


def test_s3_destination_without_key_prefix():
    with Recorder() as s3:
        doc = one(target="b", targets=[{"name": "b", "kind": "s3", "bucket": "bucket1"}])
        r = run_cell(doc, env=env(CELLOS_EXPORT_S3_PRESIGNED_URL__B=s3.url))
    assert r.rc == 0, r
    cid = doc["spec"]["id"]
    assert r.event("export.v2.completed")["data"]["destination"] == f"s3://bucket1/{cid}/report.xml"
    assert [q.target for q in s3.requests] == [f"/{cid}/report.xml"]


def test_required_s3_without_url_fails_before_the_cell_starts():
    marker = new_dir("m") / "ran"
    doc = one(target="store", targets=[{"name": "store", "kind": "s3", "bucket": "b"}],
              extra_code=f"open({str(marker)!r}, 'w')\n")
    r = run_cell(doc, env=env(CELL_OS_REQUIRE_S3_EXPORT=1, CELLOS_EXPORT_DIR=new_dir("exp")))
    assert r.rc == 125, r
    assert r.events == [], r.types
    assert "CELL_OS_REQUIRE_S3_EXPORT" in r.err and "CELLOS_EXPORT_S3_PRESIGNED_URL__STORE" in r.err
    assert len([l for l in r.err.splitlines() if l.strip()]) == 1, r.err
    assert not marker.exists()


def test_required_s3_applies_to_a_declared_but_unused_target():
    doc = one(targets=[{"name": "unused", "kind": "s3"}])
    r = run_cell(doc, env=env(CELL_OS_REQUIRE_S3_EXPORT=1, CELLOS_EXPORT_DIR=new_dir("exp")))
    assert r.rc == 125 and r.events == [] and "CELLOS_EXPORT_S3_PRESIGNED_URL__UNUSED" in r.err, r


def test_unrequired_s3_without_url_falls_back_to_the_default_target():
    root = new_dir("exp")
    doc = one(target="store", targets=[{"name": "store", "kind": "s3", "bucket": "b"}])
    r = run_cell(doc, env=env(CELLOS_EXPORT_DIR=root))
    assert r.rc == 0, r
    d = r.event("export.v2.completed")["data"]
    assert d["targetKind"] == "LocalPath" and d["targetName"] == "store"
    assert "CELLOS_EXPORT_S3_PRESIGNED_URL__STORE" in r.err  # warned
    assert tree(root) == {f"{doc['spec']['id']}/report.xml": DATA}


def test_unrequired_s3_without_url_or_default_is_refused():
    doc = one(target="store", targets=[{"name": "store", "kind": "s3"}])
    r = run_cell(doc, env=env())
    assert r.rc == 125 and r.events == [] and "CELLOS_EXPORT_S3_PRESIGNED_URL__STORE" in r.err, r


# ------------------------------------------------------------------ retries and timeouts


def test_5xx_is_retried_with_backoff_until_it_succeeds():
    with Recorder(fail_first=2, fail_status=503) as srv:
        t0 = time.monotonic()
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
        took = time.monotonic() - t0
    assert r.rc == 0, r
    assert len(srv.requests) == 3 and all(q.body == DATA for q in srv.requests)
    d = r.event("export.v2.completed")["data"]
    assert d["receipt"]["attempts"] == 3 and d["bytes"] == len(DATA) and d["sha256"] == sha256(DATA)
    assert took >= 0.7, "no back-off between attempts (250 ms, then 500 ms)"
    assert "attempt 1 of 4" in r.err and "attempt 2 of 4" in r.err


def test_persistent_5xx_gives_up_after_the_attempts_and_fails_the_run():
    with Recorder(fail_first=100, fail_status=500) as srv:
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
    assert r.rc == 125, r
    assert len(srv.requests) == 4
    f = r.event("export.v2.failed")["data"]
    assert "HTTP 500" in f["reason"] and "4 attempts" in f["reason"]
    assert f["destination"].startswith(srv.url)
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "export_failed"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 429])
def test_4xx_is_never_retried(status):
    with Recorder(status=status) as srv:
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
    assert r.rc == 125, r
    assert len(srv.requests) == 1
    assert f"HTTP {status}" in r.event("export.v2.failed")["data"]["reason"]


def test_a_redirect_is_not_followed():
    with Recorder(status=307) as srv:
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url, CELLOS_EXPORT_HTTP_BEARER_TOKEN="t"))
    assert r.rc == 125, r
    assert len(srv.requests) == 1
    assert "redirect" in r.event("export.v2.failed")["data"]["reason"]


def test_connection_dropped_is_retried():
    with Recorder(fail_first=1, fail_mode="close") as srv:
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
    assert r.rc == 0, r
    assert r.event("export.v2.completed")["data"]["receipt"]["attempts"] == 2


def test_connection_refused_is_retried_then_fails():
    t0 = time.monotonic()
    r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=f"http://127.0.0.1:{closed_port()}"))
    took = time.monotonic() - t0
    assert r.rc == 125, r
    f = r.event("export.v2.failed")["data"]
    assert "4 attempts" in f["reason"] and "connect" in f["reason"].lower(), f["reason"]
    assert took >= 1.7, "three back-offs: 250 + 500 + 1000 ms"


def test_a_server_that_never_answers_is_bounded_by_the_attempt_timeout():
    with Recorder(hang=5) as srv:
        t0 = time.monotonic()
        r = run_cell(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url, CELLOS_EXPORT_HTTP_TIMEOUT_MS=300))
        took = time.monotonic() - t0
    assert r.rc == 125, r
    assert len(srv.requests) == 4
    assert "timeout" in r.event("export.v2.failed")["data"]["reason"].lower()
    assert took < 4.5, took


def test_export_is_bounded_by_the_cell_ttl():
    with Recorder(hang=10) as srv:
        t0 = time.monotonic()
        r = run_cell(one(ttl=2), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
        took = time.monotonic() - t0
    assert r.rc == 124, r
    assert took < 4, took
    assert r.has("export.v2.failed")
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "ttl_exceeded"


def test_sigterm_during_an_upload_stops_the_export_promptly():
    with Recorder(hang=30) as srv:
        run = Running(one(), env=env(CELLOS_EXPORT_HTTP_BASE_URL=srv.url))
        try:
            run.wait_event("command.v1.completed")
            deadline = time.monotonic() + 10
            while not srv.requests:
                assert time.monotonic() < deadline, "no PUT arrived"
                time.sleep(0.01)
            t0 = time.monotonic()
            run.proc.send_signal(signal.SIGTERM)
            r = run.finish(timeout=10)
        finally:
            run.kill()
    assert time.monotonic() - t0 < 3
    assert r.rc == 128 + signal.SIGTERM, r
    assert "supervisor_terminated" in r.event("export.v2.failed")["data"]["reason"]
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "supervisor_terminated"


# ------------------------------------------------------------------ credentials


@pytest.mark.parametrize("outcome", ["ok", "refused", "unreachable"])
def test_credentials_never_reach_events_or_logs(outcome):
    tok, pw, sig = ("tok-" + unique_id("c"), "pw-" + unique_id("c"), "sig-" + unique_id("c"))
    status = 201 if outcome == "ok" else 403
    with Recorder(status=status) as srv, Recorder(status=status) as s3:
        host = srv.url.split("//")[1] if outcome != "unreachable" else f"127.0.0.1:{closed_port()}"
        s3host = s3.url.split("//")[1] if outcome != "unreachable" else host
        doc = writer_spec({"/work/a": b"a", "/work/b": b"b"}, [("a", "/work/a"), ("b", "/work/b", "s")],
                          targets=[{"name": "s", "kind": "s3", "bucket": "bk"}])
        r = run_cell(doc, env=env(
            CELLOS_EXPORT_HTTP_BASE_URL=f"http://user:{pw}@{host}/up?token={sig}&cell={{cell_id}}",
            CELLOS_EXPORT_HTTP_BEARER_TOKEN=tok,
            CELLOS_EXPORT_S3_PRESIGNED_URL__S=f"http://{s3host}/bk/o?X-Amz-Signature={sig}",
            CELLOS_LOG="debug"))
    assert r.rc == (0 if outcome == "ok" else 125), r
    if outcome != "unreachable":
        assert srv.requests[0].headers["authorization"] == f"Bearer {tok}"  # it was used
        assert sig in s3.requests[0].query
    for where, data in (("events", r.raw), ("stderr", r.err_bytes), ("stdout", r.out_bytes)):
        for c in (tok, pw, sig):
            assert c.encode() not in data, f"credential {c} leaked to {where}"
    for e in by_artifact(r).values():
        dest = e["data"].get("destination", "")
        assert "user" not in dest and "?" not in dest, dest
