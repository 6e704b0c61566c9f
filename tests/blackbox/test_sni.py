"""The SNI/Host check of a gateway cell (SPEC §6.4, l7_egress_decision of §8.1) in a
world of network namespaces (networld.py, shared with test_gateway.py): two names
share one address (the world's first, like a CDN) where a TLS server (self-signed; only the server
terminates TLS) and an HTTP server listen. The cell may reach a.example on 443
and 80, and b.example on 80 only. r.example:443 is a recorder that logs what
each connection sent it, for the TLS flows decided on the queue (l7queue.h).

Which path a gateway cell takes, the queue or the proxy, depends on the kernel
(queuepath.py asks it the way the supervisor does): each test asserts the path
this kernel gives and the same outcome on either. SNI_TESTS_WITHOUT_QUEUE=1 runs
the module as on a kernel without the queue (every queue number held in the
world's "host", as the relay fixture's "proxy" does)."""
import contextlib
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import make_spec, new_dir, py_argv, unique_id
from networld import NetWorld, gw_allocations, sh
from proxyworld import dns_server, l7_servers, of_type
from queuepath import PROXY_LINE, assert_path, fresh_probe, kernel_path, kernel_probe, probe

EGRESS = [{"host": "a.example", "port": 443}, {"host": "a.example", "port": 80}, {"host": "b.example", "port": 80},
          {"host": "s.example", "port": 80}, {"host": "r.example", "port": 443}]

# For the in-cell scripts: everything a socket (plain or TLS) gives until the
# peer's end of file.
READ_ALL = r'''
def read_all(s, size=65536):
    parts = []
    while True:
        b = s.recv(size)
        if not b:
            return b"".join(parts)
        parts.append(b)
'''

# A TCP server on 443 that is no TLS server: it logs how many bytes (and their
# SHA-256) each connection sent once it has been idle for a second, and tells
# the client the same. What a server received is then a fact the test reads.
RECORDER = r'''
import hashlib, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 443))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)  # the world's netns lets it (tcp_fastopen=3)
s.listen(16)
lock = threading.Lock()
def serve(c):
    data = b""
    c.settimeout(1)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    line = f"{len(data)} {hashlib.sha256(data).hexdigest() if data else '-'}"
    with lock, open(sys.argv[2], "a") as f:
        f.write(line + "\n")
    try:
        c.sendall(("got " + line + "\n").encode())
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

# The ClientHello of a real TLS client (Python's ssl) for a name, sent in
# `pieces` writes with TCP_NODELAY and a pause between them: that many TCP
# segments.
SPLIT = r'''
import hashlib, json, socket, ssl, sys, time
def hello(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(i, o, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return o.read()
def split(name, pieces, pause=0.05, stop=None, extra=0):
    h = hello(name) + bytes(range(256)) * extra
    s = socket.create_connection((socket.gethostbyname("r.example"), 443), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    step = -(-len(h) // pieces)
    parts = [h[k:k + step] for k in range(0, len(h), step)]
    try:
        for k, p in enumerate(parts):
            if k == stop:
                print("half", flush=True)
                time.sleep(3)
            s.sendall(p)
            time.sleep(pause)
        t0 = time.monotonic()
        got = s.recv(200).decode().strip()
        return {"sent": f"{len(h)} {hashlib.sha256(h).hexdigest()}", "got": got or "eof",
                "after_s": round(time.monotonic() - t0, 2), "parts": len(parts)}
    except OSError as e:
        return {"sent": len(h), "got": "error " + type(e).__name__, "parts": len(parts)}
'''


def recorded(world, since: int, n: int, timeout=10) -> list[str]:
    """The recorder's log lines after the first `since`, once there are `n`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = world.recorder_log.read_text().splitlines() if world.recorder_log.exists() else []
        if len(lines) >= since + n or time.monotonic() > deadline:
            return lines[since:]
        time.sleep(0.1)


def log_lines(world) -> int:
    return len(world.recorder_log.read_text().splitlines()) if world.recorder_log.exists() else 0

# A server that reads what it gets and never answers nor closes, even after the
# client's end of file: a relayed connection to it stays open on its side.
SILENT_SERVER = r'''
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 80)); s.listen(16)
held = []
def hold(c):
    while c.recv(65536):
        pass
    time.sleep(3600)
while True:
    c, _ = s.accept(); held.append(c)
    threading.Thread(target=hold, args=(c,), daemon=True).start()
'''

PROBE = READ_ALL + r'''
import json, socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
ip = socket.gethostbyname("a.example")
def tls(sni, addr=ip):
    try:
        with ctx.wrap_socket(socket.create_connection((addr, 443), timeout=3), server_hostname=sni) as t:
            t.sendall(b"hi\n")
            return t.recv(100).decode().strip()
    except OSError as e:
        return "error " + type(e).__name__
def http(head):
    try:
        s = socket.create_connection((ip, 80), timeout=3)
        s.sendall(head.encode())
        return read_all(s).decode(errors="replace")
    except OSError as e:
        return "error " + type(e).__name__
def silent():
    s = socket.create_connection((ip, 443), timeout=15)
    t0 = time.monotonic()
    s.recv(10)
    return round(time.monotonic() - t0)
out = {
    "tls_a": tls("a.example"),
    "tls_b_shared": tls("b.example"),
    "tls_none": tls(None),
    "tls_other_ip": tls("c.example", socket.gethostbyname("c.example")),
    "http_a": http("GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"),
    "http_b": http("GET / HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n"),
    "http_evil": http("GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"),
    "http_none": http("GET / HTTP/1.0\r\n\r\n"),
    "http_smuggled": http("GET / HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n"),
}
if len(sys.argv) > 1:
    out["silent_s"] = silent()
print(json.dumps(out))
'''


def spec(code, *args):
    s = make_spec(py_argv(code, *args), egress=EGRESS)
    s["spec"]["authority"]["dnsAuthority"] = {"hostnameAllowlist": ["c.example"]}
    return s


@pytest.fixture(scope="module")
def world():
    w = NetWorld()
    try:
        d = new_dir("sniworld")
        silent, rec = f"{w.prefix}.4", f"{w.prefix}.5"
        sh("ip", "-n", w.world, "addr", "add", f"{silent}/24", "dev", w.wveth)
        sh("ip", "-n", w.world, "addr", "add", f"{rec}/24", "dev", w.wveth)
        # c.example: only in the hostnameAllowlist (resolvable, no rule).
        dns_server(w, d, {"a.example": [w.world_addr], "b.example": [w.world_addr], "c.example": [w.world_addr2],
                          "s.example": [silent], "r.example": [rec]})
        l7_servers(w, d, w.world_addr)
        l7_servers(w, d, w.world_addr2)
        w._spawn(w.world, ["/usr/bin/python3", "-c", SILENT_SERVER, silent])
        w._wait_listening(w.world, silent, 80)
        sh("ip", "netns", "exec", w.world, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
        w.recorder_log = d / "recorder.log"
        w._spawn(w.world, ["/usr/bin/python3", "-c", RECORDER, rec, str(w.recorder_log)])
        w._wait_listening(w.world, rec, 443)
        yield w
    finally:
        w.close()


# Binds every queue number a supervisor may take (l7queue.h) in the "host"
# netns, as live cells would, so the check falls back to its proxy: the path of
# a kernel without the queue, tested on any kernel.
OCCUPY = r"""
import socket, struct, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
s.bind((0, 0))
for n in range(32768, 49152):
    attr = struct.pack("HHBBH", 8, 1, 1, 0, socket.htons(2))  # NFQA_CFG_CMD: BIND, AF_INET
    body = struct.pack("BBH", 0, 0, socket.htons(n)) + attr
    s.send(struct.pack("IHHII", 16 + len(body), 3 << 8 | 2, 1 | 4, n, 0) + body)  # QUEUE CONFIG, REQUEST|ACK
    assert struct.unpack("i", s.recv(4096)[16:20])[0] == 0, n
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def queue_taken(world):
    """Every queue number held in the world's "host" while inside."""
    p = subprocess.Popen(["ip", "netns", "exec", world.host, "/usr/bin/python3", "-c", OCCUPY],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield
    finally:
        p.stdin.close()
        p.wait(timeout=30)


WITHOUT_QUEUE = os.environ.get("SNI_TESTS_WITHOUT_QUEUE") == "1"


@pytest.fixture(scope="module", autouse=True)
def path(world):
    """The path this kernel's gateway cells take, "queue" or "proxy"
    (queuepath.py); "proxy" with SNI_TESTS_WITHOUT_QUEUE=1."""
    if not WITHOUT_QUEUE:
        yield kernel_path()
        return
    with queue_taken(world):
        yield "proxy"


@pytest.fixture(params=["queue", "proxy"])
def relay(request, world, path):
    """How the check is expected to decide: "queue" is the kernel's own path
    (on a kernel without the queue, it asserts the fallback to the proxy);
    "proxy" with every queue number taken, on any kernel."""
    if request.param == "queue" or path == "proxy":
        yield path
        return
    with queue_taken(world):
        yield "proxy"


def test_the_probe_agrees_with_a_gateway_cell(world, path):
    # queuepath.py's answer for this kernel is the path a real gateway cell
    # takes: probed the same way in the world's "host" where the cell runs, and
    # what the supervisor logged. Then with every queue number taken there,
    # the probe and the cell both say "proxy" (the probe's branch for a kernel
    # without the queue, met the way the supervisor meets it).
    code = READ_ALL + r'''
import socket
s = socket.create_connection((socket.gethostbyname("a.example"), 80), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
print(read_all(s).endswith(b"http a.example\n"))
'''
    here = probe(world.host)
    assert here["path"] == path == (kernel_path() if not WITHOUT_QUEUE else "proxy"), (here, kernel_probe())
    r = world.run(spec(code), {"CELLOS_LOG": "debug"})
    assert r.rc == 0 and r.out.strip() == "True", r
    assert_path(r.err, path, f"{world.world_addr}:80")
    taken = contextlib.nullcontext() if WITHOUT_QUEUE else queue_taken(world)
    with taken:
        none = probe(world.host)
        assert none["path"] == "proxy" and none["bind"].startswith("binding an nfnetlink_queue: "), none
        r = world.run(spec(code), {"CELLOS_LOG": "debug"})
    assert r.rc == 0 and r.out.strip() == "True", r
    assert_path(r.err, "proxy")
    assert f"SNI check: binding an nfnetlink_queue: {none['bind'].split(': ', 1)[1]}: {PROXY_LINE}" in r.err, r.err
    # The probe left nothing in the namespace it probed.
    assert not [t for t in world.tables() if "qprobe" in t], world.tables()


def test_the_probe_says_proxy_where_the_rule_is_refused():
    # A kernel without xt NFQUEUE refuses the queue rule, and the supervisor
    # then proxies (gateway_build): the probe's rule naming a target no kernel
    # has meets that refusal, and its answer is the proxy; the bind and
    # ctnetlink still answer as on this kernel.
    got = fresh_probe(target="CELLOSNOTARGET")
    assert got["path"] == "proxy" and got["rule"] == "queue rule: No such file or directory", got
    base = kernel_probe()
    assert (got["bind"].startswith("bound"), got["ctnetlink"]) == (base["bind"].startswith("bound"), base["ctnetlink"])


def test_sni_and_host_decide_per_connection(world, relay):
    r = world.run(spec(PROBE), {"CELLOS_LOG": "debug"})
    assert r.rc == 0, r
    assert_path(r.err, relay)
    out = json.loads(r.out)
    assert out["tls_a"] == "tls a.example"                 # TLS passes through, the server terminates it
    assert out["tls_b_shared"].startswith("error"), out    # same address, a name not allowed on 443
    assert out["tls_none"].startswith("error"), out
    assert out["tls_other_ip"] == "error TimeoutError", out  # not declared at all: the cell's filter drops it
    assert out["http_a"].startswith("HTTP/1.1 200") and out["http_a"].endswith("http a.example\n"), out
    assert out["http_b"].endswith("http b.example\n"), out
    for k in ("http_evil", "http_none", "http_smuggled"):
        assert out[k].startswith("HTTP/1.1 403 Forbidden"), (k, out)
    ev = of_type(r, "observability.v1.l7_egress_decision")
    got = sorted((d["protocol"], d.get("serverName", ""), d["decision"], d["reasonCode"]) for d in ev)
    assert got == sorted([
        ("tls", "a.example", "allow", "l7_sni_allowlist_match"),
        ("tls", "b.example", "deny", "l7_sni_allowlist_miss"),
        ("tls", "", "deny", "l7_sni_missing"),
        ("http", "a.example", "allow", "l7_http_host_allowlist_match"),
        ("http", "b.example", "allow", "l7_http_host_allowlist_match"),
        ("http", "evil.example", "deny", "l7_http_host_allowlist_miss"),
        ("http", "", "deny", "l7_http_host_missing"),
        ("http", "", "deny", "l7_http_host_missing"),
    ]), got  # one per connection checked; none for the connection the filter dropped
    assert {d["destination"] for d in ev} == {f"{world.world_addr}:443", f"{world.world_addr}:80"}


def test_silent_connection_times_out(world):
    r = world.run(spec(PROBE, "silent"), timeout=90)
    assert r.rc == 0, r
    out = json.loads(r.out)
    assert out["silent_s"] in (9, 10, 11), out
    ev = [d for d in of_type(r, "observability.v1.l7_egress_decision") if d["reasonCode"] == "l7_peek_timeout"]
    assert len(ev) == 1 and ev[0]["decision"] == "deny" and "serverName" not in ev[0], ev


def test_large_transfer_is_byte_exact(world, path):
    # 20 MB of HTTP after an allowed Host arrive whole. On the queue the
    # supervisor's only part was the decision: the kernel forwards the flow
    # (the debug line per connection); the proxy relays every byte.
    code = READ_ALL + r'''
import socket, hashlib
s = socket.create_connection((socket.gethostbyname("a.example"), 80), timeout=10)
s.sendall(b"GET /bulk?n=20000000 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
head, _, body = read_all(s, 1 << 20).partition(b"\r\n\r\n")
print(len(body), body == bytes(20000000))
'''
    r = world.run(spec(code), {"CELLOS_LOG": "debug"})
    assert r.rc == 0, r
    assert r.out.split() == ["20000000", "True"], r.out
    assert_path(r.err, path, f"{world.world_addr}:80")


UPLOAD = READ_ALL + r"""
import hashlib, json, os, socket, time
ip = socket.gethostbyname("a.example")
bad, n = [], 0
for size in (1000, 40000, 3000000):
    body = os.urandom(size)
    want = f"{size} {hashlib.sha256(body).hexdigest()}"
    head = f"POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
    for mode in ("one write", "two writes", "body later", "one write then eof"):
        s = socket.create_connection((ip, 80), timeout=10)
        if mode.startswith("one write"):
            s.sendall(head + body)
        else:
            s.sendall(head)
            if mode == "body later":
                time.sleep(0.3)  # after the decision: the kernel carries all of it
            s.sendall(body)
        if mode.endswith("eof"):
            s.shutdown(socket.SHUT_WR)  # the server still answers, after our end of file
        data = read_all(s)
        s.close()
        got = data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
        n += 1
        if got != want:
            bad.append([size, mode, got, want])
print(json.dumps({"n": n, "bad": bad}))
"""


def test_request_body_right_behind_the_head_arrives_whole_once(world, relay):
    # The body of a request follows its head at once (same write, next write,
    # later, then the client's end of file); the server gets exactly the bytes
    # sent, in order, once (its sha256), whichever way they meet the decision
    # and the relay after it. 40 kB and 3 MB in one write fill the 16 KiB the
    # check reads before deciding.
    r = world.run(spec(UPLOAD), env={"CELLOS_LOG": "debug"}, timeout=120)
    assert r.rc == 0, r
    assert_path(r.err, relay)
    out = json.loads(r.out)
    assert out == {"n": 12, "bad": []}, (out, r.err[-3000:])


@pytest.mark.parametrize("relay", ["proxy"], indirect=True)
def test_more_connections_than_slots_one_after_another(world, relay):
    # The proxy (the check where the queue is not to be had) holds 64
    # connections at once; 80 in turn all pass, so each allowed connection's
    # slot comes back when its relay (a splice thread per direction) ends, and
    # each answer arrives whole through it.
    code = READ_ALL + r'''
import socket
ip = socket.gethostbyname("a.example")
ok = 0
for i in range(80):
    s = socket.create_connection((ip, 80), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
    data = read_all(s)
    s.close()
    ok += data.startswith(b"HTTP/1.1 200") and data.endswith(b"http a.example\n")
print(ok)
'''
    r = world.run(spec(code), {"CELLOS_LOG": "debug"}, timeout=120)
    assert r.rc == 0, r
    assert_path(r.err, relay)
    assert r.out.strip() == "80", r.out
    allowed = [d for d in of_type(r, "observability.v1.l7_egress_decision") if d["decision"] == "allow"]
    assert len(allowed) == 80


@pytest.mark.parametrize("family", ["inet", "inet6"])
def test_open_relay_at_the_workloads_end_is_closed(world, path, family):
    # The workload sends a request to a server that never answers nor closes,
    # and ends: on the queue its socket lives on in the kernel (FIN_WAIT, the
    # server never closes) and would hold the cell's netns and veth for a
    # minute. The supervisor ends it at destroy (no hang; on the proxy the
    # relay's end goes with the proxy), and nothing of the run remains. Both
    # kinds of TCP socket: an IPv6 one that reaches the IPv4 address mapped is
    # counted and listed apart from the IPv4 ones (destroy looks at each kind's
    # count before it lists them).
    code = r'''
import socket, sys
ip = socket.gethostbyname("s.example")
if sys.argv[1] == "inet":
    s = socket.create_connection((ip, 80), timeout=5)
else:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        print("no inet6")
        sys.exit(0)
    s.settimeout(5)
    s.connect(("::ffff:" + ip, 80))
s.sendall(b"GET / HTTP/1.1\r\nHost: s.example\r\n\r\n")
print("sent")
'''
    cid = unique_id()
    s = spec(code, family)
    s["spec"]["id"] = cid
    r = world.run(s, {"CELLOS_LOG": "debug"}, timeout=30)
    if family == "inet6" and not os.path.exists("/proc/net/if_inet6"):
        # A kernel without IPv6: the cell cannot make such a socket, so none
        # can be left behind.
        assert r.rc == 0 and r.out.strip() == "no inet6", r
        return
    assert r.rc == 0 and r.out.strip() == "sent", r
    assert r.elapsed < 15, r.elapsed
    if path == "queue":
        assert "destroy: ended 1 TCP socket(s) the cell left" in r.err, r.err
    ev = of_type(r, "observability.v1.l7_egress_decision")
    assert [(d["serverName"], d["decision"]) for d in ev] == [("s.example", "allow")], ev
    assert not gw_allocations(cid)
    assert not [t for t in world.tables() if cid in t], world.tables()
    deadline = time.monotonic() + 5  # the veth goes with the cell's netns, in the background
    while [l for l in world.links() if l.startswith("cellos-")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [l for l in world.links() if l.startswith("cellos-")], world.links()


def test_gvisor_cell_gets_the_same_proxy_and_check(world):
    # runsc's own network stack over the gateway's veth: its /etc/resolv.conf (a
    # bind of the bundle) names the DNS proxy, and 443 goes through the check.
    code = r'''
import json, socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
def tls(ip, sni):
    try:
        with ctx.wrap_socket(socket.create_connection((ip, 443), timeout=5), server_hostname=sni) as t:
            t.sendall(b"hi\n")
            return t.recv(100).decode().strip()
    except OSError as e:
        return "error " + type(e).__name__
ip = socket.gethostbyname("a.example")
try:
    evil = socket.gethostbyname("evil.example")
except OSError:
    evil = "not resolved"
print(json.dumps([open("/etc/resolv.conf").read(), ip, evil, tls(ip, "a.example"), tls(ip, "b.example")]))
'''
    r = world.run(spec(code), {"CELLOS_CELL_BACKEND": "gvisor"}, timeout=120)
    assert r.rc == 0, r
    resolv, ip, evil, a, b = json.loads(r.out)
    gw = r.event("lifecycle.v1.started")["data"]["isolation"]["network"]["gatewayAddress"]
    assert f"nameserver {gw}\n" in resolv
    assert ip == world.world_addr and evil == "not resolved"
    assert a == "tls a.example" and b.startswith("error"), (a, b)
    dns = of_type(r, "observability.v1.dns_query")
    assert {(d["queryName"], d["decision"]) for d in dns} == {("a.example", "permitted"), ("evil.example", "refused")}
    l7 = of_type(r, "observability.v1.l7_egress_decision")
    assert sorted((d["serverName"], d["decision"]) for d in l7) == [("a.example", "allow"), ("b.example", "deny")]


# ---- TLS decided on the queue (l7queue.h), forwarded by the kernel ----

def test_clienthello_in_several_segments_is_decided_on_the_queue(world, path):
    # A ClientHello in 5 segments: the held segments reach the server only
    # after the decision, whole and in order; a refused one never does, and
    # its client reads the end of the stream at once. (On the proxy, the
    # same, and the refused connection never reaches the server at all.)
    code = SPLIT + r"""
print(json.dumps([split("r.example", 5), split("evil.example", 5), split("r.example", 1, extra=160)]))
"""
    since = log_lines(world)
    r = world.run(spec(code), {"CELLOS_LOG": "debug"})
    assert r.rc == 0, r
    ok, bad, big = json.loads(r.out)
    assert ok["parts"] == 5 and ok["got"] == "got " + ok["sent"], ok      # the server got every byte, once
    # 40 kB right behind the ClientHello in one write: more than the check
    # reads before deciding, and more segments than it holds at first.
    assert big["got"] == "got " + big["sent"], big
    assert bad["got"] in ("eof", "error ConnectionResetError"), bad
    assert bad.get("after_s", 0) < 1, bad
    # The refused one: not a byte (on the queue its handshake reached the server).
    want = sorted([ok["sent"], big["sent"]] + (["0 -"] if path == "queue" else []))
    assert sorted(recorded(world, since, 3, timeout=10 if path == "queue" else 4)) == want
    ev = of_type(r, "observability.v1.l7_egress_decision")
    got = sorted((d["protocol"], d.get("serverName"), d["decision"], d["reasonCode"]) for d in ev)
    assert got == [("tls", "evil.example", "deny", "l7_sni_allowlist_miss"),
                   ("tls", "r.example", "allow", "l7_sni_allowlist_match"),
                   ("tls", "r.example", "allow", "l7_sni_allowlist_match")], got
    assert_path(r.err, path, f"{world.prefix}.5:443")


def test_large_tls_transfer_is_forwarded_by_the_kernel(world, path):
    # 20 MB over TLS after an allowed ClientHello: byte-exact, and on the
    # queue the supervisor's only part was the decision (it says so per
    # connection); the proxy relays every byte, and says nothing of the kind.
    code = READ_ALL + r"""
import socket, ssl, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
with ctx.wrap_socket(socket.create_connection((socket.gethostbyname("a.example"), 443), timeout=10),
                     server_hostname="a.example") as t:
    t.sendall(b"bulk 20000000\n")
    data = read_all(t, 1 << 20)
print(len(data), not data.strip(b"\0"))
"""
    r = world.run(spec(code), {"CELLOS_LOG": "debug"})
    assert r.rc == 0, r
    assert r.out.split() == ["20000000", "True"], r.out
    assert_path(r.err, path, f"{world.world_addr}:443")
    ev = of_type(r, "observability.v1.l7_egress_decision")
    assert [(d["serverName"], d["decision"]) for d in ev] == [("a.example", "allow")], ev


def test_undecided_flow_of_a_sigkilled_supervisor_is_dropped(world, path):
    # Half a ClientHello is held when the supervisor is SIGKILLed: the queue
    # then has no listener, and the rule has no bypass, so neither the held
    # half nor the rest (sent 3 s later, if the cell still lives) reaches the
    # server; the next supervisor sweeps the table. (On the proxy the half
    # dies with the supervisor, before any connection to the server.)
    code = SPLIT + r"""
print(json.dumps(split("r.example", 4, stop=2)))
"""
    cid = unique_id("l7kill")
    s = spec(code)
    s["spec"]["id"] = cid
    since = log_lines(world)
    run = world.start(s)
    run.wait_stdout(b"half", timeout=20)
    run.sigkill()
    time.sleep(4)
    assert recorded(world, since, 1, timeout=10 if path == "queue" else 2) == (["0 -"] if path == "queue" else [])
    r = world.run(make_spec(["/usr/bin/true"]))
    assert r.rc == 0, r
    assert not gw_allocations(cid)
    assert not [t for t in world.tables() if cid in t], world.tables()


def test_tcp_fast_open_carries_no_byte_past_the_check(world):
    # TCP Fast Open puts data in the SYN, which is not queued: a ClientHello
    # for a refused name sent that way must not reach the server (the SYN
    # with the option is dropped; the client connects without it, and its
    # ClientHello is then decided like any other). The first connection would
    # fetch a cookie, the second use it.
    code = SPLIT + r"""
import struct
def tfo(name):
    s = socket.socket()  # blocking, so that sendto connects: at most 8 s either way
    for opt in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
        s.setsockopt(socket.SOL_SOCKET, opt, struct.pack("ll", 8, 0))
    try:
        s.sendto(hello(name), socket.MSG_FASTOPEN, (socket.gethostbyname("r.example"), 443))
        return s.recv(200).decode().strip() or "eof"
    except OSError as e:
        return "error " + type(e).__name__
print(json.dumps([tfo("r.example"), tfo("evil.example")]))
"""
    since = log_lines(world)
    r = world.run(spec(code), timeout=90)
    assert r.rc == 0, r
    ok, bad = json.loads(r.out)
    assert ok.startswith("got "), ok
    assert bad in ("eof", "error ConnectionResetError"), bad
    # The refused one: accepted by the server with nothing read, or never
    # accepted at all (its handshake's last ACK rode on the held ClientHello).
    got = recorded(world, since, 2, timeout=4)
    assert sorted(got) in ([ok[4:]], sorted([ok[4:], "0 -"])), (ok, got)
    ev = of_type(r, "observability.v1.l7_egress_decision")
    assert sorted((d["serverName"], d["decision"]) for d in ev) == [("evil.example", "deny"), ("r.example", "allow")]


def test_new_connection_on_the_same_ports_is_decided_afresh(world):
    # An allowed connection, then at once another from the same source port
    # to the same server (conntrack reopens the entry, mark 0 again) with a
    # refused name: the check must not take it for the first one.
    code = SPLIT + READ_ALL + r"""
ip = socket.gethostbyname("r.example")
out = []
port = None
for name in ("r.example", "evil.example"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(5)
    s.bind(("0.0.0.0", port or 0))
    port = s.getsockname()[1]
    s.connect((ip, 443))
    s.sendall(hello(name))
    try:
        out.append(s.recv(200).decode().strip() or "eof")
    except OSError as e:
        out.append("error " + type(e).__name__)
    if out[-1].startswith("got "):
        # Until the server's close, so that it closed first: a close of ours
        # crossing its FIN would leave this port in TIME_WAIT, and the next
        # connect from it fail (EADDRNOTAVAIL).
        read_all(s)
    s.close()
print(json.dumps(out))
"""
    since = log_lines(world)
    r = world.run(spec(code))
    assert r.rc == 0, r
    ok, bad = json.loads(r.out)
    assert ok.startswith("got ") and bad in ("eof", "error ConnectionResetError"), (ok, bad)
    got = recorded(world, since, 2, timeout=4)
    assert sorted(got) in ([ok[4:]], sorted([ok[4:], "0 -"])), (ok, got)
    ev = of_type(r, "observability.v1.l7_egress_decision")
    assert sorted((d["serverName"], d["decision"]) for d in ev) == [("evil.example", "deny"), ("r.example", "allow")]


def test_concurrent_cells_each_decide_on_a_queue_of_their_own(world, path):
    # Two live cells, one host: each supervisor binds a queue number of its own
    # (the other's answers EPERM), so both are decided on the queue and
    # forwarded by the kernel; neither falls back to the proxy (where the
    # kernel has a queue; without, both are proxied, and both get their answer).
    code = READ_ALL + r"""
import socket, sys, time
time.sleep(float(sys.argv[1]))
s = socket.create_connection((socket.gethostbyname("a.example"), 80), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
data = read_all(s)
time.sleep(float(sys.argv[2]))
print(data.endswith(b"http a.example\n"))
"""
    out = {}
    # The first cell holds its queue while the second one starts and connects.
    first = threading.Thread(target=lambda: out.setdefault("a", world.run(spec(code, "0", "3"), {"CELLOS_LOG": "debug"})))
    first.start()
    time.sleep(1)
    out["b"] = world.run(spec(code, "0.5", "0"), {"CELLOS_LOG": "debug"})
    first.join()
    for r in out.values():
        assert r.rc == 0 and r.out.strip() == "True", r
        assert_path(r.err, path, f"{world.world_addr}:80")
