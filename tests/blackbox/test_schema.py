"""schema/execution-cell.schema.json (JSON Schema draft 2020-12) says what the
supervisor's own validator (src/spec/) says:
* every object has the same known keys in both (the schema allows other keys, as
  the supervisor does: they are warned about, not refused);
* every document the supervisor accepts here (`--validate` exit 0) is valid under
  the schema: the examples, the documents of docs/reference.md, test_bad_input.py's
  edge values and the cases below;
* every document the supervisor refuses in test_bad_input.py's field rules, and
  the cases below, is invalid under the schema, except the rules JSON Schema cannot
  express (NOT_EXPRESSIBLE, also listed in the schema's description)."""
from __future__ import annotations

import copy
import json
import re

import pytest
from jsonschema import Draft202012Validator

from conftest import REPO_ROOT, make_spec, new_dir, run_cell
from test_bad_input import DELETE, FIELD_CASES, VALID_CASES, mutate
from test_docs import known_keys

SCHEMA_PATH = REPO_ROOT / "schema" / "execution-cell.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = Draft202012Validator(SCHEMA)

# --validate checks the configuration too: give every kind of export target a
# destination, so that only the document decides.
EXPORT_ROOT = new_dir("schema-export")
VALIDATE_ENV = {
    "CELLOS_EXPORT_DIR": str(EXPORT_ROOT),
    "CELLOS_EXPORT_S3_PRESIGNED_URL__RESULTS": "https://s3.example.invalid/upload",
    "CELLOS_EXPORT_HOST_PATHS_ALLOW": "/",
    "CELLOS_HOST_MOUNT_ALLOW_PREFIXES": "/",
}


def secret_env(doc) -> dict:
    """--validate also checks that the broker sees every secret: give each secretRef
    of the document (where it has a list of names) a value."""
    spec = doc.get("spec") if isinstance(doc, dict) else None
    auth = spec.get("authority") if isinstance(spec, dict) else None
    refs = auth.get("secretRefs") if isinstance(auth, dict) else None
    names = [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []
    return {"CELLOS_SECRET_" + re.sub(r"[-.]", "_", n.upper()): "v" for n in names
            if n and "\0" not in n and "=" not in n}


def supervisor_validate(doc):
    r = run_cell(doc, args=["--validate", "{spec}"], env=dict(VALIDATE_ENV, **secret_env(doc)), jsonl=False)
    assert r.rc in (0, 125), r
    return r


def supervisor_accepts(doc) -> bool:
    return supervisor_validate(doc).rc == 0


def schema_errors(doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


# ---------------------------------------------------------------- the schema itself


def test_schema_is_a_draft_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def _resolve(node: dict) -> dict:
    """The object schema behind a member: through $ref and an optional member's
    anyOf [ {$ref}, {type: null} ]."""
    while True:
        if "$ref" in node:
            assert node["$ref"].startswith("#/$defs/")
            node = SCHEMA["$defs"][node["$ref"][len("#/$defs/"):]]
        elif ("properties" not in node and "items" not in node and "anyOf" in node
              and len([a for a in node["anyOf"] if a != {"type": "null"}]) == 1):
            node = next(a for a in node["anyOf"] if a != {"type": "null"})
        else:
            return node


def _schema_objects(node, path="") -> dict[str, set[str]]:
    """Every object of the schema that lists its keys: place -> keys, places named
    as in src/spec/spec_keys.c ("spec.run", "spec.authority.egressRules[]")."""
    node = _resolve(node)
    found = {}
    if "properties" in node:
        found[path] = set(node["properties"])
        for key, sub in node["properties"].items():
            found.update(_schema_objects(sub, f"{path}.{key}" if path else key))
    if "items" in node and isinstance(node["items"], dict):
        found.update(_schema_objects(node["items"], path + "[]"))
    return found


def test_schema_and_validator_know_the_same_keys_in_every_object():
    c_places = {place: set(keys) for place, keys in known_keys().items()}
    s_places = _schema_objects(SCHEMA)
    # The free-form maps are objects without "properties" in the schema and are
    # not in the validator's table: neither side lists them.
    assert set(s_places) == set(c_places), (
        f"objects only in the schema: {sorted(set(s_places) - set(c_places))}; "
        f"only in src/spec/spec_keys.c: {sorted(set(c_places) - set(s_places))}")
    for place, keys in c_places.items():
        assert s_places[place] == keys, (
            f"{place or 'the top level'}: only in the schema {sorted(s_places[place] - keys)}, "
            f"only in src/spec/spec_keys.c {sorted(keys - s_places[place])}")


def test_schema_allows_unknown_keys_like_the_supervisor():
    # Upstream compatibility (docs/reference.md, JSON Schema): the supervisor warns.
    text = json.dumps(SCHEMA)
    assert '"additionalProperties": false' not in text and "unevaluatedProperties" not in text
    doc = make_spec(["/usr/bin/true"])
    doc["futureTopLevel"] = 1
    doc["spec"]["run"]["niceness"] = 5
    assert supervisor_accepts(doc)
    assert schema_errors(doc) == []


# ---------------------------------------------------------------- accepted documents


def _reference_documents():
    text = (REPO_ROOT / "docs" / "reference.md").read_text()
    docs = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "ExecutionCell"]


def _examples():
    return [(p.name, json.loads(p.read_text())) for p in sorted((REPO_ROOT / "examples").glob("*.json"))]


# Documents the supervisor accepts that exercise what the edge cases above do not.
ACCEPTED = {
    "null-is-absent": mutate("spec.run", {"argv": ["/usr/bin/true"], "secretDelivery": None, "workingDirectory": None,
                                          "env": None, "timeoutMs": None, "limits": None}),
    "null-sections": mutate("spec.correlation", None, make_spec(["/usr/bin/true"], spec_extra={
        "export": None, "policy": None, "identity": None, "placement": None})),
    "null-limits": mutate("spec.run.limits", {"memoryMaxBytes": None, "cpuMax": None, "pidsMax": None,
                                              "gracefulShutdownSeconds": None}),
    "null-egress-protocol": mutate("spec.authority.egressRules", [{"host": "192.0.2.7", "port": 1, "protocol": None}]),
    "file-delivery-names": make_spec(["/usr/bin/true"], secret_refs=["db-pass", "a.b"],
                                     run_extra={"secretDelivery": "file"}),
    "export-only-names": make_spec(secret_refs=["db-pass"], run=False),
    "export": make_spec(["/usr/bin/true"], run_extra={"workingDirectory": "/work"}, spec_extra={"export": {
        "artifacts": [{"name": "a.txt", "path": "/work/a.txt"},
                      {"name": "b", "path": "/work/b", "target": "results", "futureKey": 1}],
        "targets": [{"name": "results", "kind": "s3", "bucket": "ci", "keyPrefix": "runs/x"},
                    {"name": "local-1", "kind": "local"}]}}),
    "ipv6-and-cidrs": mutate("spec.authority", {
        "secretRefs": [], "egressRules": [
            {"host": "::ffff:192.0.2.1", "port": 443}, {"host": "1:2:3:4:5:6:7:8", "port": 1},
            {"host": "fe80::/10", "port": 53, "protocol": "udp"}, {"host": "0.0.0.0/0", "port": 80},
            {"host": "10.0.0.1/8", "port": 80}, {"host": "localhost", "port": 8080},
            {"host": "Example.COM", "port": 443}, {"host": "a-b.c0", "port": 443}],
        "dnsAuthority": {"hostnameAllowlist": [], "resolvers": [
            {"resolverId": "v6", "protocol": "do53-udp", "address": "[2001:db8::53]:53"},
            {"resolverId": "v4", "protocol": "do53-udp", "address": "192.0.2.53:65535"}]}}),
    "env-edge": mutate("spec.run.env", {"HOME": "/h", "CELLOS_OTHER": "x", "lower_case": "", "_": "é"}),
    "argv-edges": mutate("spec.run.argv", ["true", "", "a b", "ünïcödé", "\n"]),
    "workdir-dots": mutate("spec.run.workingDirectory", "/a/.../b./.c/./d"),
    "limits-max": mutate("spec.run.limits", {"memoryMaxBytes": 9223372036854775807,
                                             "cpuMax": {"quotaMicros": (1 << 44) - 1, "periodMicros": 1000},
                                             "pidsMax": 4194304, "gracefulShutdownSeconds": 2147483647}),
    "timeout-max": mutate("spec.run.timeoutMs", 2147483647000),
    "tenant-unicode": mutate("spec.correlation", {"tenantId": "acmé-1_2"}),
}


def _accepted_cases():
    cases = [(f"examples/{name}", doc) for name, doc in _examples()]
    cases += [(f"docs/reference.md#{i}", doc) for i, doc in enumerate(_reference_documents())]
    cases += [(f"edge:{path}", mutate(path, value)) for path, value in VALID_CASES]
    cases += sorted(ACCEPTED.items())
    return cases


ACCEPTED_CASES = _accepted_cases()


def test_the_accepted_cases_include_the_examples_and_the_reference():
    names = [n for n, _ in ACCEPTED_CASES]
    assert "examples/hello.json" in names
    assert sum(n.startswith("docs/reference.md#") for n in names) >= 2


@pytest.mark.parametrize("name,doc", ACCEPTED_CASES, ids=[n for n, _ in ACCEPTED_CASES])
def test_document_the_supervisor_accepts_is_valid_under_the_schema(name, doc):
    r = supervisor_validate(doc)
    assert r.rc == 0, f"{name}: the supervisor refuses it (fix the case, or VALIDATE_ENV):\n{r.err}"
    assert schema_errors(doc) == [], name


# ---------------------------------------------------------------- refused documents


# Rules of the validator that JSON Schema cannot state (the schema's description
# lists them, and docs/reference.md): (path, value) of test_bad_input.FIELD_CASES.
NOT_EXPRESSIBLE = {
    ("spec.authority.secretRefs", json.dumps(["db_pass", "DB_PASS"])): "two names of one broker variable",
    ("spec.run.argv", json.dumps(["/usr/bin/echo"] + ["x" * 1023] * 257)): "argv over 256 KiB in total",
}

REFUSED = {
    "argv0-empty": mutate("spec.run.argv", ["", "x"]),
    "argv-nul-first": mutate("spec.run.argv", ["/bin/true\u0000x"]),
    "env-delivery-dashed-name": make_spec(["/usr/bin/true"], secret_refs=["db-pass"],
                                          run_extra={"secretDelivery": None}),
    "null-required-argv": mutate("spec.run.argv", None),
    "null-ttl": mutate("spec.lifetime.ttlSeconds", None),
    "null-lifetime": mutate("spec.lifetime", None),
    "null-secretRefs": mutate("spec.authority.secretRefs", None),
    "null-in-secretRefs": mutate("spec.authority.secretRefs", [None]),
    "null-label-value": mutate("spec.correlation", {"labels": {"a": None}}),
    "null-port": mutate("spec.authority.egressRules[0].port", None),
    "ipv6-resolver-without-brackets": mutate("spec.authority.dnsAuthority", {"resolvers": [
        {"resolverId": "r", "protocol": "do53-udp", "address": "2001:db8::53:53"}]}),
    "resolver-port-0": mutate("spec.authority.dnsAuthority", {"resolvers": [
        {"resolverId": "r", "protocol": "do53-udp", "address": "192.0.2.1:0"}]}),
    "resolver-empty-id": mutate("spec.authority.dnsAuthority", {"resolvers": [
        {"resolverId": "", "protocol": "do53-udp", "address": "192.0.2.1:53"}]}),
    "host-leading-zero": mutate("spec.authority.egressRules[0].host", "192.0.2.07"),
    "host-cidr-leading-zero": mutate("spec.authority.egressRules[0].host", "10.0.0.0/08"),
    "host-label-64": mutate("spec.authority.egressRules[0].host", "a" * 64 + ".com"),
    "host-trailing-dot": mutate("spec.authority.egressRules[0].host", "example.com."),
    "host-numeric-tld": mutate("spec.authority.egressRules[0].host", "example.123"),
    "host-v6-zone": mutate("spec.authority.egressRules[0].host", "fe80::1%eth0"),
    "host-v6-prefix-129": mutate("spec.authority.egressRules[0].host", "2001:db8::/129"),
    "workdir-dotdot": mutate("spec.run.workingDirectory", "/a/../b"),
    "workdir-trailing-dotdot": mutate("spec.run.workingDirectory", "/a/.."),
    "artifact-path-dotdot": make_spec(["/usr/bin/true"], spec_extra={"export": {
        "artifacts": [{"name": "a", "path": "/work/../etc/shadow"}]}}),
    "target-name-dotdot": make_spec(["/usr/bin/true"], spec_extra={"export": {
        "targets": [{"name": "a..b", "kind": "local"}]}}),
    "cpu-period-too-small": mutate("spec.run.limits", {"cpuMax": {"quotaMicros": 1000, "periodMicros": 999}}),
    "pids-too-many": mutate("spec.run.limits", {"pidsMax": 4194305}),
    "timeout-too-long": mutate("spec.run.timeoutMs", 2147483647001),
    "ttl-string": mutate("spec.lifetime.ttlSeconds", "60"),
    "tenant-empty": mutate("spec.correlation", {"tenantId": ""}),
    "tenant-tab": mutate("spec.correlation", {"tenantId": "a\tb"}),
    "resolver-protocol-missing": mutate("spec.authority.dnsAuthority", {"resolvers": [
        {"resolverId": "r", "address": "192.0.2.1:53"}]}),
    "target-kind-missing": make_spec(["/usr/bin/true"], spec_extra={"export": {"targets": [{"name": "t"}]}}),
    "apiVersion-null": mutate("apiVersion", None),
    "spec-null": mutate("spec", None),
}


def _refused_cases():
    cases = []
    for path, value, _ in FIELD_CASES:
        key = (path, "DELETE" if value is DELETE else json.dumps(value))
        if key in NOT_EXPRESSIBLE:
            continue
        cases.append((f"field:{path}={key[1][:40]}", mutate(path, value)))
    cases += sorted(REFUSED.items())
    return cases


REFUSED_CASES = _refused_cases()


def test_every_not_expressible_rule_is_a_field_case_and_documented():
    keys = {(p, "DELETE" if v is DELETE else json.dumps(v)) for p, v, _ in FIELD_CASES}
    assert set(NOT_EXPRESSIBLE) <= keys, "NOT_EXPRESSIBLE names a case test_bad_input.py no longer has"
    description = SCHEMA["description"]
    assert "broker variable" in description and "256 KiB" in description


@pytest.mark.parametrize("name,doc", REFUSED_CASES, ids=[n for n, _ in REFUSED_CASES])
def test_document_the_supervisor_refuses_is_invalid_under_the_schema(name, doc):
    assert not supervisor_accepts(doc), f"{name}: the supervisor accepts it: fix the case"
    assert schema_errors(doc), f"{name}: the schema accepts a document the supervisor refuses"


def test_not_expressible_rules_are_the_only_differences():
    # The schema accepts these (it cannot tell), the supervisor does not: if the
    # schema learns to refuse one, move it out of NOT_EXPRESSIBLE.
    for (path, value), why in NOT_EXPRESSIBLE.items():
        doc = mutate(path, json.loads(value))
        assert not supervisor_accepts(doc), why
        assert schema_errors(doc) == [], why
