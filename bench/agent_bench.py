"""Helper of bench/agent.sh (run it through that script): cells per second through
the JetStream queue with N cellos-agent processes, and job latency (submit ->
process_spawned) with an idle agent.

    agent_bench.py throughput URL BIN JOBS AGENTS WARM MAXCELLS WORKDIR
    agent_bench.py loop URL BIN JOBS WORKDIR
    agent_bench.py latency URL BIN JOBS WARM WORKDIR
    agent_bench.py sink URL BIN JOBS ROUNDS WORKDIR
    agent_bench.py burst URL BIN JOBS ROUNDS WORKDIR

Burst: JOBS jobs published at once to one agent (CELLOS_AGENT_MAX_CELLS=4) that
has JOBS warm cells ready, against the same burst to the same agent without warm
cells, ROUNDS interleaved rounds; per configuration the median over rounds of
cells/s (publish -> every run's lifecycle.v1.destroyed) and of the CPU of the
whole machine per job while the burst ran (/proc/stat: the kernel's deferred
work, nats-server and everything of ours; the warm cells were built before).

Sink: what the JetStream sink adds to a no-op cell run by the real agent, one
cell at a time (CELLOS_AGENT_MAX_CELLS=1, every job published at once): through
the agent's relay (the default), with CELLOS_AGENT_RELAY=0 (each supervisor
connects itself) and with CELL_OS_USE_NOOP_SINK=1 (no JetStream sink at all),
in ROUNDS interleaved rounds of JOBS/ROUNDS jobs each; per configuration the
median over rounds of wall ms per cell, CPU ms per cell (agent, supervisors,
cells) and nats-server CPU ms per cell.

Throughput also reports the CPU time per cell of everything we run (agents,
supervisors, cells: the children's rusage) and of nats-server (its /proc stat;
NATS_PID in the environment), so that a loaded host's figures can be read
against the CPU a cell costs; the kernel's own deferred work (a network
namespace is freed by a kworker) is in neither.
Prints one line of JSON. Jobs are no-op isolated cells (/bin/true, the default
namespaces) published with Nats-Msg-Id; the supervisors append their events to
one JSONL file, which is how finished runs are counted. A minimal NATS client of
its own (the text protocol: HPUB, SUB, MSG), as Debian has none for Python."""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime


class Nats:
    def __init__(self, url: str):
        host, port = url.split("//", 1)[1].split(",")[0].rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)))
        # Without it the burst's publishes waited ~40 ms behind the SUB sent
        # just before them (Nagle's algorithm against the server's delayed
        # ACK): a tenth of a 60-job burst, counted against the agent.
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.line()  # INFO
        self.s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nPING\r\n')
        while self.line() != b"PONG":
            pass
        self.inbox = "_INBOX." + uuid.uuid4().hex
        self.s.sendall(f"SUB {self.inbox}.* 1\r\n".encode())

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def read(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self.buf += self.s.recv(65536)
        d, self.buf = self.buf[:n], self.buf[n + 2:]
        return d

    def publish_many(self, subject: str, bodies: list[tuple[str, bytes]]):
        """Publish every (msg id, body) with a reply subject; wait for all acks."""
        out = []
        for i, (mid, body) in enumerate(bodies):
            h = f"NATS/1.0\r\nNats-Msg-Id: {mid}\r\n\r\n".encode()
            out.append(f"HPUB {subject} {self.inbox}.{i} {len(h)} {len(h) + len(body)}\r\n".encode() + h + body
                       + b"\r\n")
        self.s.sendall(b"".join(out))
        acks = 0
        while acks < len(bodies):
            l = self.line()
            if l == b"PING":
                self.s.sendall(b"PONG\r\n")
            elif l.startswith(b"MSG") or l.startswith(b"HMSG"):
                parts = l.split()
                self.read(int(parts[-1]))
                acks += 1


def doc() -> bytes:
    return json.dumps({"apiVersion": "cellos.io/v1", "kind": "ExecutionCell",
                       "spec": {"id": "bench-" + uuid.uuid4().hex[:8], "authority": {"secretRefs": []},
                                "lifetime": {"ttlSeconds": 60}, "run": {"argv": ["/bin/true"]}}}).encode()


class Destroyed:
    """Counts the lifecycle.v1.destroyed events of a JSONL file as it grows,
    reading only what was appended since the last call: polled every few ms
    while cells run, a reread of the whole file took the cores' time (a ms a
    job in a burst) from the cells being measured."""

    def __init__(self, path: str):
        self.path, self.pos, self.n, self.tail = path, 0, 0, b""

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                new = f.read()
        except FileNotFoundError:
            return 0
        self.pos += len(new)
        # An event split at the end of a read is counted once it is whole.
        text = self.tail + new
        cut = text.rfind(b"\n") + 1
        self.n += text[:cut].count(b"lifecycle.v1.destroyed")
        self.tail = text[cut:]
        return self.n


def start_agents(url, bin_dir, n, warm, max_cells, jsonl, work, metrics=None, extra=None):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CELLOS_NATS_URL": url, "CELL_OS_JSONL_EVENTS": jsonl,
           "CELL_OS_JSONL_FSYNC": "none", "CELLOS_AGENT_MAX_CELLS": str(max_cells), "CELLOS_AGENT_WARM": str(warm),
           "CELLOS_LOG": "warn"}
    if metrics:
        env["CELLOS_AGENT_METRICS_ADDR"] = metrics
    env.update(extra or {})
    procs = []
    for i in range(n):
        log = open(os.path.join(work, f"agent{i}.log"), "ab")
        procs.append(subprocess.Popen([os.path.join(bin_dir, "cellos-agent")], env=env, stdout=log, stderr=log))
    return procs


def stop_agents(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=120)


def wait_ready(warm: int, n: int):
    # Consumers made, warm cells built: long enough on this host for both.
    time.sleep(2.0 + 0.3 * warm * n)


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def nats_cpu_s() -> float:
    pid = os.environ.get("NATS_PID")
    if not pid:
        return 0.0
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def throughput(url, bin_dir, jobs, n, warm, max_cells, work, extra=None, tag=""):
    jsonl = os.path.join(work, f"tp-{n}-{warm}{tag}.jsonl")
    cpu0 = children_cpu_s()
    procs = start_agents(url, bin_dir, n, warm, max_cells, jsonl, work, extra=extra)
    try:
        wait_ready(warm, n)
        c = Nats(url)
        bodies = [(str(uuid.uuid4()), doc()) for _ in range(jobs)]
        nats0 = nats_cpu_s()
        t0 = time.monotonic()
        destroyed = Destroyed(jsonl)
        c.publish_many("cellos.cells.default", bodies)
        while destroyed() < jobs:
            time.sleep(0.02)
        took = time.monotonic() - t0
        nats1 = nats_cpu_s()
    finally:
        stop_agents(procs)
    # The agents' and supervisors' CPU includes building the warm cells that
    # were still unused at the end (at most WARM per agent).
    cpu = children_cpu_s() - cpu0
    return {"agents": n, "warm": warm, "jobs": jobs, "seconds": round(took, 3), "cells_per_s": round(jobs / took, 1),
            "cpu_ms_per_cell": round(cpu * 1000 / jobs, 2), "nats_cpu_ms_per_cell": round((nats1 - nats0) * 1000 / jobs, 2)}


def busy_ms() -> float:
    """CPU time of the whole machine so far (every CPU's non-idle time), ms."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) * 1000 / os.sysconf("SC_CLK_TCK")


def burst_once(url, bin_dir, jobs, warm, work, tag):
    jsonl = os.path.join(work, f"burst-{tag}.jsonl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    procs = start_agents(url, bin_dir, 1, warm, 4, jsonl, work, addr)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if metric(addr, "cellos_agent_warm_cells_ready") >= warm:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the warm cells did not get ready")
            time.sleep(0.05)
        time.sleep(1.0)  # the kernel's cleanup of earlier cells, off the clock
        c = Nats(url)
        bodies = [(str(uuid.uuid4()), doc()) for _ in range(jobs)]
        destroyed = Destroyed(jsonl)
        b0, t0 = busy_ms(), time.monotonic()
        c.publish_many("cellos.cells.default", bodies)
        while destroyed() < jobs:
            time.sleep(0.005)
        took, cpu = time.monotonic() - t0, busy_ms() - b0
    finally:
        stop_agents(procs)
    return jobs / took, cpu / jobs, middle_rate(jsonl)


def middle_rate(jsonl: str) -> float:
    """Cells/s over the middle 80% of a burst's ends (its cells' destroyed
    events): the rate once the burst is under way, without the time the
    publisher and the first pull take, nor the last cells' tail."""
    ends = sorted(ts(json.loads(l)["time"]) for l in open(jsonl) if "lifecycle.v1.destroyed" in l)
    n = len(ends)
    a, b = n // 10, n * 9 // 10
    return (b - a) / (ends[b] - ends[a]) if n >= 10 and ends[b] > ends[a] else float("nan")


def burst(url, bin_dir, jobs, rounds, work):
    out = {"warm": [], "cold": []}
    for r in range(rounds):
        order = ("warm", "cold") if r % 2 == 0 else ("cold", "warm")
        for k in order:
            out[k].append(burst_once(url, bin_dir, jobs, jobs if k == "warm" else 0, work, f"{k}{r}"))
    med = statistics.median
    return {"jobs": jobs, "rounds": rounds, "load": open("/proc/loadavg").read().split()[:3],
            **{k: {"cells_per_s": round(med(x[0] for x in v), 1), "cpu_ms_per_job": round(med(x[1] for x in v), 2),
                   "middle_cells_per_s": round(med(x[2] for x in v), 1),
                   "rounds_cells_per_s": [round(x[0], 1) for x in v]} for k, v in out.items()}}


def loop(url, bin_dir, jobs, work):
    """The same cells, one cellos-supervisor after another (events to JetStream and JSONL)."""
    path = os.path.join(work, "cell.json")
    with open(path, "wb") as f:
        f.write(doc())
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CELLOS_NATS_URL": url,
           "CELL_OS_JSONL_EVENTS": os.path.join(work, "loop.jsonl"), "CELL_OS_JSONL_FSYNC": "none", "CELLOS_LOG": "warn"}
    cpu0, nats0 = children_cpu_s(), nats_cpu_s()
    t0 = time.monotonic()
    for _ in range(jobs):
        subprocess.run([os.path.join(bin_dir, "cellos-supervisor"), path], env=env, check=False)
    took = time.monotonic() - t0
    cpu, nats = children_cpu_s() - cpu0, nats_cpu_s() - nats0
    return {"loop": True, "jobs": jobs, "seconds": round(took, 3), "cells_per_s": round(jobs / took, 1),
            "cpu_ms_per_cell": round(cpu * 1000 / jobs, 2), "nats_cpu_ms_per_cell": round(nats * 1000 / jobs, 2)}


SINK_CONFIGS = {"relay": {}, "own connection": {"CELLOS_AGENT_RELAY": "0"},
                "no-op sink": {"CELL_OS_USE_NOOP_SINK": "1"}}


def sink(url, bin_dir, jobs, rounds, work):
    per = max(1, jobs // rounds)
    got = {k: [] for k in SINK_CONFIGS}
    for r in range(rounds):
        # A different order each round, so no configuration always runs first.
        names = list(SINK_CONFIGS)
        names = names[r % len(names):] + names[:r % len(names)]
        for name in names:
            res = throughput(url, bin_dir, per, 1, 0, 1, work, SINK_CONFIGS[name], f"-{r}-{name.replace(' ', '')}")
            got[name].append(res)
    out = {"sink": True, "jobs_per_round": per, "rounds": rounds,
           "load": open("/proc/loadavg").read().split()[:3]}
    wall = {name: [r["seconds"] * 1000 / r["jobs"] for r in rs] for name, rs in got.items()}
    for name, rs in got.items():
        out[name] = {"ms_per_cell": round(statistics.median(wall[name]), 2),
                     "cpu_ms_per_cell": round(statistics.median(r["cpu_ms_per_cell"] for r in rs), 2),
                     "nats_cpu_ms_per_cell": round(statistics.median(r["nats_cpu_ms_per_cell"] for r in rs), 2),
                     # Against the no-op sink of the same round (minutes apart at
                     # most): the host's drift between rounds cancels out.
                     "added_ms_paired": round(statistics.median(
                         a - b for a, b in zip(wall[name], wall["no-op sink"])), 2)}
    return out


def ts(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def metric(addr: str, name: str) -> float:
    import urllib.request
    body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    return [float(l.split()[1]) for l in body.splitlines() if l.startswith(name + " ")][0]


def latency(url, bin_dir, jobs, warm, work):
    jsonl = os.path.join(work, f"lat-{warm}.jsonl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    procs = start_agents(url, bin_dir, 1, warm, 2, jsonl, work, addr)
    lat = []
    destroyed = Destroyed(jsonl)
    try:
        wait_ready(warm, 1)
        c = Nats(url)
        for i in range(jobs):
            # An idle agent: nothing running, and with warm cells one ready.
            while metric(addr, "cellos_agent_cells_running") or (
                    warm and metric(addr, "cellos_agent_warm_cells_ready") < 1):
                time.sleep(0.01)
            before = destroyed()
            t = time.time()
            c.publish_many("cellos.cells.default", [(str(uuid.uuid4()), doc())])
            while destroyed() == before:
                time.sleep(0.005)
            with open(jsonl, "rb") as f:
                spawned = [json.loads(l) for l in f if b"process_spawned" in l]
            lat.append((ts(spawned[-1]["time"]) - t) * 1000)
    finally:
        stop_agents(procs)
    lat.sort()
    return {"warm": warm, "jobs": jobs, "p50_ms": round(statistics.median(lat), 2),
            "p90_ms": round(lat[int(len(lat) * 0.9) - 1], 2)}


def main():
    mode = sys.argv[1]
    if mode == "throughput":
        url, bin_dir, jobs, n, warm, mc, work = sys.argv[2:9]
        print(json.dumps(throughput(url, bin_dir, int(jobs), int(n), int(warm), int(mc), work)))
    elif mode == "loop":
        url, bin_dir, jobs, work = sys.argv[2:6]
        print(json.dumps(loop(url, bin_dir, int(jobs), work)))
    elif mode == "sink":
        url, bin_dir, jobs, rounds, work = sys.argv[2:7]
        print(json.dumps(sink(url, bin_dir, int(jobs), int(rounds), work)))
    elif mode == "burst":
        url, bin_dir, jobs, rounds, work = sys.argv[2:7]
        print(json.dumps(burst(url, bin_dir, int(jobs), int(rounds), work)))
    elif mode == "latency":
        url, bin_dir, jobs, warm, work = sys.argv[2:7]
        print(json.dumps(latency(url, bin_dir, int(jobs), int(warm), work)))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
