"""The admission policy pack (SPEC §12, CELLOS_POLICY_PACK): every rule, allowed and
violated, by a real run of the supervisor, by --validate and by cellctl validate;
every violation of a cell at once; lifecycle.v1.failed (phase admission, reason
policy_denied) and the pack's id/version in compliance.summary; a bad pack refuses
every cell with 125 and a line naming its path and the field."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import SUPERVISOR, make_spec, new_dir, prepare, run_cell, supervisor_env
from signed_events import ENVELOPE, cellctl

pytestmark = pytest.mark.usefixtures("no_residue")

SEED = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"  # a 32-byte Ed25519 seed, base64url
SIGNED = {"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "k1", "CELLOS_EVENT_SIGNING_KEY_BASE64": SEED}
LIMITS = {"memoryMaxBytes": 256 << 20, "cpuMax": {"quotaMicros": 50000, "periodMicros": 100000}, "pidsMax": 64}


def pack_file(rules=None, *, raw=None, pack_id="ci-default", version="2.1.0") -> str:
    d = new_dir("pack")
    path = d / "pack.json"
    if raw is None:
        raw = json.dumps({"apiVersion": "cellos.io/v1", "kind": "PolicyPack",
                          "spec": {"id": pack_id, "version": version, "rules": rules or {}}})
    path.write_text(raw)
    return str(path)


def doc(*, ttl=60, limits=None, timeout=None, egress=None, secrets=(), delivery=None, run=True, policy=None):
    run_extra = {}
    if limits is not None:
        run_extra["limits"] = limits
    if timeout is not None:
        run_extra["timeoutMs"] = timeout
    if delivery:
        run_extra["secretDelivery"] = delivery
    spec_extra = {"policy": policy} if policy else None
    return make_spec(["/bin/true"], ttl=ttl, egress=egress, secret_refs=secrets, run_extra=run_extra,
                     spec_extra=spec_extra, run=run)


def validate(document, env):
    """(rc, json object) of --validate --format json, after checking cellctl says the same."""
    _, spec_path, _ = prepare(document, jsonl=False)
    p = subprocess.run([str(SUPERVISOR), "--validate", "--format", "json", str(spec_path)],
                       env=supervisor_env(env, None), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=30)
    rc_c, out_c, err_c = cellctl("validate", "--format", "json", spec_path, env={k: str(v) for k, v in env.items()})
    assert p.stdout and json.loads(p.stdout) == json.loads(out_c), (p.stdout, out_c, err_c)
    assert (rc_c, p.returncode) in ((0, 0), (1, 125)), (rc_c, p.returncode)
    return p.returncode, json.loads(p.stdout)


def policy_problems(obj):
    return [p for p in obj["problems"] if p["path"].startswith("policy.")]


# --------------------------------------------------------------------------- every rule

# (rule, value, an allowed cell, a violating cell, extra environment, words of the message)
RULES = [
    ("maxLifetimeTtlSeconds", 120, doc(ttl=120), doc(ttl=121), {}, "ttlSeconds is 121"),
    ("maxMemoryMaxBytes", 256 << 20, doc(limits={"memoryMaxBytes": 256 << 20}),
     doc(limits={"memoryMaxBytes": (256 << 20) + 4096}), {}, "memoryMaxBytes is 268439552"),
    ("maxMemoryMaxBytes", 256 << 20, doc(limits={"memoryMaxBytes": 64 << 20}), doc(), {},
     "memoryMaxBytes is not set"),
    ("maxRunTimeoutMs", 5000, doc(timeout=5000), doc(timeout=5001), {}, "timeoutMs is 5001"),
    ("maxRunTimeoutMs", 5000, doc(timeout=4000), doc(), {}, "timeoutMs is not set"),
    ("requireResourceLimits", True, doc(limits=LIMITS), doc(limits={"memoryMaxBytes": 256 << 20}), {},
     "missing: cpuMax pidsMax"),
    ("requireEgressDeclared", True, doc(egress=[{"host": "192.0.2.10", "port": 443}]), doc(), {},
     "declares no rule"),
    ("forbidOutboundEgressRules", True, doc(), doc(egress=[{"host": "192.0.2.10", "port": 443}]), {},
     "declares 1 rule(s)"),
    ("allowedEgressHosts", ["*.example.com", "192.0.2.0/24"],
     doc(egress=[{"host": "api.example.com", "port": 443}, {"host": "A.B.Example.COM", "port": 443},
                 {"host": "192.0.2.10", "port": 443}, {"host": "192.0.2.128/25", "port": 53, "protocol": "udp"}]),
     doc(egress=[{"host": "api.example.com", "port": 443}, {"host": "example.com", "port": 443}]), {},
     "egressRules[1].host example.com is not allowed"),
    ("allowedEgressHosts", ["*.example.com", "192.0.2.0/24"], doc(egress=[{"host": "192.0.2.0/24", "port": 1}]),
     doc(egress=[{"host": "192.0.0.0/16", "port": 1}]), {}, "egressRules[0].host 192.0.0.0/16 is not allowed"),
    ("allowedEgressHosts", [], doc(), doc(egress=[{"host": "192.0.2.10", "port": 443}]), {},
     "the pack allows: none"),
    ("requireRuntimeSecretDelivery", True, doc(secrets=["TOKEN"], delivery="file"), doc(secrets=["TOKEN"]),
     {"CELLOS_SECRET_TOKEN": "t"}, "secretDelivery is env"),
    ("secretRefAllowlist", ["TOKEN"], doc(secrets=["TOKEN"]), doc(secrets=["TOKEN", "OTHER"]),
     {"CELLOS_SECRET_TOKEN": "t", "CELLOS_SECRET_OTHER": "o"}, "secretRefs[1] OTHER is not in"),
    ("allowedBackends", ["host", "gvisor"], doc(), None, {}, None),
    ("allowedBackends", ["gvisor", "oci"], None, doc(), {}, "CELLOS_CELL_BACKEND=stub is not one"),
    ("requireSignedEvents", True, None, doc(), {}, "events are not signed"),
]


@pytest.mark.parametrize("rule,value,allowed,violating,env,words", RULES,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_each_rule_allows_and_denies(rule, value, allowed, violating, env, words):
    pack = pack_file({rule: value})
    env = {**env, "CELLOS_POLICY_PACK": pack}
    if allowed is not None:
        rc, obj = validate(allowed, env)
        assert rc == 0 and obj["valid"], obj
        assert obj["summary"]["policyPack"] == {"id": "ci-default", "version": "2.1.0"}
        # A run resolves DNS-name hosts at network_scope: only cells without
        # one run here (no lookup may reach a real resolver); validation covers
        # the rest.
        if all(h["host"][0].isdigit() for h in allowed["spec"]["authority"].get("egressRules", [])):
            r = run_cell(allowed, env=env)
            assert r.rc == 0, r
            summary = r.event("compliance.v1.summary")["data"]
            assert (summary["policyPackId"], summary["policyPackVersion"]) == ("ci-default", "2.1.0")
    if violating is not None:
        rc, obj = validate(violating, env)
        assert rc == 125 and not obj["valid"], obj
        found = policy_problems(obj)
        assert [p["path"] for p in found] == [f"policy.{rule}"], obj
        assert words in found[0]["message"], found
        r = run_cell(violating, env=env)
        assert r.rc == 125, r
        assert r.types == ["lifecycle.v1.failed"], r
        failed = r.event("lifecycle.v1.failed")["data"]
        assert (failed["phase"], failed["reason"]) == ("admission", "policy_denied"), failed
        assert f"policy.{rule}: " in failed["message"] and words in failed["message"], failed
        assert f"error: policy.{rule}: " in r.err, r.err
        # The end line (SPEC §4) names the cell and the refusal.
        assert f"cell {violating['spec']['id']} failed at admission: refused by policy: " in r.err, r.err


def test_signed_events_satisfy_the_signing_rule():
    env = {"CELLOS_POLICY_PACK": pack_file({"requireSignedEvents": True}), **SIGNED}
    rc, obj = validate(doc(), env)
    assert rc == 0, obj
    r = run_cell(doc(), env=env)
    assert r.rc == 0, r
    assert r.events and all(e["type"] == ENVELOPE for e in r.events), r.types


def test_false_rules_and_an_empty_pack_restrict_nothing():
    rules = {"requireResourceLimits": False, "requireEgressDeclared": False, "forbidOutboundEgressRules": False,
             "requireRuntimeSecretDelivery": False, "requireSignedEvents": False}
    for pack in (pack_file(rules), pack_file({})):
        r = run_cell(doc(egress=[{"host": "192.0.2.10", "port": 443}], secrets=["TOKEN"]),
                     env={"CELLOS_POLICY_PACK": pack, "CELLOS_SECRET_TOKEN": "t"})
        assert r.rc == 0, r


def test_an_export_only_cell_is_not_held_to_the_rules_on_what_runs():
    d = new_dir("exp")
    (d / "a.txt").write_text("x")
    document = make_spec(run=False, spec_extra={"export": {"artifacts": [{"name": "a.txt", "path": str(d / "a.txt")}]}})
    env = {"CELLOS_POLICY_PACK": pack_file({"requireResourceLimits": True, "maxRunTimeoutMs": 10,
                                            "maxMemoryMaxBytes": 1 << 20, "maxLifetimeTtlSeconds": 30}),
           "CELLOS_EXPORT_DIR": new_dir("out"), "CELLOS_EXPORT_HOST_PATHS_ALLOW": str(d)}
    rc, obj = validate(document, env)
    # Only the lifetime applies to it.
    assert [p["path"] for p in obj["problems"]] == ["policy.maxLifetimeTtlSeconds"], obj


# --------------------------------------------------------------------------- all at once, events


def test_every_violation_is_reported_at_once():
    pack = pack_file({"maxLifetimeTtlSeconds": 30, "requireResourceLimits": True,
                      "allowedEgressHosts": ["*.example.com"], "secretRefAllowlist": [],
                      "allowedBackends": ["gvisor"], "requireSignedEvents": True, "maxRunTimeoutMs": 100})
    bad = doc(ttl=60, egress=[{"host": "example.com", "port": 443}, {"host": "192.0.2.1", "port": 80}],
              secrets=["TOKEN"])
    env = {"CELLOS_POLICY_PACK": pack, "CELLOS_SECRET_TOKEN": "t"}
    expected = ["policy.maxLifetimeTtlSeconds", "policy.maxRunTimeoutMs", "policy.requireResourceLimits",
                "policy.allowedEgressHosts", "policy.allowedEgressHosts", "policy.secretRefAllowlist",
                "policy.allowedBackends", "policy.requireSignedEvents"]
    rc, obj = validate(bad, env)
    assert rc == 125 and [p["path"] for p in obj["problems"]] == expected, obj
    r = run_cell(bad, env=env)
    assert r.rc == 125 and r.types == ["lifecycle.v1.failed"], r
    msg = r.event("lifecycle.v1.failed")["data"]["message"]
    assert [part.split(":")[0] for part in msg.split("; policy.")] == \
        ["policy.maxLifetimeTtlSeconds"] + [e.removeprefix("policy.") for e in expected[1:]], msg
    assert sum(l.count("error: policy.") for l in r.err.splitlines()) == len(expected), r.err


def test_other_admission_problems_leave_no_event():
    # A policy violation together with a problem of the configuration: an
    # ordinary admission failure (SPEC §4): every line, 125, no event.
    env = {"CELLOS_POLICY_PACK": pack_file({"maxLifetimeTtlSeconds": 30}), "CELLOS_RUN_TIMEOUT_MS": "soon"}
    r = run_cell(doc(ttl=60), env=env)
    assert r.rc == 125 and r.events == [], r
    assert "CELLOS_RUN_TIMEOUT_MS" in r.err
    env = {"CELLOS_POLICY_PACK": pack_file({"maxLifetimeTtlSeconds": 30})}
    r = run_cell(doc(ttl=60, secrets=["NOT_PROVIDED"]), env=env)
    # A run finds a missing secret only in its secrets phase, after admission:
    # the pack's denial comes first, with its event.
    assert r.rc == 125 and r.types == ["lifecycle.v1.failed"], r
    assert r.event("lifecycle.v1.failed")["data"]["phase"] == "admission"


def test_compliance_summary_names_the_pack_not_the_documents_claim():
    claim = {"packId": "what-the-document-says", "packVersion": "0"}
    r = run_cell(doc(policy=claim), env={"CELLOS_POLICY_PACK": pack_file({}, pack_id="ops", version="7")})
    assert r.rc == 0, r
    s = r.event("compliance.v1.summary")["data"]
    assert (s["policyPackId"], s["policyPackVersion"]) == ("ops", "7"), s
    # Without a pack, the document's own spec.policy is echoed (as before).
    r = run_cell(doc(policy=claim))
    s = r.event("compliance.v1.summary")["data"]
    assert (s["policyPackId"], s["policyPackVersion"]) == ("what-the-document-says", "0"), s


# --------------------------------------------------------------------------- bad packs


def good_pack(**spec_changes):
    spec = {"id": "p", "version": "1", "rules": {}}
    spec.update(spec_changes)
    return {"apiVersion": "cellos.io/v1", "kind": "PolicyPack", "spec": spec}


BAD_PACKS = [
    ("missing-file", None, ["No such file or directory"]),
    ("not-json", "{\"apiVersion\": ", ["not valid JSON: line 1"]),
    ("duplicate-key", '{"apiVersion": "cellos.io/v1", "apiVersion": "cellos.io/v1"}',
     ["not valid JSON: line 1 column 43: duplicate object key"]),
    ("array", "[]", ["must be a JSON object, not an array"]),
    ("unknown-rule", json.dumps(good_pack(rules={"maxLifetimeTTLSeconds": 10})),
     ["spec.rules.maxLifetimeTTLSeconds: unknown rule"]),
    ("unknown-key", json.dumps({**good_pack(), "metadata": {}}), ["metadata: unknown key"]),
    ("unknown-spec-key", json.dumps(good_pack(owner="me")), ["spec.owner: unknown key"]),
    ("wrong-kind", json.dumps({**good_pack(), "kind": "ExecutionCell"}), ["kind: must be \"PolicyPack\""]),
    ("wrong-api", json.dumps({**good_pack(), "apiVersion": "v2"}), ["apiVersion: must be \"cellos.io/v1\""]),
    ("no-id", json.dumps({"apiVersion": "cellos.io/v1", "kind": "PolicyPack", "spec": {"version": "1", "rules": {}}}),
     ["spec.id: required"]),
    ("no-rules", json.dumps({"apiVersion": "cellos.io/v1", "kind": "PolicyPack", "spec": {"id": "p", "version": "1"}}),
     ["spec.rules: required"]),
    ("types", json.dumps(good_pack(rules={
        "maxLifetimeTtlSeconds": "600", "maxMemoryMaxBytes": 0, "maxRunTimeoutMs": 1.5,
        "requireResourceLimits": "yes", "requireEgressDeclared": 1, "forbidOutboundEgressRules": None,
        "requireRuntimeSecretDelivery": [], "requireSignedEvents": {}, "allowedEgressHosts": "*.example.com",
        "secretRefAllowlist": [1], "allowedBackends": ["vm"]})),
     ["spec.rules.maxLifetimeTtlSeconds: must be a positive integer, not a string",
      "spec.rules.maxMemoryMaxBytes: must be a positive integer",
      "spec.rules.maxRunTimeoutMs: must be a positive integer, not a number",
      "spec.rules.requireResourceLimits: must be true or false, not a string",
      "spec.rules.requireEgressDeclared: must be true or false, not an integer",
      "spec.rules.forbidOutboundEgressRules: must be true or false, not null",
      "spec.rules.requireRuntimeSecretDelivery: must be true or false, not an array",
      "spec.rules.requireSignedEvents: must be true or false, not an object",
      "spec.rules.allowedEgressHosts: must be an array of strings, not a string",
      "spec.rules.secretRefAllowlist[0]: must be a string, not an integer",
      "spec.rules.allowedBackends[0]: 'vm' is not a backend"]),
    ("bad-host", json.dumps(good_pack(rules={"allowedEgressHosts": ["ok.example.com", "exa mple", "10.0.0.0/33"]})),
     ["spec.rules.allowedEgressHosts[1]: 'exa mple' is not", "spec.rules.allowedEgressHosts[2]: '10.0.0.0/33'"]),
]


@pytest.mark.parametrize("name,raw,lines", BAD_PACKS, ids=[b[0] for b in BAD_PACKS])
def test_a_bad_pack_refuses_every_cell_naming_its_path(name, raw, lines):
    path = str(new_dir("badpack") / "missing.json") if raw is None else pack_file(raw=raw)
    env = {"CELLOS_POLICY_PACK": path}
    r = run_cell(doc(), env=env)
    assert r.rc == 125 and r.events == [], r
    errors = [l for l in r.err.splitlines() if "error: CELLOS_POLICY_PACK: " in l]
    assert errors and all(f"CELLOS_POLICY_PACK: {path}: " in l for l in errors), r.err
    for want in lines:
        assert any(want in l for l in errors), (want, errors)
    assert len(errors) >= len(lines), errors
    rc, obj = validate(doc(), env)
    assert rc == 125 and {p["path"] for p in obj["problems"]} == {"CELLOS_POLICY_PACK"}, obj
    assert all(p["message"].startswith(f"{path}: ") for p in obj["problems"]), obj


def test_a_pack_that_is_no_file_is_refused():
    d = new_dir("dirpack")
    r = run_cell(doc(), env={"CELLOS_POLICY_PACK": str(d)})
    assert r.rc == 125 and f"CELLOS_POLICY_PACK: {d}: not a regular file" in r.err, r.err


# --------------------------------------------------------------------------- the schema


def test_the_schema_agrees_with_the_supervisor():
    from jsonschema import Draft202012Validator
    from conftest import REPO_ROOT
    validator = Draft202012Validator(json.loads((REPO_ROOT / "schema" / "policy-pack.schema.json").read_text()))
    full = good_pack(rules={r[0]: r[1] for r in RULES})
    for pack in (good_pack(), full):
        assert not list(validator.iter_errors(pack)), pack
        r = run_cell(doc(), env={"CELLOS_POLICY_PACK": pack_file(raw=json.dumps(pack))})
        assert "CELLOS_POLICY_PACK" not in r.err, r.err
    for name, raw, _ in BAD_PACKS:
        if raw is None or name in ("not-json", "duplicate-key", "bad-host"):
            continue  # not JSON, or a rule the schema cannot express (a CIDR's prefix)
        assert list(validator.iter_errors(json.loads(raw))), name
