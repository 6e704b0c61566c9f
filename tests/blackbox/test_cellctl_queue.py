"""cellctl's distributed commands (SPEC §11): queue init, submit, queue, watch,
against a real nats-server (natshelper.py: a free loopback port, a temporary
store, killed on every path).

cellos-agent does not exist yet: where a job must run (submit --wait), the test
plays the agent itself with `stand_in_agent` below (pull one job, set
correlation.externalJobId to its job id, run cellos-supervisor with the events
going to JetStream, ack). It is a stand-in for the agent, not a fake of NATS or
of the supervisor: both are the real programs."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import SUPERVISOR, make_spec, new_dir, supervisor_env, CELL_IDS
from natshelper import NatsCluster, NatsServer, closed_port, nats_server  # noqa: F401
from natsrelay import NatsRelay
from signed_events import CELLCTL
from signed_events import cellctl as _cellctl

SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer")


def cellctl(*args, **kw):
    rc, out, err = _cellctl(*args, **kw)
    assert not any(s in err for s in SANITIZER), err
    return rc, out, err

STREAMS = {"CELLOS_CELLS", "CELLOS_EVENTS"}


def env_of(server) -> dict:
    return {"CELLOS_NATS_URL": server.url}


def write_doc(doc) -> str:
    p = new_dir("doc") / "cell.json"
    p.write_text(json.dumps(doc))
    if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
        CELL_IDS.add(doc["spec"].get("id"))
    return str(p)


def init(server):
    rc, out, err = cellctl("queue", "init", env=env_of(server))
    assert rc == 0, err
    return out


def queue_table(server) -> dict:
    rc, out, err = cellctl("queue", env=env_of(server))
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["POOL", "PENDING", "IN-FLIGHT", "CONSUMERS"]
    return {l.split()[0]: tuple(int(x) for x in l.split()[1:]) for l in lines[1:]}


def test_queue_init_on_one_server_makes_both_streams_with_one_replica(nats_server):
    out = init(nats_server)
    assert out.splitlines() == ["CELLOS_CELLS: created (subjects cellos.cells.*, 1 replica)",
                                "CELLOS_EVENTS: created (subjects cellos.events.>, 1 replica)"]
    with nats_server.client() as c:
        cells = c.stream_info("CELLOS_CELLS")["config"]
        events = c.stream_info("CELLOS_EVENTS")["config"]
    assert cells["retention"] == "workqueue" and cells["storage"] == "file" and cells["num_replicas"] == 1
    assert cells["duplicate_window"] == 3600 * 10**9
    assert events["retention"] == "limits" and events["subjects"] == ["cellos.events.>"]
    # Again: nothing to do, and it says so.
    assert init(nats_server).splitlines() == ["CELLOS_CELLS: exists (subjects cellos.cells.*, 1 replica)",
                                              "CELLOS_EVENTS: exists (subjects cellos.events.>, 1 replica)"]
    rc, _, err = cellctl("queue", "init", "--replicas", "3", env={"CELLOS_NATS_URL": nats_server.url})
    assert rc == 0  # the streams exist: left as they are


def test_queue_init_on_a_three_node_cluster_makes_r3_streams():
    cluster = NatsCluster(3)
    try:
        cluster.start()
        rc, out, err = cellctl("queue", "init", "--server", cluster.servers[1].url)
        assert rc == 0, err
        assert out.splitlines() == ["CELLOS_CELLS: created (subjects cellos.cells.*, 3 replicas)",
                                    "CELLOS_EVENTS: created (subjects cellos.events.>, 3 replicas)"]
        with cluster.servers[2].client() as c:
            info = c.stream_info("CELLOS_CELLS")
        assert info["config"]["num_replicas"] == 3 and len(info["cluster"].get("replicas", [])) == 2
        # A job submitted through one seed list is queued once, replicated.
        doc = write_doc(make_spec())
        rc, out, err = cellctl("submit", doc, env={"CELLOS_NATS_URL": cluster.url})
        assert rc == 0, err
        assert queue_table_at(cluster.servers[0].url) == {"default": (1, 0, 0)}
    finally:
        cluster.stop()


def queue_table_at(url: str) -> dict:
    rc, out, err = cellctl("queue", "--server", url)
    assert rc == 0, err
    return {l.split()[0]: tuple(int(x) for x in l.split()[1:]) for l in out.splitlines()[1:]}


def drop_first_create(upstream_port: int) -> NatsRelay:
    """A relay that loses the client's first STREAM.CREATE request (a PUB to
    $JS.API.STREAM.CREATE.*, payload and all) and passes everything else: the
    request a just-formed cluster left unanswered in a CI run."""
    def decide(subject, payload):
        if subject.startswith("$JS.API.STREAM.CREATE.") and not relay.dropped:
            return "drop"
        return None
    relay = NatsRelay(upstream_port, decide)
    return relay


def test_queue_init_asks_again_when_a_request_gets_no_answer(nats_server):
    """A request of queue init that gets no answer at all (not an error) is asked
    again: the streams are made, and cellctl says nothing of the lost one."""
    relay = drop_first_create(nats_server.port)
    try:
        t0 = time.monotonic()
        rc, out, err = cellctl("queue", "init", env={"CELLOS_NATS_URL": f"nats://127.0.0.1:{relay.port}"})
        took = time.monotonic() - t0
    finally:
        relay.close()
    assert rc == 0, err
    assert relay.dropped == ["$JS.API.STREAM.CREATE.CELLOS_CELLS"], relay.seen
    # The lost request was asked again at once (then, on this single server, with
    # fewer replicas until one fits).
    lost = relay.seen.index("$JS.API.STREAM.CREATE.CELLOS_CELLS")
    assert relay.seen[lost + 1] == "$JS.API.STREAM.CREATE.CELLOS_CELLS", relay.seen
    assert "CELLOS_CELLS: created" in out and "CELLOS_EVENTS: created" in out, out
    assert took >= 5, took  # one API timeout waited out
    assert queue_table(nats_server) == {}, "the streams exist and hold nothing"


def test_queue_init_asking_for_more_replicas_than_servers_fails(nats_server):
    rc, out, err = cellctl("queue", "init", "--replicas", "3", env=env_of(nats_server))
    assert rc == 2
    assert "CELLOS_CELLS" in err and "replicas" in err, err


def test_submit_is_acked_and_a_resubmitted_job_id_is_deduplicated(nats_server):
    init(nats_server)
    doc = make_spec(spec_extra={"placement": {"poolId": "gpu"}})
    path = write_doc(doc)
    job = str(uuid.uuid4())
    rc, out, err = cellctl("submit", path, "--job-id", job, env=env_of(nats_server))
    assert rc == 0, err
    assert out == job + "\n" and err == ""
    rc, out, err = cellctl("submit", path, "--job-id", job.upper(), env=env_of(nats_server))
    assert rc == 0 and out == job + "\n"
    assert "de-duplicated" in err
    with nats_server.client() as c:
        msgs = c.stream_messages("CELLOS_CELLS")
    assert len(msgs) == 1
    assert msgs[0]["subject"] == "cellos.cells.gpu"
    assert msgs[0]["headers"]["Nats-Msg-Id"] == job
    assert json.loads(msgs[0]["data"]) == doc
    # Without --job-id a fresh UUID each time: two more jobs (one read from stdin).
    rc, out, err = cellctl("submit", path, env=env_of(nats_server))
    assert rc == 0 and uuid.UUID(out.strip()).version == 4
    rc, out2, err = cellctl("submit", "-", env=env_of(nats_server), input=json.dumps(doc).encode())
    assert rc == 0 and uuid.UUID(out2.strip()).version == 4 and out2 != out
    assert queue_table(nats_server) == {"gpu": (3, 0, 0)}


def test_queue_counts_pending_and_in_flight_per_pool(nats_server):
    init(nats_server)
    for pool, n in (("default", 3), ("gpu", 1)):
        for _ in range(n):
            doc = make_spec(spec_extra={"placement": {"poolId": pool}} if pool != "default" else None)
            rc, _, err = cellctl("submit", write_doc(doc), env=env_of(nats_server))
            assert rc == 0, err
    assert queue_table(nats_server) == {"default": (3, 0, 0), "gpu": (1, 0, 0)}
    # An agent-like consumer takes one job of the default pool and has not acked it.
    with nats_server.client() as c:
        c.pull_consumer("CELLOS_CELLS", "pool-default", "cellos.cells.default")
        job = c.fetch("CELLOS_CELLS", "pool-default")
        assert job is not None
        assert queue_table(nats_server) == {"default": (2, 1, 1), "gpu": (1, 0, 0)}
        c.ack(job)
        deadline = time.monotonic() + 5
        while queue_table(nats_server)["default"] != (2, 0, 1) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert queue_table(nats_server) == {"default": (2, 0, 1), "gpu": (1, 0, 0)}


def test_submit_refuses_bad_input_and_queues_nothing(nats_server):
    init(nats_server)
    env = env_of(nats_server)
    bad = make_spec()
    del bad["spec"]["lifetime"]
    path = write_doc(bad)
    rc, out, err = cellctl("submit", path, env=env)
    assert rc == 1
    assert out.startswith(f"{path}: spec.lifetime") and "nothing" not in out
    good = write_doc(make_spec(spec_extra={"placement": {"poolId": "gpu"}}))
    rc, _, err = cellctl("submit", good, "--job-id", "not-a-uuid", env=env)
    assert rc == 2 and "--job-id" in err
    rc, _, err = cellctl("submit", good, "--pool", "other", env=env)
    assert rc == 2 and "differs" in err
    rc, _, err = cellctl("submit", write_doc(make_spec()), "--pool", "a.b", env=env)
    assert rc == 2 and "--pool" in err
    with nats_server.client() as c:
        assert c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0
    # --no-validate: the agent's business then.
    rc, _, err = cellctl("submit", path, "--no-validate", env=env)
    assert rc == 0, err


def test_distributed_commands_without_a_server_or_streams_are_2(nats_server):
    doc = write_doc(make_spec())
    rc, _, err = cellctl("submit", doc)
    assert rc == 2 and "CELLOS_NATS_URL" in err
    rc, _, err = cellctl("queue", "--server", f"nats://127.0.0.1:{closed_port()}")
    assert rc == 2 and "cannot connect to NATS" in err
    rc, _, err = cellctl("submit", doc, env=env_of(nats_server))
    assert rc == 2 and "cellctl queue init" in err
    rc, _, err = cellctl("queue", env=env_of(nats_server))
    assert rc == 2 and "cellctl queue init" in err
    rc, _, err = cellctl("queue", "start", env=env_of(nats_server))
    assert rc == 2 and "unknown operand" in err


@pytest.mark.parametrize("cmd", ["submit", "watch", "queue"])
def test_help(cmd):
    rc, out, err = cellctl(cmd, "--help")
    assert rc == 0 and out.startswith(f"usage: cellctl {cmd}") and "Exit status" in out


class Watch:
    """`cellctl watch` in the background, stdout read line by line."""

    def __init__(self, server, *args):
        full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CELLOS_NATS_URL": server.url}
        self.proc = subprocess.Popen([str(CELLCTL), "watch", *args], env=full, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.pending = b""
        line = self.proc.stderr.readline().decode()
        assert line.startswith("cellctl watch: following CELLOS_EVENTS"), line + self.proc.stderr.read().decode()

    def lines_until(self, pred, timeout=20) -> list[str]:
        out, deadline = [], time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                out.append(line.decode())
                if pred(out[-1]):
                    return out
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                chunk = os.read(fd, 65536)
                assert chunk, f"cellctl watch ended; lines: {out}"
                self.pending += chunk
        raise AssertionError(f"not seen within {timeout}s; lines: {out}")

    def stop(self) -> int:
        if self.proc.stderr.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            err = self.proc.stderr.read().decode()
            self.proc.stderr.close()
        assert not any(s in err for s in SANITIZER), err
        self.err = err
        return self.proc.returncode


def run_supervisor(server, doc, extra_env=None) -> subprocess.CompletedProcess:
    d = new_dir("run")
    p = d / "spec.json"
    p.write_text(json.dumps(doc))
    CELL_IDS.add(doc["spec"]["id"])
    env = supervisor_env({"CELLOS_NATS_URL": server.url, **(extra_env or {})}, None)
    return subprocess.run([str(SUPERVISOR), str(p)], env=env, capture_output=True, timeout=60, cwd=d)


def test_watch_prints_the_events_a_supervisor_publishes(nats_server):
    init(nats_server)
    w = Watch(nats_server)
    try:
        doc = make_spec(["/bin/sh", "-c", "exit 5"])
        cell = doc["spec"]["id"]
        r = run_supervisor(nats_server, doc)
        assert r.returncode == 5, r.stderr
        lines = w.lines_until(lambda l: l.startswith("== run"))
    finally:
        rc = w.stop()
    assert rc == 0
    kinds = [l.split()[3] for l in lines[:-1]]
    assert kinds == ["network_policy", "lifecycle.started", "process_spawned", "command.completed",
                     "network_enforcement", "compliance.summary", "lifecycle.destroyed"]
    assert all(l.split()[1] == cell for l in lines[:-1])
    assert "exit=5" in lines[3]
    assert lines[-1].startswith("== run ") and f"cell {cell}:" in lines[-1] and "exit=5" in lines[-1]


def test_watch_cell_filter_shows_only_that_cell(nats_server):
    init(nats_server)
    other, mine = make_spec(), make_spec(["/bin/sh", "-c", "exit 2"])
    w = Watch(nats_server, "--cell", mine["spec"]["id"])
    try:
        assert run_supervisor(nats_server, other).returncode == 0
        assert run_supervisor(nats_server, mine).returncode == 2
        lines = w.lines_until(lambda l: l.startswith("== run"))
    finally:
        assert w.stop() == 0
    assert all(mine["spec"]["id"] in l for l in lines)
    assert other["spec"]["id"] not in "\n".join(lines)


def stand_in_agent(server, stop: threading.Event, ran: list):
    """Plays cellos-agent for one job: take it from the default pool, mark the
    document with its job id (correlation.externalJobId, as the agent does), run
    the real supervisor with its events going to JetStream, ack the job."""
    with server.client() as c:
        c.pull_consumer("CELLOS_CELLS", "stand-in", "cellos.cells.default")
        while not stop.is_set():
            m = c.fetch("CELLOS_CELLS", "stand-in", timeout=1)
            if m is None:
                continue
            doc = json.loads(m["data"])
            doc["spec"].setdefault("correlation", {})["externalJobId"] = m["headers"]["Nats-Msg-Id"]
            r = run_supervisor(server, doc, {"CELLOS_RUN_ID": str(uuid.uuid4())})
            ran.append(r)
            c.ack(m)
            return


@pytest.mark.parametrize("script,status", [("exit 7", 7), ("exit 0", 0), ("kill -9 $$", 137)])
def test_submit_wait_follows_the_job_and_exits_with_the_cells_status(nats_server, script, status):
    init(nats_server)
    stop, ran = threading.Event(), []
    agent = threading.Thread(target=stand_in_agent, args=(nats_server, stop, ran))
    agent.start()
    try:
        # Another cell's run at the same time must not be taken for the job's.
        noise = make_spec(["/bin/sh", "-c", "exit 3"])
        job = str(uuid.uuid4())
        doc = write_doc(make_spec(["/bin/sh", "-c", script]))
        p = subprocess.Popen([str(CELLCTL), "submit", doc, "--job-id", job, "--wait"],
                             env={"PATH": "/usr/bin:/bin", "CELLOS_NATS_URL": nats_server.url},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run_supervisor(nats_server, noise).returncode == 3
        try:
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        agent.join(timeout=30)
    finally:
        stop.set()
        agent.join(timeout=30)
    assert len(ran) == 1 and ran[0].returncode == status
    assert not any(s in err.decode() for s in SANITIZER), err
    assert p.returncode == status, err
    lines = out.decode().splitlines()
    assert lines[0] == job
    assert noise["spec"]["id"] not in out.decode()
    assert any(" lifecycle.destroyed " in l for l in lines)
    assert lines[-1].startswith("== run")
    with nats_server.client() as c:
        # The job was acked: the work queue no longer holds it.
        assert c.stream_info("CELLOS_CELLS")["state"]["messages"] == 0


def test_watch_goes_on_after_the_server_restarts():
    """The ephemeral consumer dies with the server; watch notices the missing
    heartbeats, makes it again after the last event it showed, and goes on."""
    server = NatsServer().start()
    w = None
    try:
        init(server)
        w = Watch(server)
        first = make_spec(["/bin/sh", "-c", "exit 1"])
        assert run_supervisor(server, first).returncode == 1
        w.lines_until(lambda l: l.startswith("== run"))
        server.stop()
        server.start()
        second = make_spec(["/bin/sh", "-c", "exit 6"])
        assert run_supervisor(server, second).returncode == 6
        lines = w.lines_until(lambda l: l.startswith("== run"), timeout=30)
        assert all(second["spec"]["id"] in l for l in lines), lines
        assert "exit=6" in lines[-1]
        # Nothing of the first run was shown again.
        assert first["spec"]["id"] not in "\n".join(lines)
        assert w.stop() == 0
        assert "resumed after the last event shown" in w.err
    finally:
        try:
            if w:
                w.stop()
        finally:
            server.stop()
