"""The JetStream event sink (SPEC §3, §8.4, §8.5) against a real nats-server.

Each test starts its own `nats-server -js` on a free loopback port with a
temporary store (natshelper.py) and kills it on every path."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import Running, make_spec, new_dir, run_cell, short_type, unique_id, verify_chain
from natshelper import NatsServer, closed_port, ensure_events_stream, make_tls, nats_server  # noqa: F401
from signed_events import Ed25519Key, check_signed_log, inner_type
from test_dlq import NORMAL_RUN, dead_letters


def nats_env(server, **extra) -> dict:
    env = {"CELLOS_NATS_URL": server.url}
    env.update(extra)
    return env


def stream_of(server) -> list[dict]:
    with server.client() as c:
        return c.stream_messages("CELLOS_EVENTS")


def test_every_event_of_a_run_is_in_the_stream_in_order_with_its_id(nats_server):
    with nats_server.client() as c:
        ensure_events_stream(c)
    spec = make_spec(["/bin/sh", "-c", "exit 3"], spec_extra={"correlation": {"tenantId": "acme-1"}})
    r = run_cell(spec, env=nats_env(nats_server, CELL_OS_REQUIRE_JETSTREAM="1"))
    assert r.rc == 3, r.err
    msgs = stream_of(nats_server)
    # The stream holds exactly what the JSONL mirror holds, byte for byte, in order.
    assert [m["data"] for m in msgs] == r.lines
    assert [short_type(json.loads(m["data"])) for m in msgs] == NORMAL_RUN
    cell = spec["spec"]["id"]
    for m in msgs:
        ev = json.loads(m["data"])
        assert m["headers"]["Nats-Msg-Id"] == ev["id"]
        assert m["subject"] == f"cellos.events.acme-1.{cell}.{short_type(ev)}"
    verify_chain([m["data"] for m in msgs])


def test_subject_template_tokens_are_sanitised_and_tenant_defaults_to_underscore(nats_server):
    with nats_server.client() as c:
        ensure_events_stream(c, "ev.>")
    cell = f"web.{unique_id()}.v2"  # '.' is valid in a cell id, not in a subject token
    r = run_cell(make_spec(id=cell), env=nats_env(nats_server, CELLOS_NATS_SUBJECT="ev.{tenantId}.x.{cellId}.{event}",
                                                  CELL_OS_REQUIRE_JETSTREAM="1"))
    assert r.rc == 0, r.err
    msgs = stream_of(nats_server)
    assert len(msgs) == len(r.lines)
    token = cell.replace(".", "_")
    assert {m["subject"] for m in msgs} == {f"ev._.x.{token}.{t}" for t in NORMAL_RUN}


@pytest.mark.parametrize("tpl,why", [("cellos.events.>", "wildcard '>'"), ("a..{event}", "empty token"),
                                     ("a.{tenant}.{event}", "unknown placeholder"), ("a b.{event}", "whitespace")])
def test_invalid_subject_template_is_refused_at_admission(tpl, why):
    r = run_cell(make_spec(), env={"CELLOS_NATS_URL": f"nats://127.0.0.1:{closed_port()}",
                                   "CELLOS_NATS_SUBJECT": tpl})
    assert r.rc == 125
    assert "CELLOS_NATS_SUBJECT" in r.err and why in r.err, r.err
    assert r.events == []


def test_signed_wrappers_are_published_and_verify(nats_server):
    with nats_server.client() as c:
        ensure_events_stream(c)
    key = Ed25519Key("js-kid")
    env = nats_env(nats_server, **key.env())
    spec = make_spec()
    r = run_cell(spec, env=env)
    assert r.rc == 0, r.err
    msgs = stream_of(nats_server)
    inner = check_signed_log([m["data"] for m in msgs], key)
    assert [short_type(e) for e in inner] == NORMAL_RUN
    for m in msgs:
        w = json.loads(m["data"])
        # The wrapper's id is the message id; the subject names the inner event.
        assert m["headers"]["Nats-Msg-Id"] == w["id"] != w["data"]["event"]["id"]
        assert m["subject"] == f"cellos.events._.{spec['spec']['id']}.{inner_type(w)}"


def test_server_killed_while_the_cell_runs(no_residue):
    """The broker dies after the workload started: the cell still completes with
    its own status, what got no ack is in the DLQ, and the delay is bounded by
    the run's budget (3 s), not per event."""
    server = NatsServer().start()
    try:
        with server.client() as c:
            ensure_events_stream(c)
        dlq = new_dir("dlq")
        run = Running(make_spec(["/bin/sh", "-c", "sleep 1.5; exit 4"]),
                      env={"CELLOS_NATS_URL": server.url, "CELLOS_DLQ_DIR": str(dlq)})
        try:
            run.wait_event("observability.v1.process_spawned")
            server.stop()
            t_kill = time.monotonic()
            r = run.finish(timeout=30)
        finally:
            run.kill()
        assert r.rc == 4, r.err
        # The workload slept 1.5 s; after it, the sink may hold the run 3 s in all.
        assert time.monotonic() - t_kill < 1.5 + 3 + 2, r.err
        letters = dead_letters(dlq)
        assert letters, r.err
        lost = [e["event"] for _, _, e, _ in letters]
        assert all("nats" in e["error"] for _, _, e, _ in letters)
        # The same store, a new server: together with the dead letters it has
        # every event of the run. The stream has them in the run's order, each
        # once; an event the server stored but whose ack died with it is in
        # both (the same id: consumers de-duplicate by it), and nothing the
        # stream lacks is missing from the DLQ.
        server.start()
        stored = [json.loads(m["data"])["id"] for m in stream_of(server)]
        lost_ids = [e["id"] for e in lost]
        run_ids = [e["id"] for e in r.events]
        assert stored == [i for i in run_ids if i in stored] and len(set(stored)) == len(stored)
        assert len(set(lost_ids)) == len(lost_ids)
        assert [i for i in run_ids if i not in stored] == [i for i in run_ids if i in lost_ids and i not in stored]
        assert set(stored) | set(lost_ids) == set(run_ids)
        assert short_type(lost[-1]) == "lifecycle.v1.destroyed"
    finally:
        server.stop()


def test_unreachable_server_without_requirement_never_stops_the_cell():
    dlq = new_dir("dlq")
    t0 = time.monotonic()
    r = run_cell(make_spec(["/bin/echo", "ran"]),
                 env={"CELLOS_NATS_URL": f"nats://127.0.0.1:{closed_port()}", "CELLOS_DLQ_DIR": str(dlq)})
    assert r.rc == 0 and r.out == "ran\n", r.err
    assert time.monotonic() - t0 < 3 + 3, r.err
    assert [short_type(e["event"]) for _, _, e, _ in dead_letters(dlq)] == NORMAL_RUN
    assert "no server answers yet" in r.err


def test_require_jetstream_not_configured_is_125():
    r = run_cell(make_spec(), env={"CELL_OS_REQUIRE_JETSTREAM": "1"})
    assert r.rc == 125
    assert "CELL_OS_REQUIRE_JETSTREAM" in r.err and "CELLOS_NATS_URL is not set" in r.err
    assert r.events == []
    r = run_cell(make_spec(), env={"CELL_OS_REQUIRE_JETSTREAM": "1", "CELL_OS_USE_NOOP_SINK": "1",
                                   "CELLOS_NATS_URL": "nats://127.0.0.1:1"})
    assert r.rc == 125 and "CELL_OS_USE_NOOP_SINK" in r.err


def test_require_jetstream_unreachable_is_125_at_admission():
    t0 = time.monotonic()
    r = run_cell(make_spec(), env={"CELL_OS_REQUIRE_JETSTREAM": "1",
                                   "CELLOS_NATS_URL": f"nats://127.0.0.1:{closed_port()}"})
    assert r.rc == 125
    assert re.search(r"CELL_OS_REQUIRE_JETSTREAM: cannot connect to NATS \(nats://127\.0\.0\.1:\d+\)", r.err), r.err
    assert r.events == [] and time.monotonic() - t0 < 5


def test_require_jetstream_without_a_stream_is_125_and_ensure_stream_makes_it(nats_server):
    env = nats_env(nats_server, CELL_OS_REQUIRE_JETSTREAM="1")
    r = run_cell(make_spec(), env=env)
    assert r.rc == 125
    assert "no JetStream stream captures cellos.events._." in r.err, r.err
    assert r.events == []
    r = run_cell(make_spec(), env=dict(env, CELLOS_NATS_ENSURE_STREAM="1"))
    assert r.rc == 0, r.err
    with nats_server.client() as c:
        info = c.stream_info("CELLOS_EVENTS")
    assert info["config"]["subjects"] == ["cellos.events.>"] and info["config"]["storage"] == "file"
    assert info["config"]["num_replicas"] == 1
    assert info["state"]["messages"] == len(r.lines)


def test_without_ensure_stream_the_supervisor_creates_nothing(nats_server):
    dlq = new_dir("dlq")
    r = run_cell(make_spec(), env=nats_env(nats_server, CELLOS_DLQ_DIR=str(dlq)))
    assert r.rc == 0, r.err
    with nats_server.client() as c:
        assert c.js("STREAM.NAMES")["streams"] in (None, [])
    letters = dead_letters(dlq)
    assert len(letters) == len(NORMAL_RUN)
    assert "no JetStream stream captures" in letters[0][2]["error"]


def test_no_nats_descriptor_reaches_the_workload(nats_server):
    with nats_server.client() as c:
        ensure_events_stream(c)
    r = run_cell(make_spec(["/bin/ls", "/proc/self/fd"]), env=nats_env(nats_server))
    assert r.rc == 0, r.err
    assert sorted(int(x) for x in r.out.split()) == [0, 1, 2, 3]  # 3: ls's own directory


def test_user_and_password_in_the_url():
    server = NatsServer(user=("cell", "s3cret")).start()
    try:
        with server.client() as c:
            ensure_events_stream(c)
        r = run_cell(make_spec(), env={"CELLOS_NATS_URL": server.url, "CELL_OS_REQUIRE_JETSTREAM": "1"})
        assert r.rc == 0, r.err
        assert "s3cret" not in r.err
        assert len(stream_of(server)) == len(r.lines)
        bad = server.url.replace("s3cret", "wrong")
        r = run_cell(make_spec(), env={"CELLOS_NATS_URL": bad, "CELL_OS_REQUIRE_JETSTREAM": "1"})
        assert r.rc == 125 and "CELL_OS_REQUIRE_JETSTREAM" in r.err
    finally:
        server.stop()


def test_tls_with_a_private_ca_and_a_client_certificate():
    tls = make_tls(new_dir("tls"))
    server = NatsServer(tls=dict(tls, verify_ca=tls["ca"])).start()
    try:
        with server.client() as c:
            ensure_events_stream(c)
        base = {"CELLOS_NATS_URL": server.url, "CELL_OS_REQUIRE_JETSTREAM": "1"}
        full = dict(base, CELLOS_NATS_TLS_CA=tls["ca"], CELLOS_NATS_TLS_CERT=tls["client_cert"],
                    CELLOS_NATS_TLS_KEY=tls["client_key"])
        r = run_cell(make_spec(), env=full)
        assert r.rc == 0, r.err
        assert [m["data"] for m in stream_of(server)] == r.lines
        # Without the client certificate the server refuses us; without the CA
        # we refuse the server.
        r = run_cell(make_spec(), env=dict(base, CELLOS_NATS_TLS_CA=tls["ca"]))
        assert r.rc == 125 and "CELL_OS_REQUIRE_JETSTREAM" in r.err, r.err
        r = run_cell(make_spec(), env=dict(base, CELLOS_NATS_TLS_CERT=tls["client_cert"],
                                           CELLOS_NATS_TLS_KEY=tls["client_key"]))
        assert r.rc == 125 and "CELL_OS_REQUIRE_JETSTREAM" in r.err, r.err
    finally:
        server.stop()


@pytest.mark.parametrize("env,var", [
    ({"CELLOS_NATS_URL": "http://127.0.0.1:4222"}, "CELLOS_NATS_URL"),
    ({"CELLOS_NATS_URL": "nats://a:1,,nats://b:2"}, "CELLOS_NATS_URL"),
    ({"CELLOS_NATS_URL": "nats://127.0.0.1:1", "CELLOS_NATS_CREDS": "/nonexistent/x.creds"}, "CELLOS_NATS_CREDS"),
    ({"CELLOS_NATS_URL": "nats://127.0.0.1:1", "CELLOS_NATS_TLS_CERT": "/etc/hostname"}, "CELLOS_NATS_TLS_KEY"),
    ({"CELLOS_NATS_URL": "nats://127.0.0.1:1", "CELLOS_NATS_TLS_CA": "/etc"}, "CELLOS_NATS_TLS_CA"),
])
def test_bad_nats_configuration_is_125_naming_the_variable(env, var):
    r = run_cell(make_spec(), env=env)
    assert r.rc == 125
    lines = [l for l in r.err.splitlines() if var in l]
    assert len(lines) == 1, r.err
    assert r.events == []


def test_validate_does_not_connect():
    r = run_cell(make_spec(), env={"CELLOS_NATS_URL": f"nats://127.0.0.1:{closed_port()}",
                                   "CELL_OS_REQUIRE_JETSTREAM": "1"}, args=["--validate", "{spec}"])
    assert r.rc == 0, r.err


def test_sigterm_still_publishes_the_end_of_the_run(no_residue, nats_server):
    """libnats's threads must not take the supervisor's SIGTERM (they are made
    with it blocked): the cell is torn down as usual and its last events reach
    the stream."""
    with nats_server.client() as c:
        ensure_events_stream(c)
    run = Running(make_spec(["/bin/sleep", "30"]), env=nats_env(nats_server))
    try:
        run.wait_event("observability.v1.process_spawned")
        run.proc.send_signal(15)
        r = run.finish(timeout=20)
    finally:
        run.kill()
    assert r.rc == 128 + 15, r.err
    msgs = [json.loads(m["data"]) for m in stream_of(nats_server)]
    assert [e["id"] for e in msgs] == [e["id"] for e in r.events]
    assert short_type(msgs[-1]) == "lifecycle.v1.destroyed"
    assert msgs[-1]["data"]["reason"] == "supervisor_terminated"


def test_pipelined_publishes_keep_the_run_order_with_their_ids(nats_server):
    """Publishes are pipelined (sent without waiting for the previous ack): a
    thousand events emitted back to back by the supervisor's event path are all
    in the stream, once each, in the order of the run, with their ids."""
    from conftest import REPO_ROOT
    with nats_server.client() as c:
        ensure_events_stream(c)
    d = new_dir("bench-events")
    jsonl = d / "events.jsonl"
    p = subprocess.run([str(REPO_ROOT / "build" / "bench-events"), "1000"], capture_output=True, timeout=60,
                       env={"PATH": os.environ["PATH"], "CELLOS_NATS_URL": nats_server.url,
                            "CELL_OS_JSONL_EVENTS": str(jsonl), "CELLOS_LOG": "debug"})
    assert p.returncode == 0, p.stderr
    assert b"1001 events acked (0 duplicates), 0 dead-lettered" in p.stderr, p.stderr
    lines = [l for l in jsonl.read_bytes().split(b"\n") if l]
    msgs = stream_of(nats_server)
    assert len(lines) == 1001
    assert [m["data"] for m in msgs] == lines
    assert [m["headers"]["Nats-Msg-Id"] for m in msgs] == [json.loads(l)["id"] for l in lines]


def test_server_that_stops_acking_mid_run(no_residue):
    """The broker stops answering (SIGSTOP: the connection stays up, nothing is
    acked) after the workload started: the cell ends with its own status, the
    supervisor exits within the broker's budget (3 s), and every event not acked
    is in the DLQ; what the stream has is the run's first events, in order."""
    server = NatsServer().start()
    try:
        with server.client() as c:
            ensure_events_stream(c)
        dlq = new_dir("dlq")
        run = Running(make_spec(["/bin/sh", "-c", "sleep 0.5; exit 4"]),
                      env={"CELLOS_NATS_URL": server.url, "CELLOS_DLQ_DIR": str(dlq)})
        try:
            run.wait_event("observability.v1.process_spawned")
            time.sleep(0.1)  # its ack is in (a loopback round trip)
            server.proc.send_signal(signal.SIGSTOP)
            t_stop = time.monotonic()
            r = run.finish(timeout=30)
            elapsed = time.monotonic() - t_stop
        finally:
            server.proc.send_signal(signal.SIGCONT)
            run.kill()
        assert r.rc == 4, r.err
        assert elapsed < 0.5 + 3 + 1.5, (elapsed, r.err)
        letters = dead_letters(dlq)
        lost = [e["event"] for _, _, e, _ in letters]
        assert [short_type(e) for e in lost] == NORMAL_RUN[3:], r.err
        assert all(e["error"].startswith("sink nats: not acked within the run's 3000 ms budget")
                   for _, _, e, _ in letters), letters[0][2]["error"]
        # Resumed, the server stores what it had received; those events are
        # then both stored and dead-lettered (consumers de-duplicate by id).
        # In the stream, the run's events are in order, each once.
        time.sleep(0.5)
        ids = [json.loads(m["data"])["id"] for m in stream_of(server)]
        run_ids = [e["id"] for e in r.events]
        assert ids[:3] == run_ids[:3]
        assert ids == [i for i in run_ids if i in ids] and len(set(ids)) == len(ids)
    finally:
        server.stop()


def test_server_restarted_mid_run_gets_every_event_in_order(no_residue):
    """The broker restarts (same port and store) while the cell runs: the sink
    reconnects and republishes what was not acked, in order, with the same ids;
    nothing is dead-lettered and the stream has the run's events once each, in
    order."""
    server = NatsServer().start()
    try:
        with server.client() as c:
            ensure_events_stream(c)
        dlq = new_dir("dlq")
        run = Running(make_spec(["/bin/sh", "-c", "sleep 1; exit 0"]),
                      env={"CELLOS_NATS_URL": server.url, "CELLOS_DLQ_DIR": str(dlq)})
        try:
            run.wait_event("observability.v1.process_spawned")
            time.sleep(0.1)
            server.stop()
            server.start()
            r = run.finish(timeout=30)
        finally:
            run.kill()
        assert r.rc == 0, r.err
        assert dead_letters(dlq) == [], r.err
        msgs = [json.loads(m["data"]) for m in stream_of(server)]
        assert [e["id"] for e in msgs] == [e["id"] for e in r.events], r.err
    finally:
        server.stop()


def test_plain_connection_runs_no_thread_and_loads_no_libnats(no_residue, nats_server):
    """With a plain nats:// URL the supervisor stays one thread (nothing runs
    beside it when it clone3()s the cell's init) and never loads libnats; its
    events still reach the stream."""
    with nats_server.client() as c:
        ensure_events_stream(c)
    run = Running(make_spec(["/bin/sleep", "1"]), env=nats_env(nats_server))
    try:
        run.wait_event("observability.v1.process_spawned")
        status = open(f"/proc/{run.proc.pid}/status").read()
        maps = open(f"/proc/{run.proc.pid}/maps").read()
        r = run.finish(timeout=20)
    finally:
        run.kill()
    assert r.rc == 0, r.err
    assert re.search(r"^Threads:\s+1$", status, re.M), status
    assert "libnats" not in maps and "libssl" not in maps
    assert [json.loads(m["data"])["id"] for m in stream_of(nats_server)] == [e["id"] for e in r.events]
