"""One admission path (SPEC §2, issue 14 item 5, issue 10 item 1): `cellctl validate`
and `cellos-supervisor --validate` run the very same checks, configuration-dependent
ones included, report every problem at once, agree in text and in `--format json`,
and agree with what a real run of the supervisor does."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO_ROOT, SUPERVISOR, make_spec, new_dir, prepare, run_cell, supervisor_env
from signed_events import cellctl as _cellctl

SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer")


def cellctl(*args, **kw):
    rc, out, err = _cellctl(*args, **kw)
    for needle in SANITIZER:
        assert needle not in err, f"sanitizer report from cellctl:\n{err}"
    return rc, out, err


def supervisor_validate(spec_path, env, *extra):
    p = subprocess.run([str(SUPERVISOR), "--validate", *extra, str(spec_path)], env=supervisor_env(env, None),
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    for needle in SANITIZER:
        assert needle not in p.stderr, f"sanitizer report from the supervisor:\n{p.stderr}"
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------- documents × environments

WRITE_ARTIFACT = ["/bin/sh", "-c", "echo x > /work/out.txt"]
ARTIFACT = {"name": "out.txt", "path": "/work/out.txt"}


def documents():
    wd = {"workingDirectory": "/work"}
    return {
        "minimal": make_spec(["/bin/true"]),
        "bad-fields": make_spec(["/bin/true"], ttl=0, id="..bad", secret_refs=["A", "A"]),
        # Issue 14: an artifact without a target.
        "artifact": make_spec(WRITE_ARTIFACT, run_extra=wd, spec_extra={"export": {"artifacts": [ARTIFACT]}}),
        # Issue 14: file delivery (without a mount namespace in some environments).
        "file-delivery": make_spec(["/bin/true"], secret_refs=["TOKEN"], run_extra={"secretDelivery": "file"}),
        # Issue 10: a secret the broker cannot see.
        "secret": make_spec(["/bin/true"], secret_refs=["TOKEN"]),
        "everything": make_spec(WRITE_ARTIFACT, secret_refs=["TOKEN"],
                                run_extra=dict(wd, secretDelivery="file"),
                                spec_extra={"export": {"artifacts": [ARTIFACT]}}),
        "relative-argv0": make_spec(["true"]),
        # An s3 target without its URL falls back to the default target: a warning.
        "s3-fallback": make_spec(WRITE_ARTIFACT, run_extra=wd, spec_extra={"export": {
            "artifacts": [dict(ARTIFACT, target="results")],
            "targets": [{"name": "results", "kind": "s3", "bucket": "b"}]}}),
    }


def environments():
    d = new_dir("admission")
    secret = d / "token"
    secret.write_text("t\n")
    export_dir = d / "exports"
    export_dir.mkdir()
    return {
        "bare": {},
        "no-mnt": {"CELLOS_SUBPROCESS_UNSHARE": "net"},
        "provided": {"CELLOS_SECRET_TOKEN": "t", "CELLOS_EXPORT_DIR": export_dir},
        "file-broker": {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_TOKEN": secret, "CELLOS_EXPORT_DIR": export_dir},
        "file-broker-missing": {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_TOKEN": d / "no-such-file"},
        "hardened": {"CELLOS_DEPLOYMENT_PROFILE": "hardened"},
        "bad-config": {"CELLOS_CELL_BACKEND": "nope"},
    }


DOCS = documents()
ENVS = environments()


@pytest.fixture(scope="module")
def spec_paths():
    return {name: prepare(doc, jsonl=False)[1] for name, doc in DOCS.items()}


def check_shape(obj):
    assert set(obj) == {"valid", "problems", "warnings", "summary"}, obj
    assert isinstance(obj["valid"], bool) and isinstance(obj["summary"], dict)
    for key in ("problems", "warnings"):
        for item in obj[key]:
            assert set(item) == {"path", "message"}, item
            assert item["path"] and item["message"] and " " not in item["path"], item
    assert obj["valid"] == (obj["problems"] == [])


@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize("doc_name", list(DOCS))
def test_cellctl_and_supervisor_agree_and_match_a_real_run(spec_paths, doc_name, env_name):
    env, spec_path = ENVS[env_name], spec_paths[doc_name]
    rc_c, out_c, err_c = cellctl("validate", "--format", "json", spec_path, env={k: str(v) for k, v in env.items()})
    rc_s, out_s, err_s = supervisor_validate(spec_path, env, "--format", "json")
    assert rc_c in (0, 1), (rc_c, out_c, err_c)
    mine, theirs = json.loads(out_c), json.loads(out_s)
    check_shape(mine)
    assert mine == theirs, f"cellctl:\n{out_c}\nsupervisor:\n{out_s}"
    assert (rc_c, rc_s) == ((0, 0) if mine["valid"] else (1, 125)), (rc_c, rc_s, mine)

    # Text: the same lines, "field.path: message", cellctl's on stdout after the file
    # name, the supervisor's on stderr after "error: ".
    rc_c, out_c, err_c = cellctl("validate", spec_path, env={k: str(v) for k, v in env.items()})
    rc_s, out_s, err_s = supervisor_validate(spec_path, env)
    assert (rc_c, rc_s) == ((0, 0) if mine["valid"] else (1, 125))
    if mine["valid"]:
        assert f"{spec_path}: valid" in out_c and out_s
    else:
        text_c = sorted(l.removeprefix(f"{spec_path}: ") for l in out_c.splitlines())
        text_s = sorted(l.split(": error: ", 1)[1] for l in err_s.splitlines() if ": error: " in l)
        assert text_c == text_s, (out_c, err_s)
        assert len(text_c) == len(mine["problems"])
        for p in mine["problems"]:
            assert any(line.startswith(p["path"]) and line.endswith(p["message"]) for line in text_c), p

    # A real run: refused (125) exactly when validation found a problem.
    r = run_cell(DOCS[doc_name], env=env)
    if mine["valid"]:
        assert r.rc == 0, (mine, r)
    else:
        assert r.rc == 125, (mine, r)


# --------------------------------------------------------------------------- the three cases of the issues


def validate_both(doc, env):
    _, spec_path, _ = prepare(doc, jsonl=False)
    rc, out, err = cellctl("validate", "--format", "json", spec_path, env={k: str(v) for k, v in env.items()})
    rc_s, out_s, _ = supervisor_validate(spec_path, env, "--format", "json")
    obj = json.loads(out)
    assert obj == json.loads(out_s)
    return rc, rc_s, obj


def test_artifact_without_a_target_is_a_problem():
    rc, rc_s, obj = validate_both(DOCS["artifact"], {})
    assert (rc, rc_s, obj["valid"]) == (1, 125, False)
    assert [p["path"] for p in obj["problems"]] == ["spec.export.artifacts[0]"]
    assert "no export target" in obj["problems"][0]["message"]


def test_file_delivery_without_a_mount_namespace_is_a_problem():
    rc, rc_s, obj = validate_both(DOCS["file-delivery"], {"CELLOS_SUBPROCESS_UNSHARE": "net",
                                                          "CELLOS_SECRET_TOKEN": "t"})
    assert (rc, rc_s, obj["valid"]) == (1, 125, False)
    assert [p["path"] for p in obj["problems"]] == ["spec.run.secretDelivery"]
    assert "mount namespace" in obj["problems"][0]["message"]


@pytest.mark.parametrize("broker", ["env", "file"])
def test_a_secret_the_broker_cannot_see_is_a_problem(broker):
    env = {"CELLOS_BROKER": broker}
    var = "CELLOS_SECRET_TOKEN" if broker == "env" else "CELLOS_SECRET_FILE_TOKEN"
    rc, rc_s, obj = validate_both(DOCS["secret"], env)
    assert (rc, rc_s, obj["valid"]) == (1, 125, False)
    assert obj["problems"] == [{"path": "spec.authority.secretRefs[0]",
                                "message": f"secret TOKEN: not found ({broker} broker: {var} is not set)"}]


def test_every_problem_is_reported_at_once():
    # File delivery without a mount namespace, a secret nobody provides, an artifact
    # without a target that would also be read from the host: four problems.
    rc, rc_s, obj = validate_both(DOCS["everything"], {"CELLOS_SUBPROCESS_UNSHARE": "net"})
    assert (rc, rc_s) == (1, 125)
    paths = [p["path"] for p in obj["problems"]]
    assert sorted(paths) == sorted(["spec.run.secretDelivery", "spec.authority.secretRefs[0]",
                                    "spec.export.artifacts[0]", "spec.export.artifacts[0].path"]), obj
    # Configuration problems and document problems together.
    rc, rc_s, obj = validate_both(DOCS["bad-fields"], {"CELLOS_CELL_BACKEND": "nope"})
    paths = [p["path"] for p in obj["problems"]]
    assert "CELLOS_CELL_BACKEND" in paths and "spec.id" in paths and "spec.lifetime.ttlSeconds" in paths


def test_warnings_and_summary():
    d = new_dir("warn")
    rc, rc_s, obj = validate_both(DOCS["s3-fallback"], {"CELLOS_EXPORT_DIR": d})
    assert (rc, rc_s, obj["valid"]) == (0, 0, True)
    assert [w["path"] for w in obj["warnings"]] == ["spec.export.targets[0]"], obj
    assert "CELLOS_EXPORT_S3_PRESIGNED_URL__RESULTS" in obj["warnings"][0]["message"]
    s = obj["summary"]
    assert s["id"] == DOCS["s3-fallback"]["spec"]["id"]
    assert s["argv"] == WRITE_ARTIFACT and s["backend"] == "stub" and s["profile"] == "portable"
    # Configuration warnings too (host mode).
    rc, rc_s, obj = validate_both(DOCS["minimal"], {"CELLOS_SUBPROCESS_UNSHARE": "0"})
    assert rc == 0 and [w["path"] for w in obj["warnings"]] == ["CELLOS_SUBPROCESS_UNSHARE"]


def test_validate_needs_the_secret_but_never_shows_its_value():
    canary = "canary-value-7d1e"
    doc = make_spec(["/bin/true"], secret_refs=["TOKEN"])
    rc, rc_s, obj = validate_both(doc, {"CELLOS_SECRET_TOKEN": canary})
    assert (rc, rc_s) == (0, 0)
    assert canary not in json.dumps(obj)
    assert obj["summary"]["secretRefs"] == ["TOKEN"]


def test_unreadable_document_is_an_io_error_not_a_problem():
    missing = new_dir("missing") / "nope.json"
    rc, out, err = cellctl("validate", missing)
    assert (rc, out) == (2, ""), (rc, out, err)
    assert "nope.json" in err
    rc, out, err = cellctl("validate", "--format", "json", missing)
    assert (rc, out) == (2, ""), (rc, out, err)
    rc, out, err = supervisor_validate(missing, {}, "--format", "json")
    assert (rc, out) == (125, "") and "nope.json" in err


def test_unparsable_document_in_json():
    d = new_dir("garbage")
    (d / "g.json").write_text("{not json")
    rc, out, _ = cellctl("validate", "--format", "json", d / "g.json")
    obj = json.loads(out)
    check_shape(obj)
    assert rc == 1 and obj["valid"] is False and obj["summary"] == {}
    assert [p["path"] for p in obj["problems"]] == ["document"]


def test_supervisor_format_usage():
    _, spec_path, _ = prepare(make_spec(), jsonl=False)
    for args in (["--format", "yaml", "--validate", str(spec_path)], ["--format", "json", str(spec_path)],
                 ["--validate", "--format"]):
        p = subprocess.run([str(SUPERVISOR), *args], env=supervisor_env({}, None), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 125 and "usage" in p.stderr and p.stdout == "", (args, p)
    p = subprocess.run([str(SUPERVISOR), "--help"], capture_output=True, text=True)
    assert "--format" in p.stdout


# --------------------------------------------------------------------------- every stored document (issue 10)
# cellctl validate and --validate call one function (admission_load): every
# document of examples/ and of the spec corpus, under environments that exercise
# the profile, the brokers, export and the policy pack, gets the same answer
# from both, in json and in text.

STORED = sorted([*(REPO_ROOT / "examples").glob("*.json"), *(REPO_ROOT / "tests/fuzz/corpus/spec").iterdir()])


def stored_environments():
    d = new_dir("stored")
    (d / "exports").mkdir()
    (d / "token").write_text("t\n")
    pack = d / "pack.json"
    pack.write_text(json.dumps({"apiVersion": "cellos.io/v1", "kind": "PolicyPack", "spec": {
        "id": "strict", "version": "1", "rules": {
            "maxLifetimeTtlSeconds": 600, "requireResourceLimits": True, "allowedEgressHosts": ["*.example.com"],
            "secretRefAllowlist": ["REGISTRY_TOKEN"], "requireSignedEvents": True}}}))
    seed = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
    signed = {"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "k1",
              "CELLOS_EVENT_SIGNING_KEY_BASE64": seed, "CELL_OS_JSONL_EVENTS": d / "events.jsonl"}
    return {
        "bare": {},
        "hardened": {"CELLOS_DEPLOYMENT_PROFILE": "hardened", **signed},
        "hardened-unsigned": {"CELLOS_DEPLOYMENT_PROFILE": "hardened"},
        "secrets-env": {"CELLOS_SECRET_REGISTRY_TOKEN": "t", "CELLOS_SECRET_TOKEN": "t"},
        "secrets-file": {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_REGISTRY_TOKEN": d / "token"},
        "export": {"CELLOS_EXPORT_DIR": d / "exports", "CELLOS_EXPORT_HOST_PATHS_ALLOW": "/tmp",
                   "CELLOS_HOST_MOUNT_ALLOW_PREFIXES": "/tmp"},
        "policy-pack": {"CELLOS_POLICY_PACK": pack, **signed},
    }


STORED_ENVS = stored_environments()


@pytest.mark.parametrize("env_name", list(STORED_ENVS))
@pytest.mark.parametrize("path", STORED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_stored_document_gets_one_answer(path, env_name):
    env = STORED_ENVS[env_name]
    senv = {k: str(v) for k, v in env.items()}
    rc_c, out_c, err_c = cellctl("validate", "--format", "json", path, env=senv)
    rc_s, out_s, err_s = supervisor_validate(path, env, "--format", "json")
    if rc_c == 2:  # not readable as a document at all: the same for both
        assert rc_s == 125 and out_c == out_s == "", (err_c, err_s)
        return
    mine, theirs = json.loads(out_c), json.loads(out_s)
    check_shape(mine)
    assert mine == theirs, f"cellctl:\n{out_c}\nsupervisor:\n{out_s}"
    assert (rc_c, rc_s) == ((0, 0) if mine["valid"] else (1, 125)), (rc_c, rc_s, mine)
    rc_c, out_c, _ = cellctl("validate", path, env=senv)
    rc_s, _, err_s = supervisor_validate(path, env)
    assert (rc_c, rc_s) == ((0, 0) if mine["valid"] else (1, 125))
    if not mine["valid"]:
        text_c = sorted(l.removeprefix(f"{path}: ") for l in out_c.splitlines())
        text_s = sorted(l.split(": error: ", 1)[1] for l in err_s.splitlines() if ": error: " in l)
        assert text_c == text_s, (out_c, err_s)


def test_the_stored_set_covers_the_cases():
    # The matrix above is only worth something if it holds valid documents and
    # refused ones, for the profile, the secrets, export and the pack alike.
    outcomes = {}
    for env_name, env in STORED_ENVS.items():
        for path in STORED:
            rc, out, _ = cellctl("validate", "--format", "json", path, env={k: str(v) for k, v in env.items()})
            if rc != 2:
                obj = json.loads(out)
                outcomes.setdefault(env_name, set()).update(
                    {"valid"} if obj["valid"] else {p["path"].split("[")[0] for p in obj["problems"]})
    assert "valid" in outcomes["bare"] and "valid" in outcomes["hardened"], outcomes
    assert "CELLOS_DEPLOYMENT_PROFILE" in outcomes["hardened-unsigned"], outcomes
    assert "spec.authority.secretRefs" in outcomes["bare"], outcomes
    assert "valid" in outcomes["secrets-file"] and "valid" in outcomes["export"], outcomes
    assert any(p.startswith("policy.") for p in outcomes["policy-pack"]), outcomes
