"""SPEC §8: event order, payloads, the CloudEvents envelope, the digest chain and the
canonical (RFC 8785) form of every line."""
import datetime
import hashlib
import json
import socket

import pytest

from conftest import (TIME_RE, TYPE_PREFIX, UUID4_RE, canonical, make_spec, new_dir, run_cell, runs_in,
                      verify_chain)

ALL = {"CELLOS_SUBPROCESS_UNSHARE": "all"}
HOST = {"CELLOS_SUBPROCESS_UNSHARE": "0"}
ALL_NS = {"net", "mnt", "pid", "ipc", "uts", "cgroup", "user"}
UID_FIRST, UID_LAST = 3000000000, 3000999999
NORMAL = ["observability.v1.network_policy", "lifecycle.v1.started", "observability.v1.process_spawned",
          "command.v1.completed", "compliance.v1.summary", "lifecycle.v1.destroyed"]
NORMAL_NET = NORMAL[:4] + ["observability.v1.network_enforcement"] + NORMAL[4:]
CORRELATION = {"correlationId": "gh-run-123", "tenantId": "acme", "platform": "github",
               "externalRunId": "r-1", "externalJobId": "j-2", "labels": {"team": "ci", "tier": "1"}}


def check_common(r, spec_id):
    run_ids = {e["data"]["runId"] for e in r.events}
    assert len(run_ids) == 1, run_ids
    run_id = run_ids.pop()
    assert UUID4_RE.match(run_id), run_id
    for e in r.events:
        assert e["data"]["cellId"] == spec_id, e
        if any(e["type"].startswith(TYPE_PREFIX + p) for p in ("lifecycle.", "command.", "compliance.")):
            assert e["data"]["specId"] == spec_id, e
        assert "exitCode" not in e["data"] or short(e) == "command.v1.completed"
    return run_id


def short(e):
    return e["type"][len(TYPE_PREFIX):]


def test_normal_run_order_and_payloads():
    # The default cell (CELLOS_SUBPROCESS_UNSHARE unset = all) has a private netns,
    # so network_enforcement is part of a normal run.
    doc = make_spec(["/bin/sh", "-c", "exit 0", "arg two"], id="events-normal", ttl=77,
                    secret_refs=["BB_TOKEN"], egress=[{"host": "192.0.2.7", "port": 8443}],
                    spec_extra={"correlation": CORRELATION, "policy": {"packId": "default-ci", "packVersion": "1.0.0"}})
    r = run_cell(doc, env={"CELLOS_SECRET_BB_TOKEN": "x"})
    assert r.rc == 0, r
    assert r.types == NORMAL_NET, r.types
    check_common(r, "events-normal")

    pol = r.event("observability.v1.network_policy")["data"]
    assert pol["isolationMode"] == "clone_newnet"
    assert pol["declaredEgressCount"] == 1
    assert pol["declaredEgress"] == [{"host": "192.0.2.7", "port": 8443, "protocol": "tcp"}]

    st = r.event("lifecycle.v1.started")["data"]
    assert st["backend"] == "stub"
    assert st["ttlSeconds"] == 77
    assert set(st["isolation"]["namespaces"]) == ALL_NS
    assert len(st["isolation"]["namespaces"]) == len(ALL_NS)
    assert st["isolation"]["seccomp"] == "baseline"
    assert "cgroup" in st["isolation"]
    assert UID_FIRST <= st["isolation"]["hostUid"] <= UID_LAST
    assert st["correlation"] == CORRELATION
    for absent in ("kernelDigestSha256", "rootfsDigestSha256", "firecrackerDigestSha256"):
        assert absent not in st

    sp = r.event("observability.v1.process_spawned")["data"]
    assert sp["program"] == "/bin/sh"
    assert sp["argc"] == 4
    assert isinstance(sp["pid"], int) and sp["pid"] > 0

    done = r.event("command.v1.completed")["data"]
    assert done["argv"] == ["/bin/sh", "-c", "exit 0", "arg two"]
    assert done["exitCode"] == 0
    assert done["timedOut"] is False
    assert isinstance(done["durationMs"], int) and 0 <= done["durationMs"] < 10000
    assert "spawnError" not in done and "termSignal" not in done
    ru = done["resourceUsage"]
    assert set(ru) == {"maxRssBytes", "userCpuMs", "sysCpuMs"}
    assert all(isinstance(v, int) and v >= 0 for v in ru.values())
    assert ru["maxRssBytes"] > 0

    cs = r.event("compliance.v1.summary")["data"]
    assert cs["lifetimeTtlSeconds"] == 77
    assert cs["egressRuleCount"] == 1
    assert cs["secretRefCount"] == 1
    assert cs["secretDeliveryMode"] == "env"
    assert cs["commandExitCode"] == 0
    assert cs["backend"] == "stub"
    assert cs["profile"] == "portable"
    assert cs["correlation"] == CORRELATION
    assert cs["policyPackId"] == "default-ci"
    assert cs["policyPackVersion"] == "1.0.0"

    de = r.event("lifecycle.v1.destroyed")["data"]
    assert de["outcome"] == "succeeded"
    assert "reason" not in de
    assert isinstance(de["durationMs"], int) and de["durationMs"] >= 0
    assert "exitCode" not in de and "commandExitCode" not in de


def test_host_mode_run_order_and_payloads():
    # Explicit host mode (CELLOS_SUBPROCESS_UNSHARE=0): no netns, so no
    # network_enforcement; what the default run order was before it became isolated.
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 0"], id="events-host"), env=HOST)
    assert r.rc == 0, r
    assert r.types == NORMAL, r.types
    check_common(r, "events-host")
    assert r.event("observability.v1.network_policy")["data"]["isolationMode"] == "host"
    st = r.event("lifecycle.v1.started")["data"]
    assert st["isolation"]["namespaces"] == []
    assert UID_FIRST <= st["isolation"]["hostUid"] <= UID_LAST


def test_correlation_is_copied_into_destroyed():
    # SPEC §2: correlation is "Copied into started, destroyed and compliance.summary".
    r = run_cell(make_spec(["/usr/bin/true"], spec_extra={"correlation": CORRELATION}))
    assert r.rc == 0, r
    for t in ("lifecycle.v1.started", "compliance.v1.summary", "lifecycle.v1.destroyed"):
        assert r.event(t)["data"].get("correlation") == CORRELATION, t


def test_no_correlation_means_no_correlation_key():
    r = run_cell(make_spec(["/usr/bin/true"]))
    for e in r.events:
        assert "correlation" not in e["data"], e
        assert "policyPackId" not in e["data"], e


def test_run_in_private_netns_adds_network_enforcement():
    doc = make_spec(["/usr/bin/true"], id="events-net",
                    egress=[{"host": "192.0.2.7", "port": 8443}, {"host": "10.0.0.0/8", "port": 443},
                            {"host": "2001:db8::1", "port": 53, "protocol": "udp"}])
    r = run_cell(doc, env=ALL)
    assert r.rc == 0, r
    assert r.types == NORMAL_NET, r.types
    check_common(r, "events-net")
    assert r.event("observability.v1.network_policy")["data"]["isolationMode"] == "clone_newnet"
    st = r.event("lifecycle.v1.started")["data"]
    assert set(st["isolation"]["namespaces"]) == ALL_NS
    ne = r.event("observability.v1.network_enforcement")["data"]
    assert ne["isolationMode"] == "clone_newnet"
    assert ne["declaredEgressRuleCount"] == 3
    assert ne["nftRulesApplied"] is True, ne
    assert ne["supplementaryEgressFilterActive"] is True
    assert ne["commandExitCode"] == 0
    assert "nftError" not in ne
    assert [c["rule"] for c in ne["ruleCounters"]] == [
        "ip daddr 192.0.2.7 tcp dport 8443 accept",
        "ip daddr 10.0.0.0/8 tcp dport 443 accept",
        "ip6 daddr 2001:db8::1 udp dport 53 accept",
        "drop",
    ], ne["ruleCounters"]
    for c in ne["ruleCounters"]:
        assert set(c) == {"rule", "packets", "bytes"}
        assert isinstance(c["packets"], int) and isinstance(c["bytes"], int)


def test_failing_run_events():
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 3"], id="events-fail"))
    assert r.rc == 3, r
    assert r.types == NORMAL_NET, r.types
    check_common(r, "events-fail")
    assert r.event("command.v1.completed")["data"]["exitCode"] == 3
    assert r.event("compliance.v1.summary")["data"]["commandExitCode"] == 3
    de = r.event("lifecycle.v1.destroyed")["data"]
    assert de["outcome"] == "failed" and de["reason"] == "nonzero_exit"


def test_run_without_run_section():
    r = run_cell(make_spec(run=False, id="events-norun"))
    assert r.rc == 0, r
    # The default cell has a private netns even without a run: network_enforcement.
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.started",
                       "observability.v1.network_enforcement", "compliance.v1.summary",
                       "lifecycle.v1.destroyed"], r.types
    check_common(r, "events-norun")
    assert "commandExitCode" not in r.event("compliance.v1.summary")["data"]
    assert r.event("lifecycle.v1.destroyed")["data"]["outcome"] == "succeeded"


def test_run_without_run_section_in_host_mode():
    r = run_cell(make_spec(run=False, id="events-norun-host"), env=HOST)
    assert r.rc == 0, r
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.started", "compliance.v1.summary",
                       "lifecycle.v1.destroyed"], r.types
    check_common(r, "events-norun-host")


def test_run_without_run_section_in_namespaces():
    r = run_cell(make_spec(run=False), env=ALL)
    assert r.rc == 0, r
    assert "command.v1.completed" not in r.types
    assert r.types[-1] == "lifecycle.v1.destroyed"


@pytest.mark.parametrize("unshare", ["0", "all"])
def test_spawn_failure_events(unshare):
    # "0" is explicit host mode (no netns, no network_enforcement); "all" the default.
    r = run_cell(make_spec(["/nonexistent/bin/prog", "x"], id="events-spawnfail"),
                 env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 127, r
    expected = [t for t in (NORMAL if unshare == "0" else NORMAL_NET) if t != "observability.v1.process_spawned"]
    assert r.types == expected, r.types
    check_common(r, "events-spawnfail")
    done = r.event("command.v1.completed")["data"]
    assert done["exitCode"] == 127
    assert done["argv"] == ["/nonexistent/bin/prog", "x"]
    assert isinstance(done["spawnError"], str) and done["spawnError"]
    assert done["timedOut"] is False
    de = r.event("lifecycle.v1.destroyed")["data"]
    assert de["outcome"] == "failed" and de["reason"] == "spawn_failed"


def test_failure_before_start_emits_failed_instead_of_started():
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["BB_ABSENT"], id="events-prestart"))
    assert r.rc == 125, r
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.failed"], r.types
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["specId"] == "events-prestart"
    assert f["phase"] == "secrets"
    assert isinstance(f["reason"], str) and f["reason"]
    assert "BB_ABSENT" in f["message"]


# ---------------------------------------------------------------- envelope


def test_envelope_fields():
    t_before = datetime.datetime.now(datetime.timezone.utc)
    r = run_cell(make_spec(["/usr/bin/true"], id="envelope-cell"), env=ALL)
    t_after = datetime.datetime.now(datetime.timezone.utc)
    assert r.rc == 0, r
    host = socket.gethostname()
    times = []
    for i, e in enumerate(r.events, 1):
        assert set(e) == {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                          "sequence", "cellosprevdigest", "data"}, set(e)
        assert e["specversion"] == "1.0"
        assert UUID4_RE.match(e["id"]), e["id"]
        assert e["source"] == f"/cellos/supervisor/{host}"
        assert e["type"].startswith(TYPE_PREFIX)
        assert e["subject"] == "urn:cellos:cell:envelope-cell"
        assert TIME_RE.match(e["time"]), e["time"]
        assert e["datacontenttype"] == "application/json"
        assert e["sequence"] == str(i)
        assert isinstance(e["data"], dict)
        t = datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        assert t_before - datetime.timedelta(seconds=1) <= t <= t_after + datetime.timedelta(seconds=1), e["time"]
        times.append(t)
    assert times == sorted(times), "event times go backwards"
    assert len({e["id"] for e in r.events}) == len(r.events)


def test_event_ids_and_run_ids_are_unique_across_runs():
    ids, run_ids = set(), set()
    n = 0
    for _ in range(5):
        r = run_cell(make_spec(["/usr/bin/true"], id="same-cell"))
        ids |= {e["id"] for e in r.events}
        run_ids |= {e["data"]["runId"] for e in r.events}
        n += len(r.events)
    assert len(ids) == n
    assert len(run_ids) == 5


def test_cellos_run_id_is_used():
    rid = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    r = run_cell(make_spec(["/usr/bin/true"]), env={"CELLOS_RUN_ID": rid.upper()})
    assert r.rc == 0, r
    assert {e["data"]["runId"] for e in r.events} == {rid}
    cg = r.event("lifecycle.v1.started")["data"]["isolation"]["cgroup"]
    assert cg is None or cg.endswith("-1b4e28ba"), cg


# ---------------------------------------------------------------- chain and canonical form


def test_digest_chain_verifies():
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 4"]), env=ALL)
    assert r.rc == 4
    assert len(r.lines) == len(NORMAL_NET)
    assert json.loads(r.lines[0])["cellosprevdigest"] == "0" * 64
    verify_chain(r.lines)
    for line, nxt in zip(r.lines, r.lines[1:]):
        assert json.loads(nxt)["cellosprevdigest"] == hashlib.sha256(line).hexdigest()


def test_tampering_breaks_the_chain():
    r = run_cell(make_spec(["/usr/bin/true"]))
    lines = list(r.lines)
    verify_chain(lines)
    lines[2] = lines[2].replace(b'"argc":1', b'"argc":2')
    with pytest.raises(AssertionError):
        verify_chain(lines)


def test_each_line_is_rfc8785_canonical():
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 0"]), env=ALL)
    assert r.raw.endswith(b"\n") and r.raw.count(b"\n") == len(r.lines)
    for line in r.lines:
        assert line == canonical(json.loads(line)), line


def test_canonical_form_with_awkward_strings():
    # Keys that sort differently by UTF-16 code unit than by code point or byte,
    # escapes, controls, non-ASCII and characters JSON-escapers often get wrong.
    labels = {"\ue000": "private-use", "\U0001F600": "emoji", "a": "ascii", "B": "upper", "é": "e-acute",
              "ctl": "\u0001\u001f\u007f", "ws": "\b\t\n\f\r", "q": "\"\\/", "ls": "\u2028\u2029",
              "": "empty-key"}
    argv = ["/bin/sh", "-c", "exit 0", "é😀\u2028", "\t\"\\", "</script>"]
    doc = make_spec(argv, spec_extra={"correlation": {"correlationId": "c\u00e9", "labels": labels}})
    r = run_cell(doc)
    assert r.rc == 0, r
    for line in r.lines:
        assert line == canonical(json.loads(line)), line
    started = r.event("lifecycle.v1.started")
    assert started["data"]["correlation"]["labels"] == labels
    assert r.event("command.v1.completed")["data"]["argv"] == argv
    raw = [l for l in r.lines if b"lifecycle.v1.started" in l][0]
    # UTF-16 order: U+1F600 (surrogates D83D..) sorts before U+E000.
    assert raw.index("\U0001F600".encode()) < raw.index("\ue000".encode())
    assert b"\\u0001" in raw and b"\\u001f" in raw and b"\\b\\t\\n\\f\\r" in raw
    verify_chain(r.lines)


def test_chain_restarts_for_each_run_in_a_shared_file():
    path = new_dir("shared") / "events.jsonl"
    for code in (0, 1, 2):
        run_cell(make_spec(["/bin/sh", "-c", f"exit {code}"]), jsonl=path)
    lines = [l for l in path.read_bytes().split(b"\n") if l]
    runs = runs_in(lines)
    assert len(runs) == 3
    for run_lines in runs.values():
        verify_chain(run_lines)
