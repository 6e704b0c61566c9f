"""cellos-agent's relay (docs/DESIGN.md, "The agent's relay"): the supervisors the
agent starts publish their events through the agent's own NATS connection
(CELLOS_NATS_RELAY_FD), against a real nats-server whose monitoring port
counts every connection it ever accepted (/varz total_connections)."""
from __future__ import annotations

import json
import os
import socket
import uuid

import pytest

from conftest import MARK, make_spec, marked_processes, new_dir, run_cell, verify_chain, wait_no_marked
from natshelper import NatsServer, ensure_events_stream, make_tls
from signed_events import Ed25519Key, check_signed_log
from test_agent import (Agent, agent_children, cellctl, fd_targets, job_doc, queue_init, socket_inode, socket_peers,
                        submit, wait_for, warm_supervisors)
from test_dlq import dead_letters

FINAL = ("dev.cellos.events.cell.lifecycle.v1.destroyed", "dev.cellos.events.cell.lifecycle.v1.failed")


@pytest.fixture
def monitored():
    """A JetStream server with its monitoring port, the work queue and the events stream."""
    s = NatsServer(monitor=True)
    try:
        s.start()
        queue_init(s.url)
        with s.client() as c:
            ensure_events_stream(c)
        yield s
    finally:
        s.stop()


def jsonl_lines(path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return [l for l in data[:data.rfind(b"\n") + 1].split(b"\n") if l.strip()]


def inner(line: bytes) -> dict:
    ev = json.loads(line)
    return ev["data"]["event"] if "signerKid" in ev.get("data", {}) else ev


def runs_of_jobs(path) -> dict[str, list[bytes]]:
    """run id -> its lines (wrappers when signed), for the runs that ended."""
    runs: dict[str, list[bytes]] = {}
    for line in jsonl_lines(path):
        runs.setdefault(inner(line)["data"]["runId"], []).append(line)
    return {r: ls for r, ls in runs.items() if inner(ls[-1])["type"] in FINAL}


def warm_ready(a: Agent) -> bool:
    """A warm supervisor of the agent is ready (it closed its fd 3)."""
    return any(not os.path.exists(f"/proc/{p}/fd/3") for p in warm_supervisors(a))


def run_jobs(srv, agent_env: dict, jobs: int, argv=("/bin/true",)) -> tuple[dict[str, list[bytes]], int, Agent]:
    """Run `jobs` jobs through one agent; the runs' lines, how many connections
    the server accepted while the jobs ran (the agent's own made before), the agent."""
    jsonl = new_dir("relay-events") / "events.jsonl"
    a = Agent(srv.url, jsonl, **agent_env)
    try:
        if agent_env.get("CELLOS_AGENT_WARM"):
            wait_for(lambda: warm_ready(a), 30, "a warm cell")
        with srv.client() as c:
            before = srv.total_connections()
            for _ in range(jobs):
                submit(c, job_doc(list(argv)))
            wait_for(lambda: len(runs_of_jobs(jsonl)) == jobs, 60, "the jobs")
            total = sum(len(v) for v in runs_of_jobs(jsonl).values())
            wait_for(lambda: c.stream_info("CELLOS_EVENTS")["state"]["messages"] >= total, 20, "the events")
            during = srv.total_connections() - before
    finally:
        assert a.stop() == 0
    return runs_of_jobs(jsonl), during, a


def test_relayed_events_are_all_in_the_stream_in_order_signed_and_no_supervisor_connects(monitored):
    key = Ed25519Key("relay-kid")
    runs, during, a = run_jobs(monitored, {"CELL_OS_REQUIRE_JETSTREAM": "1", "CELLOS_AGENT_MAX_CELLS": "2",
                                           "CELLOS_AGENT_WARM": "1", **key.env()}, 4)
    assert len(runs) == 4
    assert any("(warm cell)" in l for l in a.job_lines()), a.job_lines()
    # Not one connection while four supervisors ran (cold and in warm cells) and
    # warm cells were started, their admission check (CELL_OS_REQUIRE_JETSTREAM)
    # included: everything went through the agent's.
    assert during == 0, during
    with monitored.client() as c:
        msgs = c.stream_messages("CELLOS_EVENTS")
    by_run: dict[str, list[dict]] = {}
    for m in msgs:
        by_run.setdefault(inner(m["data"])["data"]["runId"], []).append(m)
    for run, lines in runs.items():
        got = by_run.get(run, [])
        # Every event of the run, byte for byte what the JSONL mirror has, in order.
        assert [m["data"] for m in got] == lines, run
        for m in got:
            assert m["headers"]["Nats-Msg-Id"] == json.loads(m["data"])["id"]
        check_signed_log(lines, key)
    assert sum(len(v) for v in by_run.values()) == sum(len(v) for v in runs.values())


def agent_connections(srv) -> list[str]:
    """The names of the agent's connections the server holds now."""
    return sorted(n for c in srv.monitor("connz")["connections"] if (n := c.get("name", "")).startswith("cellos-agent"))


def test_the_relay_has_a_connection_of_its_own_and_over_tls_shares_the_agents():
    """Plain TCP: the relay's messages go on a connection of their own (the
    threadless client polled in the agent's loop); with TLS, which that client
    does not do, on the agent's libnats connection. Either way every event of
    every job is in the stream and no supervisor connects."""
    tls = make_tls(new_dir("relay-tls"))
    for server_tls, env in ((None, {}), (tls, {"CELLOS_NATS_TLS_CA": str(tls["ca"])})):
        srv = NatsServer(monitor=True, tls=server_tls).start()
        try:
            r = cellctl("queue", "init", env={"CELLOS_NATS_URL": srv.url, **env})
            assert r.returncode == 0, r.stderr
            with srv.client() as c:
                ensure_events_stream(c)
            jsonl = new_dir("relay-events") / "events.jsonl"
            a = Agent(srv.url, jsonl, CELLOS_AGENT_MAX_CELLS="2", CELL_OS_REQUIRE_JETSTREAM="1", **env)
            try:
                want = ["cellos-agent"] if server_tls else ["cellos-agent", "cellos-agent (relay)"]
                wait_for(lambda: agent_connections(srv) == want, 10, "the agent's connections")
                with srv.client() as c:
                    before = srv.total_connections()
                    for _ in range(3):
                        submit(c, job_doc(["/bin/true"]))
                    wait_for(lambda: len(runs_of_jobs(jsonl)) == 3, 60, "the jobs")
                    total = sum(len(v) for v in runs_of_jobs(jsonl).values())
                    wait_for(lambda: c.stream_info("CELLOS_EVENTS")["state"]["messages"] == total, 20, "the events")
                    assert srv.total_connections() == before, "a supervisor connected"
                    got = [m["data"] for m in c.stream_messages("CELLOS_EVENTS")]
                assert sorted(got) == sorted(l for ls in runs_of_jobs(jsonl).values() for l in ls)
            finally:
                assert a.stop() == 0
        finally:
            srv.stop()


def test_without_the_relay_every_supervisor_opens_its_own_connection(monitored):
    """CELLOS_AGENT_RELAY=0: the counter above does see supervisors that connect."""
    runs, during, _ = run_jobs(monitored, {"CELLOS_AGENT_RELAY": "0", "CELLOS_AGENT_MAX_CELLS": "1"}, 3)
    assert len(runs) == 3
    assert during == 3, during
    with monitored.client() as c:
        assert c.stream_info("CELLOS_EVENTS")["state"]["messages"] == sum(len(v) for v in runs.values())


def test_a_stream_that_does_not_capture_the_subject_refuses_the_run_through_the_relay(monitored):
    """CELL_OS_REQUIRE_JETSTREAM keeps its meaning under the relay: the check is
    asked of JetStream on the agent's connection."""
    jsonl = new_dir("relay-events") / "events.jsonl"
    a = Agent(monitored.url, jsonl, CELL_OS_REQUIRE_JETSTREAM="1", CELLOS_NATS_SUBJECT="elsewhere.{cellId}.{event}")
    try:
        with monitored.client() as c:
            before = monitored.total_connections()
            submit(c, job_doc(["/bin/true"]))
            wait_for(lambda: len(a.job_lines()) == 1, 30, "the job")
            assert monitored.total_connections() == before
    finally:
        assert a.stop() == 0
    assert ": failed, exit 125," in a.job_lines()[0], a.job_lines()
    assert "CELL_OS_REQUIRE_JETSTREAM" in a.text() and "elsewhere." in a.text(), a.text()


def test_the_workload_has_no_relay_and_the_agent_closes_its_end_after_the_supervisor(monitored):
    jsonl = new_dir("relay-events") / "events.jsonl"
    tag = f"{MARK}-relayfd-{uuid.uuid4().hex[:6]}"
    # Exit 40+N when the workload has descriptor N (3..20) open.
    probe = "for n in $(seq 3 20); do [ -e /proc/$$/fd/$n ] && exit $((40+n)); done; sleep 2; echo " + tag
    a = Agent(monitored.url, jsonl, CELLOS_AGENT_MAX_CELLS="1")
    try:
        with monitored.client() as c:
            submit(c, job_doc(["/bin/sh", "-c", probe]))
            wait_for(lambda: marked_processes(tag) and agent_children(a, "cellos-supervisor"), 20, "the cell")
            (sup,) = agent_children(a, "cellos-supervisor")
            relay = socket_inode(fd_targets(sup)[3])
            agent_end = socket_peers()[relay]
            agent_sockets = {socket_inode(t) for t in fd_targets(a.proc.pid).values() if t.startswith("socket:")}
            assert agent_end in agent_sockets
            wait_for(lambda: len(runs_of_jobs(jsonl)) == 1, 30, "the job")
            wait_for(lambda: not agent_children(a, "cellos-supervisor"), 20, "the supervisor to exit")
            # The agent closed its end once the supervisor was gone.
            left = {socket_inode(t) for t in fd_targets(a.proc.pid).values() if t.startswith("socket:")}
            assert agent_end not in left and left == agent_sockets - {agent_end}, (left, agent_sockets)
    finally:
        assert a.stop() == 0
    (lines,) = runs_of_jobs(jsonl).values()
    done = [json.loads(l) for l in lines if json.loads(l)["type"].endswith("command.v1.completed")]
    assert done and done[0]["data"]["exitCode"] == 0, done


def test_agent_sigkilled_mid_job_the_events_it_did_not_ack_are_dead_lettered(monitored):
    """SPEC §11: the cells die with their agent (each supervisor gets SIGTERM and
    still reports the run); the events reported after the agent is gone cannot be
    relayed: they are in the supervisor's dead-letter directory, none is lost."""
    jsonl = new_dir("relay-events") / "events.jsonl"
    dlq = new_dir("relay-dlq")
    tag = f"{MARK}-relayk9-{uuid.uuid4().hex[:6]}"
    a = Agent(monitored.url, jsonl, CELLOS_AGENT_MAX_CELLS="2", CELLOS_DLQ_DIR=str(dlq))
    with monitored.client() as c:
        for _ in range(2):
            submit(c, job_doc(["/bin/sh", "-c", f"sleep 30; echo {tag}"]))
        wait_for(lambda: len(marked_processes(tag)) >= 2, 20, "the cells")
        sups = agent_children(a, "cellos-supervisor")
        assert len(sups) == 2
        a.proc.kill()
        a.proc.wait()
        left, _ = wait_no_marked(tag, 15)
        assert not left, left
        wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in sups), 15, "the supervisors to exit")
        in_stream = {json.loads(m["data"])["id"] for m in c.stream_messages("CELLOS_EVENTS")}
    runs = runs_of_jobs(jsonl)
    assert len(runs) == 2
    dead = {e[2]["event"]["id"]: e[2] for e in dead_letters(dlq)}
    for lines in runs.values():
        verify_chain(lines)
        assert inner(lines[-1])["data"]["reason"] == "supervisor_terminated"
        for line in lines:
            ev = json.loads(line)
            assert ev["id"] in in_stream or ev["id"] in dead, ev["type"]
        # What came after the agent died is in the DLQ, saying why.
        final = json.loads(lines[-1])
        assert final["id"] in dead and "cellos-agent" in dead[final["id"]]["error"], dead.get(final["id"])


@pytest.mark.parametrize("value,why", [("x", "not a descriptor number"), ("2", "not a descriptor number"),
                                       ("closed", "Bad file descriptor"), ("pipe", "not a socket"),
                                       ("stream", "not an AF_UNIX SOCK_SEQPACKET socket")])
def test_a_bad_relay_descriptor_is_125_naming_the_variable(value, why):
    keep = []
    try:
        if value == "closed":
            r, w = os.pipe()
            os.close(r), os.close(w)
            value = str(r)
        elif value == "pipe":
            r, w = os.pipe()
            keep += [r, w]
            value = str(r)
        elif value == "stream":
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            keep += [a, b]
            value = str(a.fileno())
        fds = [f if isinstance(f, int) else f.fileno() for f in keep]
        for f in fds:
            os.set_inheritable(f, True)
        res = run_cell(make_spec(), env={"CELLOS_NATS_URL": "nats://127.0.0.1:1", "CELLOS_NATS_RELAY_FD": value},
                       pass_fds=fds)
    finally:
        for f in keep:
            f.close() if hasattr(f, "close") else os.close(f)
    assert res.rc == 125, res
    lines = res.err.strip().splitlines()
    assert any("CELLOS_NATS_RELAY_FD" in l and why in l for l in lines), res.err
    assert res.events == []


def test_the_relay_needs_cellos_nats_url():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        res = run_cell(make_spec(), env={"CELLOS_NATS_RELAY_FD": str(a.fileno())}, pass_fds=[a.fileno()])
    finally:
        a.close(), b.close()
    assert res.rc == 125 and "CELLOS_NATS_RELAY_FD" in res.err and "CELLOS_NATS_URL" in res.err, res.err
