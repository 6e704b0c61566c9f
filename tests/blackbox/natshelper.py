"""Real NATS servers for the tests, and a small client of our own to look at them.

`NatsServer` starts Debian's `nats-server` (JetStream on, `-js`) on a free loopback
port with a temporary store directory; `stop()` (SIGKILL, like a crash) and
`start()` again on the same store; the `nats_server` fixture kills it on every path.

`NatsClient` speaks the NATS text protocol over a socket (optionally TLS): CONNECT,
PUB/HPUB, SUB, request/reply with headers, server PINGs. It is written here rather
than taken from a package because Debian has no NATS client for Python; it covers
only what the tests need: JetStream API calls ($JS.API.*, JSON), reading a stream's
messages with their headers (STREAM.MSG.GET), and taking jobs from a pull consumer
(CONSUMER.MSG.NEXT, then +ACK), as cellos-agent will.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import new_dir

NATS_SERVER = shutil.which("nats-server", path="/usr/sbin:/usr/bin:/sbin:/bin") or "nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    return free_port()


class NatsServer:
    def __init__(self, *, tls: dict | None = None, user: tuple[str, str] | None = None, jetstream: bool = True,
                 cluster: tuple[str, int, list[int]] | None = None, monitor: bool = False):
        self.cluster = cluster
        # The HTTP monitoring port (-m): /varz counts the connections ever made.
        self.monitor_port = free_port() if monitor else None  # (server name, cluster port, the other servers' cluster ports)
        self.port = free_port()
        self.store = new_dir("nats-store")
        self.tls = tls
        self.user = user
        self.jetstream = jetstream
        self.proc: subprocess.Popen | None = None
        self.log = self.store.parent / f"{self.store.name}.log"

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls else "nats"
        cred = f"{self.user[0]}:{self.user[1]}@" if self.user else ""
        return f"{scheme}://{cred}127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        argv = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)]
        if self.jetstream:
            argv.append("-js")
        if self.cluster:
            name, cport, others = self.cluster
            argv += ["--server_name", name, "--cluster_name", "cellos-test", "--cluster",
                     f"nats://127.0.0.1:{cport}", "--routes", ",".join(f"nats://127.0.0.1:{p}" for p in others)]
        if self.monitor_port:
            argv += ["-m", str(self.monitor_port)]
        if self.user:
            argv += ["--user", self.user[0], "--pass", self.user[1]]
        if self.tls:
            argv += ["--tls", "--tlscert", str(self.tls["cert"]), "--tlskey", str(self.tls["key"])]
            if self.tls.get("verify_ca"):
                argv += ["--tlsverify", "--tlscacert", str(self.tls["verify_ca"])]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # a server that did not come up is not left behind
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nats-server exited: {self.log.read_text()[-2000:]}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            raise AssertionError("nats-server does not listen after 10 s")
        # JetStream is ready once the server says so in its log.
        while time.monotonic() < deadline:
            if not self.jetstream or self.cluster or b"Server is ready" in self.log.read_bytes():
                return
            time.sleep(0.02)
        raise AssertionError(f"nats-server not ready: {self.log.read_text()[-2000:]}")

    def stop(self):
        """SIGKILL: a broker that is gone, not one that says goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=10)

    def client(self, **kw) -> "NatsClient":
        return NatsClient(self.port, user=self.user, tls=self.tls, **kw)

    def monitor(self, path: str) -> dict:
        """A monitoring endpoint's JSON (the server started with monitor=True)."""
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/{path}", timeout=5) as r:
            return json.loads(r.read())

    def total_connections(self) -> int:
        """Client connections the server accepted since it started (closed ones included)."""
        return self.monitor("varz")["total_connections"]


@pytest.fixture
def nats_server():
    s = NatsServer()
    try:
        yield s.start()
    finally:
        s.stop()


class NatsClient:
    def __init__(self, port: int, *, user=None, tls: dict | None = None, timeout: float = 5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        info = self._line()
        assert info.startswith(b"INFO "), info
        if tls:
            ctx = ssl.create_default_context(cafile=str(tls["ca"]))
            if tls.get("client_cert"):
                ctx.load_cert_chain(str(tls["client_cert"]), str(tls["client_key"]))
            self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1,
                "lang": "python-test", "version": "0"}
        if user:
            opts.update(user=user[0], **{"pass": user[1]})
        self._send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                break
            assert not line.startswith(b"-ERR"), line
        self.sid = 0
        self.inbox = f"_INBOX.{uuid.uuid4().hex}"
        self.sub_id = self._sub(self.inbox + ".*")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # --- wire
    def _send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLError) as e:
            if isinstance(e, ssl.SSLError) and "timed out" not in str(e):
                raise
            raise TimeoutError from None
        if not chunk:
            raise ConnectionError("NATS server closed the connection")
        self.buf += chunk

    def _line(self, deadline: float | None = None) -> bytes:
        deadline = deadline or time.monotonic() + 5
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _sub(self, subject: str) -> int:
        self.sid += 1
        self._send(f"SUB {subject} {self.sid}\r\n".encode())
        return self.sid

    def publish(self, subject: str, data: bytes = b"", *, reply: str | None = None, headers: dict | None = None):
        r = f" {reply}" if reply else ""
        if headers:
            h = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
            self._send(f"HPUB {subject}{r} {len(h)} {len(h) + len(data)}\r\n".encode() + h + data + b"\r\n")
        else:
            self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def next_msg(self, timeout: float = 5) -> dict:
        """The next MSG/HMSG: {subject, reply, headers, status, data}."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline)
            if line == b"PING":
                self._send(b"PONG\r\n")
                continue
            if line in (b"PONG", b"+OK") or line.startswith(b"INFO "):
                continue
            assert not line.startswith(b"-ERR"), line
            parts = line.decode().split()
            if parts[0] == "MSG":
                subject, reply, n = parts[1], (parts[3] if len(parts) == 5 else None), int(parts[-1])
                return {"subject": subject, "reply": reply, "headers": {}, "status": None,
                        "data": self._bytes(n, deadline)}
            if parts[0] == "HMSG":
                subject, reply = parts[1], (parts[3] if len(parts) == 6 else None)
                hn, total = int(parts[-2]), int(parts[-1])
                raw = self._bytes(total, deadline)
                headers, status = parse_headers(raw[:hn])
                return {"subject": subject, "reply": reply, "headers": headers, "status": status,
                        "data": raw[hn:]}
            raise AssertionError(f"unexpected protocol line {line!r}")

    def request(self, subject: str, data: bytes = b"", *, headers: dict | None = None, timeout: float = 5) -> dict:
        reply = f"{self.inbox}.{uuid.uuid4().hex[:8]}"
        self.publish(subject, data, reply=reply, headers=headers)
        deadline = time.monotonic() + timeout
        while True:
            m = self.next_msg(max(0.01, deadline - time.monotonic()))
            if m["subject"] == reply:
                return m

    def js(self, api: str, req: dict | None = None, timeout: float = 5) -> dict:
        m = self.request(f"$JS.API.{api}", json.dumps(req).encode() if req is not None else b"", timeout=timeout)
        assert m["status"] is None, f"$JS.API.{api}: status {m['status']}"
        return json.loads(m["data"])

    # --- JetStream
    def stream_info(self, stream: str, subjects_filter: str | None = None) -> dict:
        return self.js(f"STREAM.INFO.{stream}", {"subjects_filter": subjects_filter} if subjects_filter else None)

    def stream_messages(self, stream: str) -> list[dict]:
        """Every message of the stream, in order: {seq, subject, headers, data}."""
        info = self.stream_info(stream)
        assert "error" not in info, info
        st = info["state"]
        out = []
        for seq in range(st["first_seq"], st["last_seq"] + 1) if st["messages"] else ():
            r = self.js(f"STREAM.MSG.GET.{stream}", {"seq": seq})
            if "error" in r:
                continue
            m = r["message"]
            headers, _ = parse_headers(base64.b64decode(m.get("hdrs", "")))
            out.append({"seq": m["seq"], "subject": m["subject"], "headers": headers,
                        "data": base64.b64decode(m.get("data", ""))})
        return out

    def pull_consumer(self, stream: str, durable: str, filter_subject: str):
        r = self.js(f"CONSUMER.DURABLE.CREATE.{stream}.{durable}",
                    {"stream_name": stream, "config": {"durable_name": durable, "ack_policy": "explicit",
                                                        "filter_subject": filter_subject,
                                                        "ack_wait": 30 * 10**9}})
        assert "error" not in r, r

    def fetch(self, stream: str, durable: str, timeout: float = 5) -> dict | None:
        """One job from a pull consumer (not acked), or None when there is none."""
        reply = f"{self.inbox}.{uuid.uuid4().hex[:8]}"
        body = json.dumps({"batch": 1, "expires": int(timeout * 1e9)}).encode()
        self.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", body, reply=reply)
        deadline = time.monotonic() + timeout + 2
        while True:
            m = self.next_msg(max(0.01, deadline - time.monotonic()))
            if m["subject"] == reply and m["status"]:
                return None  # 404 no messages / 408 request expired
            if m["reply"] and m["reply"].startswith("$JS.ACK."):
                return m

    def ack(self, msg: dict):
        self.request(msg["reply"], b"+ACK")


def parse_headers(raw: bytes) -> tuple[dict, str | None]:
    if not raw:
        return {}, None
    lines = raw.decode().split("\r\n")
    first = lines[0].split(None, 2)
    status = first[1] if len(first) > 1 else None
    headers = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            headers[k.strip()] = v.strip()
    return headers, status


class NatsCluster:
    """Three nats-servers routed into one JetStream cluster on loopback."""

    def __init__(self, n: int = 3):
        cports = [free_port() for _ in range(n)]
        self.servers = [NatsServer(cluster=(f"n{i}", cports[i], [p for p in cports if p != cports[i]]))
                        for i in range(n)]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def start(self) -> "NatsCluster":
        # The caller stops the cluster on every path (a server that did not come
        # up has stopped itself).
        for s in self.servers:
            s.start()
        # Ready when a stream with a replica on every server can be placed (the
        # meta group has a leader and knows every peer); the probe is removed.
        deadline = time.monotonic() + 60
        probe = {"name": "READY_PROBE", "subjects": ["ready.probe"], "storage": "memory",
                 "num_replicas": len(self.servers)}
        with self.servers[0].client() as c:
            while time.monotonic() < deadline:
                try:
                    m = c.request("$JS.API.STREAM.CREATE.READY_PROBE", json.dumps(probe).encode(), timeout=2)
                    if m["status"] is None and "error" not in json.loads(m["data"]):
                        c.js("STREAM.DELETE.READY_PROBE")
                        return self
                except TimeoutError:
                    pass
                time.sleep(0.2)
        raise AssertionError("JetStream cluster cannot place a stream on every server after 60 s")

    def stop(self):
        for s in self.servers:
            s.stop()


def ensure_events_stream(client: NatsClient, subjects: str = "cellos.events.>"):
    r = client.js("STREAM.CREATE.CELLOS_EVENTS", {"name": "CELLOS_EVENTS", "subjects": [subjects],
                                                  "storage": "file", "num_replicas": 1})
    assert "error" not in r, r


def make_tls(d: Path) -> dict:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client
    certificate signed by it (openssl)."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cellos test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem")
    for f in d.iterdir():
        os.chmod(f, 0o644)
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key",
            "client_cert": d / "client.pem", "client_key": d / "client.key"}
