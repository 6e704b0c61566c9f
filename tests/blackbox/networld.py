"""A network world for gateway tests, built from network namespaces of the test's own.

    "host"  netns: plays the machine the supervisor runs on (the supervisor is started
            inside it with `ip netns exec`); 192.0.2.1/24 towards the world, default
            route through it, IPv4 forwarding on (a per-netns sysctl: the real host's is
            never touched).
    "world" netns: plays the internet: 192.0.2.2/24, and the servers' addresses
            203.0.113.0/24 on its loopback: a DNS server (dnsworld.py, which logs every
            question it gets) and TCP/TLS/HTTP servers (l7world.py) the test starts.

No packet leaves the machine; everything is removed on close(), whatever happened.
Names carry the test process's pid and a counter, so parallel runs never collide.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"
HOST_ADDR = "192.0.2.1"
WORLD_ADDR = "192.0.2.2"
DNS_ADDR = "203.0.113.53"
_seq = itertools.count(1)


def sh(*argv, check=True, **kw):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True, **kw)


class World:
    def __init__(self, server_addrs=("203.0.113.10", "203.0.113.11", "203.0.113.12")):
        tag = f"{os.getpid() % 100000}x{next(_seq)}"
        self.host = f"cgwh{tag}"
        self.world = f"cgww{tag}"
        self.procs: list[subprocess.Popen] = []
        self.addrs = list(server_addrs)
        try:
            sh("ip", "netns", "add", self.host)
            sh("ip", "netns", "add", self.world)
            hv, wv = f"h{tag}"[:15], f"w{tag}"[:15]
            sh("ip", "link", "add", hv, "netns", self.host, "type", "veth", "peer", "name", wv, "netns", self.world)
            self.in_host("ip", "link", "set", "lo", "up")
            self.in_host("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", hv)
            self.in_host("ip", "link", "set", hv, "up")
            self.in_host("ip", "route", "add", "default", "via", WORLD_ADDR)
            self.in_host("sysctl", "-qw", "net.ipv4.ip_forward=1")
            self.in_world("ip", "link", "set", "lo", "up")
            self.in_world("ip", "addr", "add", f"{WORLD_ADDR}/24", "dev", wv)
            self.in_world("ip", "link", "set", wv, "up")
            for a in [DNS_ADDR, *self.addrs]:
                self.in_world("ip", "addr", "add", f"{a}/32", "dev", "lo")
        except BaseException:
            self.close()
            raise

    def in_host(self, *argv, **kw):
        return sh("ip", "netns", "exec", self.host, *argv, **kw)

    def in_world(self, *argv, **kw):
        return sh("ip", "netns", "exec", self.world, *argv, **kw)

    def start(self, ns: str, argv, ready: Path | None = None, timeout=10) -> subprocess.Popen:
        """A server in `ns`; waits until it has written `ready`."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        deadline = time.monotonic() + timeout
        while ready is not None and not ready.exists():
            if p.poll() is not None:
                raise AssertionError(f"{argv} ended: {p.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv} not ready within {timeout}s")
            time.sleep(0.02)
        return p

    def dns_server(self, workdir: Path, zone: dict) -> Path:
        """dnsworld.py on DNS_ADDR:53 (UDP and TCP) with `zone`; returns its query log."""
        zf, log, ready = workdir / "zone.json", workdir / "dns-queries.log", workdir / "dns.ready"
        zf.write_text(json.dumps(zone))
        self.start(self.world, [PY, HERE / "dnsworld.py", DNS_ADDR, zf, log, ready], ready)
        return log

    def l7_servers(self, workdir: Path, addr: str) -> None:
        """l7world.py on addr: TLS 443 (self-signed), HTTP 80 and 8080."""
        ready = workdir / f"l7-{addr}.ready"
        self.start(self.world, [PY, HERE / "l7world.py", addr, workdir, ready], ready)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()
        for ns in (self.host, self.world):
            sh("ip", "netns", "del", ns, check=False)


class Cell:
    """A supervisor run inside the world's host netns (`ip netns exec`), in the
    background: events can be read (and the world inspected) while it runs."""

    def __init__(self, world: World, spec, env: dict):
        from conftest import SUPERVISOR, prepare, supervisor_env
        self.world = world
        self.dir, self.spec_path, self.jsonl = prepare(spec)
        full = {"CELLOS_NETWORK": "gateway", "CELLOS_DNS_UPSTREAM": f"{DNS_ADDR}:53", **env}
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(["ip", "netns", "exec", world.host, str(SUPERVISOR), str(self.spec_path)],
                                     env=supervisor_env(full, self.jsonl), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.dir)

    def events(self):
        if not self.jsonl.exists():
            return []
        return [json.loads(l) for l in self.jsonl.read_bytes().split(b"\n") if l.strip()]

    def wait_for(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events():
                if pred(ev):
                    return ev
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no such event within {timeout}s; got {[e['type'] for e in self.events()]}")

    def finish(self, timeout=60):
        from conftest import Result
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"supervisor did not end within {timeout}s: {err!r}")
        return Result(self.proc.returncode, out, err, self.jsonl, self.spec_path, time.monotonic() - self.t0)


def run_in(world: World, spec, env: dict | None = None, timeout=60):
    return Cell(world, spec, env or {}).finish(timeout)


def of_type(result, short: str) -> list[dict]:
    return [e["data"] for e in result.events if e["type"] == "dev.cellos.events.cell." + short]
