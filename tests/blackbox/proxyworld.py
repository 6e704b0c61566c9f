"""Servers for the DNS proxy and SNI/Host check tests, in the world of networld.py
(shared with test_gateway.py): dnsworld.py (a DNS server that logs every question
it gets, so a test can assert what reached the upstream, and can stay silent) on
the world's DNS address, and l7world.py (TLS 443 with a self-signed certificate,
HTTP 80 and 8080) on a world address."""
from __future__ import annotations

import json
import time
from pathlib import Path

from networld import NetWorld

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"


def _wait(world: NetWorld, p, ready: Path, timeout=15):
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if p.poll() is not None:
            raise AssertionError(f"server ended: {p.stderr.read().decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"server not ready within {timeout}s")
        time.sleep(0.02)


def dns_server(world: NetWorld, workdir: Path, zone: dict) -> Path:
    """dnsworld.py on world.dns_addr:53, UDP and TCP; returns its query log."""
    zf, log, ready = workdir / "zone.json", workdir / "dns-queries.log", workdir / "dns.ready"
    zf.write_text(json.dumps(zone))
    p = world._spawn(world.world, [PY, str(HERE / "dnsworld.py"), world.dns_addr, str(zf), str(log), str(ready)])
    _wait(world, p, ready)
    return log


def l7_servers(world: NetWorld, workdir: Path, addr: str) -> None:
    """l7world.py on addr: TLS 443 and 8443, HTTP 80 and 8080."""
    ready = workdir / f"l7-{addr}.ready"
    p = world._spawn(world.world, [PY, str(HERE / "l7world.py"), addr, str(workdir), str(ready)])
    _wait(world, p, ready)


def of_type(result, short: str) -> list[dict]:
    return [e["data"] for e in result.events if e["type"] == "dev.cellos.events.cell." + short]


def wait_for(running, pred, timeout=20) -> dict:
    """The first event of a WorldRunning for which pred(event) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in running.events():
            if pred(ev):
                return ev
        if running.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"no such event within {timeout}s; got {[e['type'] for e in running.events()]}")
