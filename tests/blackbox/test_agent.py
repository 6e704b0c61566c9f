"""cellos-agent (SPEC §11) against real nats-server processes on free loopback
ports (natshelper.py): a single server for the behaviour of one agent, and a
3-node JetStream cluster (R3 streams) with three agents for the distributed
engine. The agents run the real cellos-supervisor; the events are read from
the JSONL mirror every supervisor appends to (one file, O_APPEND) and from the
CELLOS_EVENTS stream itself."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from conftest import (CELL_IDS, MARK, REPO_ROOT, SUPERVISOR_PATH, live_jsonl, make_spec, marked_processes, new_dir,
                      unique_id, wait_no_marked)
from natshelper import NATS_SERVER, NatsClient, NatsServer, free_port, nats_server  # noqa: F401
from natsrelay import NatsRelay

AGENT = Path(os.environ.get("CELLOS_AGENT") or (REPO_ROOT / "build" / "cellos-agent"))
CELLCTL = REPO_ROOT / "build" / "cellctl"
SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer")
PREFIX = "dev.cellos.events.cell."


# --------------------------------------------------------------------------- helpers

class Agent:
    def __init__(self, urls: str, jsonl: Path, **env):
        self.log = new_dir("agent-log") / "agent.log"
        full = {"PATH": SUPERVISOR_PATH, "CELLOS_NATS_URL": urls, "CELL_OS_JSONL_EVENTS": str(jsonl),
                "CELLOS_AGENT_MAX_CELLS": "2"}
        full.update({k: str(v) for k, v in env.items()})
        self.env = full
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen([str(AGENT)], env=full, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.wait_log("taking jobs from", 15)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float):
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc.poll() is None, f"agent exited {self.proc.returncode}: {self.text()}"
            assert time.monotonic() < deadline, f"agent log lacks {needle!r}: {self.text()}"
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        assert not any(s in self.text() for s in SANITIZER), self.text()
        return rc

    def job_lines(self) -> list[str]:
        """The complete job lines so far (the last line may still be being written)."""
        text = self.text()
        return [l for l in text[:text.rfind("\n") + 1].splitlines() if l.startswith("cellos-agent: info: job ")]


def stop_all(agents):
    for a in agents:
        if a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait()


def cellctl(*args, env: dict):
    r = subprocess.run([str(CELLCTL), *args], env={"PATH": SUPERVISOR_PATH, **env}, capture_output=True,
                       text=True, timeout=60)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    return r


def submit(client: NatsClient, doc, job_id: str | None = None, pool: str = "default") -> str:
    job_id = job_id or str(uuid.uuid4())
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    if isinstance(doc, dict):
        CELL_IDS.add(doc["spec"]["id"])
    # While a cluster elects a new stream leader the publish gets no ack (503, or
    # nothing): published again with the same id, which the stream de-duplicates.
    deadline = time.monotonic() + 20
    while True:
        try:
            m = client.request(f"cellos.cells.{pool}", body, headers={"Nats-Msg-Id": job_id}, timeout=2)
            ack = json.loads(m["data"]) if m["data"] else {}
        except TimeoutError:
            ack = {}
        if ack.get("stream") == "CELLOS_CELLS" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ack.get("stream") == "CELLOS_CELLS", ack
    return job_id


def events(jsonl: Path) -> list[dict]:
    return live_jsonl(jsonl)


def runs_by_job(jsonl: Path) -> dict[str, dict[str, list[dict]]]:
    """job id -> run id -> its events (in order)."""
    evs = events(jsonl)
    job_of_run = {}
    for e in evs:
        corr = e["data"].get("correlation") or {}
        if corr.get("externalJobId"):
            job_of_run[e["data"]["runId"]] = corr["externalJobId"]
    out: dict[str, dict[str, list[dict]]] = {}
    for e in evs:
        job = job_of_run.get(e["data"]["runId"])
        if job:
            out.setdefault(job, {}).setdefault(e["data"]["runId"], []).append(e)
    return out


def finished(run: list[dict]) -> dict | None:
    """The run's last event when it ended (destroyed, or failed before start)."""
    for e in run:
        t = e["type"][len(PREFIX):]
        if t in ("lifecycle.v1.destroyed", "lifecycle.v1.failed"):
            return e
    return None


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def queue_init(urls: str):
    r = cellctl("queue", "init", env={"CELLOS_NATS_URL": urls})
    assert r.returncode == 0, r.stderr
    return r.stdout


def consumer_info(client: NatsClient, pool="default") -> dict:
    return client.js(f"CONSUMER.INFO.CELLOS_CELLS.cellos-agent-{pool}")


def job_doc(argv, **kw):
    return make_spec(argv, **kw)


@pytest.fixture
def server_and_queue(nats_server):
    queue_init(nats_server.url)
    yield nats_server


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("env,needle", [
    ({}, "CELLOS_NATS_URL"),
    ({"CELLOS_AGENT_POOLS": "a.b"}, "CELLOS_AGENT_POOLS"),
    ({"CELLOS_AGENT_POOLS": "gpu,>"}, "CELLOS_AGENT_POOLS"),
    ({"CELLOS_AGENT_MAX_CELLS": "0"}, "CELLOS_AGENT_MAX_CELLS"),
    ({"CELLOS_AGENT_WARM": "x"}, "CELLOS_AGENT_WARM"),
    ({"CELLOS_AGENT_TENANT": "t.1"}, "CELLOS_AGENT_TENANT"),
    ({"CELLOS_AGENT_METRICS_ADDR": "localhost"}, "CELLOS_AGENT_METRICS_ADDR"),
    ({"CELLOS_AGENT_SECRETS": "A,b c"}, "CELLOS_AGENT_SECRETS"),
    ({"CELLOS_AGENT_RELAY": "yes"}, "CELLOS_AGENT_RELAY"),
    ({"CELLOS_AGENT_SUPERVISOR": "/nonexistent/sup"}, "CELLOS_AGENT_SUPERVISOR"),
    ({"CELLOS_LOG": "loud"}, "CELLOS_LOG"),
])
def test_configuration_errors_are_125_with_one_line_naming_the_variable(env, needle):
    full = {"PATH": SUPERVISOR_PATH, **env}
    if needle != "CELLOS_NATS_URL":
        full["CELLOS_NATS_URL"] = "nats://127.0.0.1:1"
    r = subprocess.run([str(AGENT)], env=full, capture_output=True, text=True, timeout=20)
    assert r.returncode == 125, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_help_and_usage():
    r = subprocess.run([str(AGENT), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "CELLOS_AGENT_POOLS" in r.stdout
    r = subprocess.run([str(AGENT), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 125 and "usage" in r.stderr


# --------------------------------------------------------------------------- one server

def test_jobs_run_once_each_with_their_job_id_and_are_acked(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        with srv.client() as c:
            jobs = {}
            for i in range(6):
                code = [0, 3, 7][i % 3]
                jobs[submit(c, job_doc(["/bin/sh", "-c", f"exit {code}"]))] = code
            bad = submit(c, b'{"apiVersion": "cellos.io/v1", "kind": "ExecutionCell", "spec": {"id": "x y"}}')
            # The same job id again: the stream de-duplicates it.
            again = next(iter(jobs))
            dup = c.request("cellos.cells.default", json.dumps(job_doc(["/bin/true"])).encode(),
                            headers={"Nats-Msg-Id": again})
            assert json.loads(dup["data"]).get("duplicate") is True
            wait_for(lambda: len(runs_by_job(jsonl)) == len(jobs) + 1 and
                     all(finished(r) for rs in runs_by_job(jsonl).values() for r in rs.values()), 60,
                     "every job to finish")
            wait_for(lambda: consumer_info(c)["num_ack_pending"] == 0, 10, "acks")
            info = consumer_info(c)
            assert info["num_pending"] == 0 and info["num_redelivered"] == 0, info
            assert info["config"]["ack_policy"] == "explicit" and info["config"]["max_deliver"] == 3
            assert info["config"]["ack_wait"] == 30 * 10**9
            assert c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0
            stream_events = c.stream_messages("CELLOS_EVENTS")
        runs = runs_by_job(jsonl)
        for job, code in jobs.items():
            assert len(runs[job]) == 1, (job, runs[job].keys())
            (run,) = runs[job].values()
            completed = [e for e in run if e["type"] == PREFIX + "command.v1.completed"]
            assert completed[0]["data"]["exitCode"] == code
            assert finished(run)["data"]["outcome"] == ("succeeded" if code == 0 else "failed")
        # The invalid document: refused once with lifecycle.v1.failed (admission), not redelivered.
        (brun,) = runs[bad].values()
        assert [e["type"][len(PREFIX):] for e in brun] == ["lifecycle.v1.failed"]
        assert brun[0]["data"]["phase"] == "admission" and brun[0]["data"]["reason"] == "invalid_document"
        assert "spec.id" in brun[0]["data"]["message"]
        # The events are in JetStream too, each with its id as Nats-Msg-Id.
        ids = {e["id"] for e in events(jsonl)}
        js_ids = {m["headers"].get("Nats-Msg-Id") for m in stream_events}
        assert ids <= js_ids
        # One log line per job.
        lines = a.job_lines()
        assert len(lines) == len(jobs) + 1, lines
        for job in [*jobs, bad]:
            assert sum(job in l for l in lines) == 1
        # Metrics (Prometheus text, checked by promtool when present).
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        m = {l.split(" ")[0]: float(l.split(" ")[1]) for l in body.splitlines() if l and not l.startswith("#")}
        assert m["cellos_agent_cells_running"] == 0
        assert m["cellos_agent_cells_started_total"] == 6
        assert m['cellos_agent_cells_finished_total{outcome="succeeded"}'] == 2
        assert m['cellos_agent_cells_finished_total{outcome="failed"}'] == 4
        assert m['cellos_agent_cells_finished_total{outcome="invalid"}'] == 1
        assert m["cellos_agent_job_start_seconds_count"] == 6
        for name in ("cellos_agent_cells_running", "cellos_agent_cells_started_total",
                     "cellos_agent_cells_finished_total", "cellos_agent_fetch_errors_total",
                     "cellos_agent_job_start_seconds"):
            assert f"# HELP {name} " in body and f"# TYPE {name} " in body
        promtool = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
        assert promtool.returncode == 0, promtool.stdout + promtool.stderr
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/other", timeout=5)
    finally:
        rc = a.stop()
    assert rc == 0


def test_secrets_pass_only_for_listed_names_and_tenant_is_pinned(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    a = Agent(srv.url, jsonl, CELLOS_AGENT_SECRETS="ALLOWED", CELLOS_AGENT_TENANT="tenant-a",
              CELLOS_SECRET_ALLOWED="v1", CELLOS_SECRET_OTHER="v2")
    try:
        check = "test \"$ALLOWED\" = v1"
        allowed = job_doc(["/bin/sh", "-c", check], secret_refs=["ALLOWED"], run_extra={"secretDelivery": "env"},
                          spec_extra={"correlation": {"tenantId": "tenant-b"}})
        other = job_doc(["/bin/true"], secret_refs=["OTHER"], run_extra={"secretDelivery": "env"})
        with srv.client() as c:
            j1, j2 = submit(c, allowed), submit(c, other)
            wait_for(lambda: all(any(finished(r) for r in runs_by_job(jsonl).get(j, {}).values())
                                 for j in (j1, j2)), 60, "both jobs")
            subjects = [m["subject"] for m in c.stream_messages("CELLOS_EVENTS")]
        runs = runs_by_job(jsonl)
        (r1,) = runs[j1].values()
        assert finished(r1)["data"]["outcome"] == "succeeded", r1
        started = [e for e in r1 if e["type"] == PREFIX + "lifecycle.v1.started"][0]
        assert started["data"]["correlation"]["tenantId"] == "tenant-a"
        cell1 = allowed["spec"]["id"]
        assert any(s.startswith(f"cellos.events.tenant-a.{cell1}.") for s in subjects)
        assert not any(".tenant-b." in s for s in subjects)
        # OTHER is not listed: the supervisor never sees CELLOS_SECRET_OTHER.
        (r2,) = runs[j2].values()
        fail = finished(r2)
        assert fail["type"] == PREFIX + "lifecycle.v1.failed" and fail["data"]["phase"] == "secrets", fail
    finally:
        assert a.stop() == 0


def test_sigterm_drains_terminates_what_outlives_the_drain_and_hands_it_back(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    tag = f"{MARK}-drain-{uuid.uuid4().hex[:6]}"
    a = Agent(srv.url, jsonl, CELLOS_AGENT_DRAIN_SECONDS="1")
    with srv.client() as c:
        short = submit(c, job_doc(["/bin/sh", "-c", "sleep 0.3"]))
        long = submit(c, job_doc(["/bin/sh", "-c", f"sleep 60; echo {tag}"]))
        wait_for(lambda: len(runs_by_job(jsonl)) == 2, 30, "both jobs to start")
        wait_for(lambda: marked_processes(tag), 10, "the long cell")
        t = time.monotonic()
        rc = a.stop(signal.SIGTERM, timeout=30)
        took = time.monotonic() - t
        assert rc == 0 and took < 10, (rc, took)
        assert not marked_processes(tag)
        runs = runs_by_job(jsonl)
        (rs,) = runs[short].values()
        assert finished(rs)["data"]["outcome"] == "succeeded"
        (rl,) = runs[long].values()
        assert finished(rl)["data"]["reason"] == "supervisor_terminated"
        # Handed back (NAK): waiting for the next agent, not lost, not acked.
        info = consumer_info(c)
        assert info["num_pending"] + info["num_ack_pending"] + info["num_redelivered"] >= 1, info
        assert c.stream_info("CELLOS_CELLS")["state"]["messages"] == 1
    assert "draining" in a.text() and "handed back" in a.text()


def test_a_job_delivered_max_deliver_times_is_terminated_with_an_event(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    with srv.client() as c:
        # Two deliveries that never finished (taken, then given up: -NAK), as
        # two agents that died would leave it; the consumer is the agents' own.
        c.js("CONSUMER.DURABLE.CREATE.CELLOS_CELLS.cellos-agent-default",
             {"stream_name": "CELLOS_CELLS",
              "config": {"durable_name": "cellos-agent-default", "deliver_policy": "all", "ack_policy": "explicit",
                         "ack_wait": 30 * 10**9, "max_deliver": 3, "filter_subject": "cellos.cells.default",
                         "max_waiting": 512}})
        doc = job_doc(["/bin/true"])
        job = submit(c, doc)
        for _ in range(2):
            m = c.fetch("CELLOS_CELLS", "cellos-agent-default", timeout=5)
            assert m is not None
            c.request(m["reply"], b"-NAK")
        a = Agent(srv.url, jsonl)
        try:
            wait_for(lambda: job in runs_by_job(jsonl), 30, "the max_deliveries event")
            (run,) = runs_by_job(jsonl)[job].values()
            assert [e["type"][len(PREFIX):] for e in run] == ["lifecycle.v1.failed"]
            assert run[0]["data"]["reason"] == "max_deliveries" and run[0]["data"]["phase"] == "admission"
            wait_for(lambda: c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0, 10, "the job to be gone")
        finally:
            assert a.stop() == 0


# --------------------------------------------------------------------------- the cluster

class Cluster:
    """Three nats-server processes routed into one JetStream cluster."""

    def __init__(self):
        self.ports = [free_port() for _ in range(3)]
        self.cports = [free_port() for _ in range(3)]
        self.stores = [new_dir(f"nats-c{i}") for i in range(3)]
        self.procs: list[subprocess.Popen | None] = [None] * 3
        self.name = f"c{uuid.uuid4().hex[:6]}"

    @property
    def urls(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def start(self, i: int):
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cports) if j != i)
        conf = self.stores[i].parent / f"{self.stores[i].name}.conf"
        conf.write_text(
            f'server_name: n{i}\nlisten: 127.0.0.1:{self.ports[i]}\n'
            f'jetstream {{ store_dir: "{self.stores[i]}" }}\n'
            f'cluster {{ name: {self.name}\n listen: 127.0.0.1:{self.cports[i]}\n routes: [{routes}] }}\n')
        log = open(self.stores[i].parent / f"{self.stores[i].name}.log", "ab")
        self.procs[i] = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)

    def start_all(self):
        for i in range(3):
            self.start(i)
        # JetStream answers once the meta group has a leader.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with NatsClient(self.ports[0], timeout=2) as c:
                    r = c.js("INFO", timeout=2)
                    if "error" not in r:
                        return self
            except (OSError, AssertionError, TimeoutError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError("the cluster has no JetStream meta leader after 30 s")

    def stop(self, i: int):
        p = self.procs[i]
        if p and p.poll() is None:
            p.kill()
            p.wait(timeout=10)

    def stop_all(self):
        for i in range(3):
            self.stop(i)

    def client(self, i=0) -> NatsClient:
        return NatsClient(self.ports[i], timeout=10)


@pytest.fixture
def cluster():
    c = Cluster()
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()


def wait_all_finished(jsonl: Path, jobs, timeout: float, agents=()):
    def missing():
        runs = runs_by_job(jsonl)
        return [j for j in jobs if not any(finished(r) for r in runs.get(j, {}).values())]
    deadline = time.monotonic() + timeout
    while missing():
        if time.monotonic() > deadline:
            left = missing()
            logs = "\n".join(a.text()[-3000:] for a in agents)
            raise AssertionError(f"{len(left)} of {len(jobs)} jobs never finished, e.g. {left[:3]}; "
                                 f"runs of those: {[list(runs_by_job(jsonl).get(j, {})) for j in left[:3]]}\n{logs}")
        time.sleep(0.2)


def test_cluster_three_agents_run_every_job_exactly_once_and_survive_a_node_loss(cluster):
    out = queue_init(cluster.urls)
    assert "3 replicas" in out, out
    jsonl = new_dir("agent-events") / "events.jsonl"
    agents = [Agent(cluster.urls, jsonl, CELLOS_AGENT_MAX_CELLS="2") for _ in range(3)]
    try:
        with cluster.client(0) as c:
            # Phase 1: a few hundred small jobs of mixed outcomes.
            codes = {}
            for i in range(200):
                code = (0, 0, 1, 5)[i % 4]
                codes[submit(c, job_doc(["/bin/sh", "-c", f"exit {code}"]))] = code
            # The same job ids again: de-duplicated, never run twice.
            for j in list(codes)[:20]:
                r = c.request("cellos.cells.default", json.dumps(job_doc(["/bin/true"])).encode(),
                              headers={"Nats-Msg-Id": j}, timeout=10)
                assert json.loads(r["data"]).get("duplicate") is True
            wait_all_finished(jsonl, codes, 150, agents)
        runs = runs_by_job(jsonl)
        for j, code in codes.items():
            assert len(runs[j]) == 1, (j, list(runs[j]))
            (run,) = runs[j].values()
            done = [e for e in run if e["type"] == PREFIX + "command.v1.completed"]
            assert done and done[0]["data"]["exitCode"] == code
        wait_for(lambda: sum(len(a.job_lines()) for a in agents) == len(codes), 10, "one log line per job")
        per_agent = [len(a.job_lines()) for a in agents]
        assert sum(per_agent) == len(codes) and all(n > 0 for n in per_agent), per_agent

        # Phase 2: one NATS node stopped mid-batch; every job still completes.
        with cluster.client(1) as c:
            more = [submit(c, job_doc(["/bin/sh", "-c", "sleep 0.05"])) for _ in range(40)]
            wait_for(lambda: sum(j in runs_by_job(jsonl) for j in more) >= 10, 60, "the batch to be under way")
            cluster.stop(0)
            more += [submit(c, job_doc(["/bin/true"])) for _ in range(10)]
        wait_all_finished(jsonl, more, 120, agents)
        runs = runs_by_job(jsonl)
        for j in more:
            assert any(finished(r) and finished(r)["data"].get("outcome") == "succeeded" for r in runs[j].values())
        with cluster.client(2) as c:
            wait_for(lambda: c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0, 30, "an empty queue")
    finally:
        rcs = [a.stop(timeout=60) for a in agents]
    assert rcs == [0, 0, 0]
    assert not any(s in a.text() for a in agents for s in SANITIZER)


def event_time(e: dict) -> float:
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()


def test_a_late_ack_answer_holds_neither_the_next_job_nor_counts_less(server_and_queue):
    """A finished job's ack is confirmed by the server without the agent's loop
    waiting for it: with the server's answer to every +ACK 3 s late (a relay holds
    the acks; longer than the 2 s an answer is waited for), the next job starts at
    once, the ack is sent again, and the late answer still counts: each job runs
    once and none is delivered again. An agent that waited for the answer in place
    would start the next job only after the 2 s."""
    srv = server_and_queue
    relay = NatsRelay(srv.port, lambda subject, payload: 3.0
                      if subject.startswith("$JS.ACK.") and payload == b"+ACK" else None)
    jsonl = new_dir("agent-events") / "events.jsonl"
    a = Agent(relay.url, jsonl, CELLOS_AGENT_MAX_CELLS="1")
    try:
        with srv.client() as c:
            first = submit(c, job_doc(["/bin/true"]))
            second = submit(c, job_doc(["/bin/true"]))
            wait_for(lambda: len(runs_by_job(jsonl)) == 2 and
                     all(finished(r) for rs in runs_by_job(jsonl).values() for r in rs.values()), 30,
                     "both jobs to finish")
            wait_for(lambda: consumer_info(c)["num_ack_pending"] == 0, 15, "the acks to be confirmed")
            info = consumer_info(c)
            assert info["num_redelivered"] == 0 and info["num_pending"] == 0, info
        runs = runs_by_job(jsonl)
        assert len(runs[first]) == 1 and len(runs[second]) == 1, runs.keys()
        (r1,) = runs[first].values()
        (r2,) = runs[second].values()
        ended = event_time(finished(r1))
        spawned = next(event_time(e) for e in r2 if e["type"] == PREFIX + "observability.v1.process_spawned")
        assert 0 < spawned - ended < 1.5, spawned - ended
        held = [s for s in relay.held if s.startswith("$JS.ACK.")]
        assert len(held) >= 3, relay.held  # both acks, and the first one sent again
        assert "not confirmed" not in a.text(), a.text()
        lines = a.job_lines()
        assert len(lines) == 2 and all(", exit 0, " in l for l in lines), lines
    finally:
        rc = a.stop()
        relay.close()
    assert rc == 0


def test_kill9_agent_its_cells_die_and_its_jobs_run_elsewhere(server_and_queue):
    """AckWait is 30 s (SPEC §11, not configurable): this test waits it out once."""
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    tag = f"{MARK}-k9-{uuid.uuid4().hex[:6]}"
    victim = Agent(srv.url, jsonl, CELLOS_AGENT_MAX_CELLS="2")
    jobs = []
    with srv.client() as c:
        # Only the victim runs: both jobs are its.
        for _ in range(2):
            jobs.append(submit(c, job_doc(["/bin/sh", "-c", f"sleep 3; echo {tag}"])))
        wait_for(lambda: len(marked_processes(tag)) >= 2, 20, "the victim's cells")
        victim.proc.kill()
        victim.proc.wait()
        left, _ = wait_no_marked(tag, 10)
        assert not left, f"cells of the SIGKILLed agent survive: {left}"
        other = Agent(srv.url, jsonl, CELLOS_AGENT_MAX_CELLS="2")
        try:
            wait_all_finished_ok = lambda: all(  # noqa: E731
                any(finished(r) and finished(r)["data"].get("outcome") == "succeeded"
                    for r in runs_by_job(jsonl).get(j, {}).values()) for j in jobs)
            wait_for(wait_all_finished_ok, 60, "the jobs to run again elsewhere")
            runs = runs_by_job(jsonl)
            for j in jobs:
                assert len(runs[j]) == 2, runs[j].keys()  # the killed run, and the one that finished
                first, second = runs[j].values()
                assert finished(first)["data"]["reason"] == "supervisor_terminated"
            wait_for(lambda: c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0, 10, "an empty queue")
        finally:
            assert other.stop() == 0


def agent_children(agent: Agent, name: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            argv0 = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")[0].decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == agent.proc.pid and argv0.endswith(name):
            out.append(int(d))
    return out


def fd_targets(pid: int) -> dict[int, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def socket_peers() -> dict[int, int]:
    """Unix socket inode -> its peer's inode (ss -x)."""
    out = subprocess.run(["ss", "-xanH"], capture_output=True, text=True, check=True).stdout
    peers = {}
    for line in out.splitlines():
        f = line.split()
        # Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port
        if len(f) >= 8 and f[5].isdigit() and f[7].isdigit():
            peers[int(f[5])] = int(f[7])
    return peers


def socket_inode(target: str) -> int:
    return int(target[len("socket:["):-1])


def test_a_jobs_supervisor_has_its_document_on_stdin_its_own_group_and_only_its_relay_of_the_agents_descriptors(
        server_and_queue):
    """The agent starts supervisors without fork() (clone with CLONE_VM|CLONE_VFORK,
    docs/DESIGN.md): what the child is given must be what a forked child was, plus
    its end of the agent's relay (CELLOS_NATS_RELAY_FD) and nothing else."""
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    tag = f"{MARK}-spawn-{uuid.uuid4().hex[:6]}"
    a = Agent(srv.url, jsonl, CELLOS_AGENT_MAX_CELLS="1")
    try:
        with srv.client() as c:
            job = submit(c, job_doc(["/bin/sh", "-c", f"sleep 3; echo {tag}"]))
            wait_for(lambda: marked_processes(tag) and agent_children(a, "cellos-supervisor"), 20, "the cell")
            (sup,) = agent_children(a, "cellos-supervisor")
            fds = fd_targets(sup)
            agent_fds = fd_targets(a.proc.pid)
            assert fds[0].startswith("/memfd:cellos-job"), fds
            assert fds[1] == "/dev/null", fds
            assert os.getpgid(sup) == sup and os.getpgid(sup) != os.getpgid(a.proc.pid)
            # The agent's NATS connection (libnats opens it without O_CLOEXEC)
            # and its pipes stay the agent's.
            shared = {t for t in agent_fds.values() if t.startswith(("socket:", "pipe:"))} & set(fds.values())
            assert not shared, (shared, fds)
            env = open(f"/proc/{sup}/environ", "rb").read().split(b"\0")
            # Its relay: fd 3, the one socket of the supervisor's whose peer is the agent's.
            assert b"CELLOS_NATS_RELAY_FD=3" in env
            peers = socket_peers()
            agent_sockets = {socket_inode(t) for t in agent_fds.values() if t.startswith("socket:")}
            to_agent = [fd for fd, t in fds.items() if t.startswith("socket:") and
                        peers.get(socket_inode(t)) in agent_sockets]
            assert to_agent == [3], (to_agent, fds)
            run_env = [e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"CELLOS_RUN_ID=")]
            sigblk = int(open(f"/proc/{sup}/status").read().split("SigBlk:")[1].split()[0], 16)
            wait_for(lambda: all(finished(r) for r in runs_by_job(jsonl).get(job, {}).values())
                     and runs_by_job(jsonl).get(job), 30, "the job")
            (run, evs), = runs_by_job(jsonl)[job].items()
            assert run_env == [run], run_env
            assert finished(evs)["data"]["outcome"] == "succeeded", finished(evs)
            # The supervisor blocks SIGTERM/SIGINT itself; nothing else of the
            # agent's mask (SIGCHLD) is inherited.
            assert not sigblk & (1 << (signal.SIGCHLD - 1)), hex(sigblk)
            # The agent is intact after its children ran in its memory: the
            # next job runs too.
            job2 = submit(c, job_doc(["/bin/sh", "-c", "exit 3"]))
            wait_for(lambda: any(finished(r) for r in runs_by_job(jsonl).get(job2, {}).values()), 30, "job 2")
            (evs2,) = runs_by_job(jsonl)[job2].values()
            completed = [e for e in evs2 if e["type"] == PREFIX + "command.v1.completed"]
            assert completed and completed[0]["data"]["exitCode"] == 3, evs2
    finally:
        assert a.stop() == 0


# --------------------------------------------------------------------------- warm cells

NS = ("net", "mnt", "pid", "ipc", "uts", "cgroup", "user")


def warm_cells(agent: Agent) -> dict[int, dict]:
    """The agent's warm supervisors: pid -> {run, init, ns (name -> inode link), cgroup}."""
    out = {}
    for pid, cmd in marked_processes("--warm").items():
        try:
            if int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) != agent.proc.pid:
                continue
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
            run = [e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"CELLOS_RUN_ID=")][0]
            init = int(kids[0]) if kids else None
            ns = {n: os.readlink(f"/proc/{init}/ns/{n}") for n in NS} if init else {}
            cg = open(f"/proc/{init}/cgroup").read() if init else ""
        except (OSError, ValueError, IndexError):
            continue
        out[pid] = {"run": run, "init": init, "ns": ns, "cgroup": cg}
    return out


def warm_supervisors(agent: Agent) -> dict[int, str]:
    """pid -> CELLOS_RUN_ID of the agent's warm supervisors (cellos-supervisor --warm)."""
    return {pid: c["run"] for pid, c in warm_cells(agent).items()}


def metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [float(l.split()[1]) for l in body.splitlines() if l.startswith(name + " ")][0]


def test_warm_cells_are_ready_before_the_job_serve_one_job_each_and_go_with_the_drain(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("agent-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")

    def warm_ready() -> float:
        return metric(mport, "cellos_agent_warm_cells_ready")

    try:
        wait_for(lambda: len(warm_supervisors(a)) == 1 and warm_ready() == 1, 20, "a warm cell")
        ((pid1, run1),) = warm_supervisors(a).items()
        with srv.client() as c:
            j1 = submit(c, job_doc(["/bin/true"]))
            wait_for(lambda: j1 in runs_by_job(jsonl) and all(finished(r) for r in runs_by_job(jsonl)[j1].values()),
                     30, "the first job")
            # The job ran in the supervisor that was waiting before it was submitted.
            assert list(runs_by_job(jsonl)[j1]) == [run1]
            wait_for(lambda: warm_supervisors(a) and pid1 not in warm_supervisors(a) and warm_ready() == 1, 20,
                     "a new warm cell")
            ((pid2, run2),) = warm_supervisors(a).items()
            assert run2 != run1
            j2 = submit(c, job_doc(["/bin/sh", "-c", "exit 4"]))
            wait_for(lambda: j2 in runs_by_job(jsonl) and all(finished(r) for r in runs_by_job(jsonl)[j2].values()),
                     30, "the second job")
            assert list(runs_by_job(jsonl)[j2]) == [run2]
        wait_for(lambda: len(a.job_lines()) == 2, 10, "the second job's log line")
        assert sum("(warm cell)" in l for l in a.job_lines()) == 2
        wait_for(lambda: len(warm_supervisors(a)) == 1, 20, "the next warm cell")
    finally:
        assert a.stop() == 0
    # The drain destroyed the warm cell that never got a job; it reported no run.
    assert not marked_processes("--warm") or not any(
        "cellos-supervisor --warm" in cmd for cmd in marked_processes("--warm").values())
    assert len(runs_by_job(jsonl)) == 2


def test_agent_waits_for_a_server_and_survives_its_restart(nats_server):
    """Started before its server answers, then the server killed and started again
    on the same store: the agent reconnects, remakes nothing by hand, and runs the
    job queued before and the one queued after the restart."""
    srv = nats_server
    srv.stop()
    jsonl = new_dir("agent-events") / "events.jsonl"
    log = new_dir("agent-log") / "agent.log"
    env = {"PATH": SUPERVISOR_PATH, "CELLOS_NATS_URL": srv.url, "CELL_OS_JSONL_EVENTS": str(jsonl),
           "CELLOS_AGENT_MAX_CELLS": "1"}
    with open(log, "wb") as f:
        p = subprocess.Popen([str(AGENT)], env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    try:
        time.sleep(1.5)
        assert p.poll() is None, log.read_text()
        srv.start()
        queue_init(srv.url)
        with srv.client() as c:
            j1 = submit(c, job_doc(["/bin/true"]))
        wait_all_finished(jsonl, [j1], 30)
        srv.stop()
        time.sleep(1)
        srv.start()
        with srv.client() as c:
            j2 = submit(c, job_doc(["/bin/sh", "-c", "exit 2"]))
        wait_all_finished(jsonl, [j2], 40)
        runs = runs_by_job(jsonl)
        assert len(runs[j1]) == 1 and len(runs[j2]) == 1
        with srv.client() as c:
            wait_for(lambda: c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0, 20, "an empty queue")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    text = log.read_text()
    assert rc == 0 and not any(s in text for s in SANITIZER), text
