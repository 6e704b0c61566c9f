"""Redaction of event data (SPEC §8.3, CELLOS_REDACT_EVENT_FIELDS)."""
from __future__ import annotations

import json

from conftest import UUID4_RE, make_spec, run_cell, runs_in, short_type, verify_chain
from signed_events import Ed25519Key, check_signed_log

R = "[redacted]"


def by_type(events):
    return {short_type(e): e["data"] for e in events}


def test_defaults_redact_argv_path_reason():
    spec = make_spec(["/bin/sh", "-c", "exit 3", "--token=hunter2"])
    r = run_cell(spec, env={"CELLOS_REDACT_EVENT_FIELDS": "defaults"})
    assert r.rc == 3, r.err
    d = by_type(r.events)
    assert d["command.v1.completed"]["argv"] == [R]
    assert d["command.v1.completed"]["exitCode"] == 3
    assert d["lifecycle.v1.destroyed"]["reason"] == R
    assert d["lifecycle.v1.destroyed"]["outcome"] == "failed"
    # Not listed: kept.
    assert d["observability.v1.process_spawned"]["program"] == "/bin/sh"
    assert b"hunter2" not in r.raw
    verify_chain(r.lines)


def test_unset_means_no_redaction():
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 3"]))
    assert by_type(r.events)["command.v1.completed"]["argv"] == ["/bin/sh", "-c", "exit 3"]
    assert by_type(r.events)["lifecycle.v1.destroyed"]["reason"] == "nonzero_exit"


def test_nested_keys_scalars_arrays_objects():
    spec = make_spec(["/bin/true"], egress=[{"host": "192.0.2.10", "port": 443, "protocol": "tcp"},
                                            {"host": "192.0.2.11", "port": 53, "protocol": "udp"}],
                     spec_extra={"correlation": {"correlationId": "c-1", "labels": {"team": "ci", "pii": "x"}},
                                 "policy": {"packId": "p", "packVersion": "1"}})
    fields = "host, isolation, maxRssBytes, labels, declaredEgressCount"
    r = run_cell(spec, env={"CELLOS_REDACT_EVENT_FIELDS": fields})
    assert r.rc == 0, r.err
    d = by_type(r.events)
    pol = d["observability.v1.network_policy"]
    # scalars inside objects inside an array
    assert pol["declaredEgress"] == [{"host": R, "port": 443, "protocol": "tcp"},
                                     {"host": R, "port": 53, "protocol": "udp"}]
    assert pol["declaredEgressCount"] == R
    # an object at the top of data, and one nested in another object
    assert d["lifecycle.v1.started"]["isolation"] == {}
    assert d["lifecycle.v1.started"]["correlation"] == {"correlationId": "c-1", "labels": {}}
    assert d["compliance.v1.summary"]["correlation"]["labels"] == {}
    # a scalar nested two levels down
    ru = d["command.v1.completed"]["resourceUsage"]
    assert ru["maxRssBytes"] == R and isinstance(ru["userCpuMs"], int)
    verify_chain(r.lines)


def test_array_becomes_single_redacted_entry():
    spec = make_spec(["/bin/true"], egress=[{"host": "192.0.2.10", "port": 443}])
    r = run_cell(spec, env={"CELLOS_REDACT_EVENT_FIELDS": "declaredEgress,argv"})
    d = by_type(r.events)
    assert d["observability.v1.network_policy"]["declaredEgress"] == [R]
    assert d["command.v1.completed"]["argv"] == [R]


def test_envelope_and_ids_untouched():
    # Envelope attribute names and cellId/runId in the list change nothing.
    names = "specversion,id,source,type,subject,time,datacontenttype,sequence,cellosprevdigest,data,cellId,runId"
    spec = make_spec(["/bin/true"])
    r = run_cell(spec, env={"CELLOS_REDACT_EVENT_FIELDS": names})
    assert r.rc == 0, r.err
    cell = spec["spec"]["id"]
    assert [short_type(e) for e in r.events][0] == "observability.v1.network_policy"
    for e in r.events:
        assert e["specversion"] == "1.0" and UUID4_RE.match(e["id"])
        assert e["subject"] == f"urn:cellos:cell:{cell}"
        assert e["type"].startswith("dev.cellos.events.cell.")
        assert e["data"]["cellId"] == cell and UUID4_RE.match(e["data"]["runId"])
    assert len(runs_in(r.lines)) == 1
    verify_chain(r.lines)


def test_redaction_happens_before_signing():
    key = Ed25519Key()
    spec = make_spec(["/bin/sh", "-c", "exit 7"], egress=[{"host": "192.0.2.10", "port": 443}])
    # A default cell has a private netns: network_enforcement's ruleCounters[].rule
    # ("ip daddr 192.0.2.10 tcp dport 443 accept") names the host too, under the key
    # "rule", so hiding the destination takes "rule" as well.
    r = run_cell(spec, env={**key.env(), "CELLOS_REDACT_EVENT_FIELDS": "defaults,host,rule"})
    assert r.rc == 7, r.err
    inner = check_signed_log(r.lines, key)  # signature and chain over the redacted events
    d = {short_type(e): e["data"] for e in inner}
    assert d["command.v1.completed"]["argv"] == [R]
    assert d["lifecycle.v1.destroyed"]["reason"] == R
    assert d["observability.v1.network_policy"]["declaredEgress"][0]["host"] == R
    counters = d["observability.v1.network_enforcement"]["ruleCounters"]
    assert counters and all(c["rule"] == R for c in counters), counters
    assert b"exit 7" not in r.raw and b"192.0.2.10" not in r.raw
    assert json.loads(r.lines[0])["data"]["signerKid"] == key.kid
