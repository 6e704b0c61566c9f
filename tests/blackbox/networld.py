"""A test world for the network gateway (SPEC §6.4): nothing leaves this machine.

Two network namespaces the test creates and always deletes:
* "host": plays the machine the supervisor runs on. The supervisor runs inside it
  (`nsenter --net`, which keeps the cgroup mounts `ip netns exec` would hide), so
  the cell's veth, the run's nft table, the routes, masquerade and forwarding all
  happen there. IPv4 forwarding is enabled INSIDE it only (the real host's sysctl
  is never touched). The supervisor also gets a mount namespace of its own whose
  /etc/resolv.conf points at the world's DNS server, so even the host resolver
  never reaches the real one.
* "world": plays the internet. It holds TCP/HTTP servers and a DNS server
  (dnsmasq) on addresses of its own, reachable from "host" over a veth.

Names carry the pid and a random part, so parallel runs never collide.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from conftest import SUPERVISOR, Result, Running, prepare, supervisor_env

GW_DIR = "/run/cellos/gw"

# A tiny HTTP server: answers every GET with "<name> <port>", one thread per client.
HTTP_SERVER = r"""
import http.server, socketserver, sys
addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {port}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
S((addr, port), H).serve_forever()
"""

# A sink for bulk transfers (bench): reads everything, counts it.
SINK_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, _ = s.accept()
    while c.recv(1 << 20): pass
    c.close()
"""


def sh(*argv, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


class NetWorld:
    def __init__(self, forwarding: bool = True):
        tag = f"{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
        self.host = f"cgh{tag}"
        self.world = f"cgw{tag}"
        self.hveth = f"gh{tag}"[:15]
        self.wveth = f"gw{tag}"[:15]
        o2, o3 = random.randint(16, 250), random.randint(0, 250)
        self.prefix = f"10.{o2}.{o3}"
        self.host_addr = f"{self.prefix}.1"       # the test host's own address
        self.world_addr = f"{self.prefix}.2"      # servers of the world
        self.world_addr2 = f"{self.prefix}.3"     # another site of the world
        self.dns_addr = f"{self.prefix}.53"       # the world's DNS server
        self.procs: list[subprocess.Popen] = []
        self.etc_netns = Path("/etc/netns") / self.host  # also what `ip netns exec` uses
        self._made = False
        try:
            self._build(forwarding)
        except BaseException:
            self.close()
            raise

    def _build(self, forwarding: bool):
        sh("ip", "netns", "add", self.host)
        self._made = True
        sh("ip", "netns", "add", self.world)
        sh("ip", "link", "add", self.hveth, "netns", self.host, "type", "veth", "peer", "name", self.wveth,
           "netns", self.world)
        sh("ip", "-n", self.host, "addr", "add", f"{self.host_addr}/24", "dev", self.hveth)
        for a in (self.world_addr, self.world_addr2, self.dns_addr):
            sh("ip", "-n", self.world, "addr", "add", f"{a}/24", "dev", self.wveth)
        for ns, dev in ((self.host, self.hveth), (self.world, self.wveth)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        self.set_forwarding(forwarding)
        # The host resolver of the supervisor (ip netns exec binds this over
        # /etc/resolv.conf): the world's DNS server, never the real one.
        self.etc_netns.mkdir(parents=True, exist_ok=True)
        (self.etc_netns / "resolv.conf").write_text(f"nameserver {self.dns_addr}\noptions timeout:1 attempts:1\n")

    def set_forwarding(self, on: bool):
        sh("ip", "netns", "exec", self.host, "sysctl", "-qw", f"net.ipv4.ip_forward={1 if on else 0}")

    # ------------------------------------------------------------------ servers

    def _spawn(self, ns: str, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def _wait_listening(self, ns: str, addr: str, port: int, udp: bool = False, timeout: float = 10):
        deadline = time.monotonic() + timeout
        flag = "-lun" if udp else "-ltn"
        while time.monotonic() < deadline:
            out = sh("ip", "netns", "exec", ns, "ss", "-H", flag, check=False).stdout
            if f"{addr}:{port} " in out:
                return
            time.sleep(0.05)
        raise AssertionError(f"no server on {addr}:{port} in {ns}")

    def http_server(self, port: int, addr: str | None = None, ns: str | None = None, name: str = "world"):
        addr = addr or self.world_addr
        ns = ns or self.world
        self._spawn(ns, ["/usr/bin/python3", "-c", HTTP_SERVER, addr, str(port), name])
        self._wait_listening(ns, addr, port)

    def sink_server(self, port: int, addr: str | None = None):
        addr = addr or self.world_addr
        self._spawn(self.world, ["/usr/bin/python3", "-c", SINK_SERVER, addr, str(port)])
        self._wait_listening(self.world, addr, port)

    def dns_server(self, records: dict[str, str]):
        """dnsmasq in the world answering `name -> IPv4` (A only), nothing else."""
        argv = ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
                "--conf-file=/dev/null", f"--listen-address={self.dns_addr}", "--bind-interfaces",
                "--port=53", "--pid-file=", "--user=root", "--log-facility=-"]
        argv += [f"--address=/{n}/{a}" for n, a in records.items()]
        self._spawn(self.world, argv)
        self._wait_listening(self.world, self.dns_addr, 53, udp=True)

    # ------------------------------------------------------------------ probes

    def in_host(self, *argv, check=True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.host, *argv, check=check)

    def host_can_connect(self, addr: str, port: int) -> bool:
        code = f"import socket;s=socket.socket();s.settimeout(2);print(s.connect_ex(({addr!r},{port})))"
        return self.in_host("/usr/bin/python3", "-c", code).stdout.strip() == "0"

    def links(self) -> list[str]:
        out = self.in_host("ip", "-j", "link", "show").stdout
        return [l["ifname"] for l in json.loads(out or "[]")]

    def tables(self) -> list[str]:
        out = self.in_host("nft", "-j", "list", "tables").stdout
        return [t["table"]["name"] for t in json.loads(out or "{}").get("nftables", []) if "table" in t]

    def routes(self) -> list[str]:
        return self.in_host("ip", "route", "show").stdout.splitlines()

    # ------------------------------------------------------------------ runs

    def argv(self, spec_path) -> list[str]:
        # nsenter and unshare (without --fork) exec: the pid is the supervisor's.
        resolv = self.etc_netns / "resolv.conf"
        return ["nsenter", f"--net=/run/netns/{self.host}", "--", "unshare", "--mount", "--propagation", "private",
                "/bin/sh", "-c", f'mount --bind "{resolv}" /etc/resolv.conf && exec "$@"', "sh",
                str(SUPERVISOR), str(spec_path)]

    def run(self, spec, env: dict | None = None, timeout: float = 60) -> Result:
        d, spec_path, jpath = prepare(spec)
        full = {"CELLOS_NETWORK": "gateway", **(env or {})}
        t0 = time.monotonic()
        p = subprocess.run(self.argv(spec_path), env=supervisor_env(full, jpath), capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL, cwd=d)
        return Result(p.returncode, p.stdout, p.stderr, jpath, spec_path, time.monotonic() - t0)

    def start(self, spec, env: dict | None = None) -> "WorldRunning":
        return WorldRunning(self, spec, {"CELLOS_NETWORK": "gateway", **(env or {})})

    # ------------------------------------------------------------------ teardown

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stderr:
                p.stderr.close()
        self.procs = []
        if self._made:
            for ns in (self.host, self.world):
                sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.etc_netns, ignore_errors=True)


class WorldRunning(Running):
    """A supervisor started in the background inside the world's host netns."""

    EVENT_TIMEOUT = 20
    FINISH_TIMEOUT = 60

    def __init__(self, world: NetWorld, spec, env):
        super().__init__(spec, env, argv=world.argv)


def gw_allocations(cell_id: str) -> list[str]:
    """The /30 allocations (lock files) that record a table of cell `cell_id`."""
    found = []
    if os.path.isdir(GW_DIR):
        for n in os.listdir(GW_DIR):
            try:
                text = Path(GW_DIR, n).read_text()
            except OSError:
                continue
            if f"table=cellos-gw-{cell_id}-" in text:
                found.append(n)
    return found
