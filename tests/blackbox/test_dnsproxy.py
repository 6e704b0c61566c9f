"""The DNS proxy of a gateway cell (SPEC §6.4, dns_query of §8.1), in a world of
network namespaces (networld.py, shared with test_gateway.py): the supervisor
runs in a "host" netns, the upstream resolver (dnsworld.py, which logs every
question it gets) in a "world" netns; the supervisor's own resolver (hence the
proxy's upstream) is that server. The workload resolves through /etc/resolv.conf (generated) and asks the
proxy directly with dnspython."""
import json
import re
import statistics
import subprocess

import pytest

from conftest import make_spec, new_dir, py_argv
from networld import NetWorld
from proxyworld import dns_server, l7_servers, of_type, wait_for

# A1: world_addr, A2: world_addr2 of the world (filled in by the fixture).
ZONE = {
    "a.example": ["A1"],
    "listed.example": ["A2"],
    "x.wild.example": ["A2"],
    "a.b.wild.example": ["A2"],
    "wild.example": ["A1"],
    "evil.example": ["A1"],
    "rebind.example": ["127.0.0.1", "169.254.169.254", "A2"],
    "_silent": ["silent.example"],
}
EGRESS = [{"host": "a.example", "port": 443}, {"host": "*.wild.example", "port": 443},
          {"host": "rebind.example", "port": 443}, {"host": "silent.example", "port": 443}]
AUTHORITY = {"hostnameAllowlist": ["listed.example"]}

# The workload: each question as dnspython sees the answer, one JSON line.
PROBE = r'''
import json, socket, sys, time
import dns.message, dns.query, dns.rcode
gw = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
out = {"resolv": open("/etc/resolv.conf").read()}
try:
    out["libc"] = socket.gethostbyname("a.example")
except OSError as e:
    out["libc"] = "error " + str(e)
def q(name, tcp=False, timeout=5):
    m = dns.message.make_query(name, "A")
    t0 = time.monotonic()
    try:
        r = (dns.query.tcp if tcp else dns.query.udp)(m, gw, timeout=timeout)
    except Exception as e:
        return {"error": type(e).__name__, "s": time.monotonic() - t0}
    return {"rcode": dns.rcode.to_text(r.rcode()), "id": r.id == m.id, "s": time.monotonic() - t0,
            "answer": sorted(str(x) for rr in r.answer for x in rr)}
for name in sys.argv[1:]:
    tcp = name.startswith("tcp:")
    out[name] = q(name[4:] if tcp else name, tcp)
# Not a query: garbage, and a response (QR set) sent as a query.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
resp = dns.message.make_response(dns.message.make_query("a.example", "A")).to_wire()
for k, m in (("garbage", b"\x12\x34not dns at all"), ("response", resp)):
    s.sendto(m, (gw, 53))
    try:
        s.recv(512)
        out[k] = "answered"
    except socket.timeout:
        out[k] = "dropped"
# Over TCP: two queries in one write (both answered, in order), then garbage
# (the connection is closed).
t = socket.create_connection((gw, 53), timeout=3)
qa, qb = dns.message.make_query("a.example", "A"), dns.message.make_query("evil.example", "A")
wa, wb = qa.to_wire(), qb.to_wire()
t.sendall(len(wa).to_bytes(2, "big") + wa + len(wb).to_bytes(2, "big") + wb)
got = []
for q in (qa, qb):
    r = dns.query.receive_tcp(t, time.time() + 3)[0]
    got.append([r.id == q.id, dns.rcode.to_text(r.rcode())])
t.sendall(b"\x00\x05junk!")
try:
    got.append("closed" if t.recv(10) == b"" else "open")
except OSError as e:
    got.append("closed")
out["tcp_stream"] = got
print(json.dumps(out))
sys.stdout.flush()
time.sleep(float(__import__("os").environ.get("HOLD", "0")))
'''


@pytest.fixture(scope="module")
def world():
    w = NetWorld()
    try:
        d = new_dir("dnsworld")
        sub = {"A1": w.world_addr, "A2": w.world_addr2}
        w.dns_log = dns_server(w, d, {k: [sub.get(a, a) for a in v] if k != "_silent" else v for k, v in ZONE.items()})
        w.a1, w.a2 = w.world_addr, w.world_addr2
        yield w
    finally:
        w.close()


def spec_for(*names, hold=0):
    return make_spec(py_argv(PROBE, *names), egress=EGRESS,
                     run_extra={"env": {"HOLD": str(hold)}} if hold else None,
                     spec_extra={})


def with_authority(spec):
    spec["spec"]["authority"]["dnsAuthority"] = AUTHORITY
    return spec


def asked_upstream(world) -> list[str]:
    return world.dns_log.read_text().split("\n") if world.dns_log.exists() else []


def probe(world, *names, env=None):
    r = world.run(with_authority(spec_for(*names)), env)
    assert r.rc == 0, r
    return r, json.loads(r.out.strip().splitlines()[-1])


def test_names_resolve_through_the_proxy(world):
    r, out = probe(world, "a.example", "tcp:a.example", "A.Example", "listed.example")
    started = r.event("lifecycle.v1.started")["data"]["isolation"]["network"]
    # /etc/resolv.conf of the cell names the gateway, and libc resolves through it.
    assert re.search(r"^nameserver " + re.escape(started["gatewayAddress"]) + "$", out["resolv"], re.M), out
    assert out["libc"] == world.a1
    for k in ("a.example", "tcp:a.example", "A.Example"):
        assert out[k]["rcode"] == "NOERROR" and out[k]["id"] and out[k]["answer"] == [world.a1], (k, out)
    # hostnameAllowlist alone (no egress rule) resolves too.
    assert out["listed.example"]["answer"] == [world.a2]
    ev = [d for d in of_type(r, "observability.v1.dns_query") if d["queryName"].lower() == "a.example"]
    assert len(ev) == 5, ev  # libc, UDP, TCP, upper case, the TCP stream's: one event per query
    assert all(d["decision"] == "permitted" and d["queryType"] == "A" and d["answerCount"] == 1 and
               d["reasonCode"] == "allowlist_match" for d in ev), ev


def test_refused_names_never_reach_the_upstream(world):
    r, out = probe(world, "evil.example", "tcp:evil.example", "a.example.evil.example", "example")
    for k in ("evil.example", "tcp:evil.example", "a.example.evil.example", "example"):
        assert out[k]["rcode"] == "REFUSED" and out[k]["id"], (k, out)
        assert out[k]["s"] < 1.0, out  # answered at once, not after asking anyone
    asked = asked_upstream(world)
    assert not any("evil" in l for l in asked), asked
    ev = [d for d in of_type(r, "observability.v1.dns_query") if d["decision"] == "refused"]
    assert sorted(d["queryName"] for d in ev) == sorted(["evil.example", "evil.example", "a.example.evil.example",
                                                         "example", "evil.example"])  # the last: the TCP stream's
    assert all("upstreamResolverId" not in d and "answerCount" not in d for d in ev)


def test_wildcard_matches_below_never_the_apex(world):
    r, out = probe(world, "x.wild.example", "a.b.wild.example", "wild.example", "xwild.example")
    assert out["x.wild.example"]["answer"] == [world.a2]
    assert out["a.b.wild.example"]["answer"] == [world.a2]
    assert out["wild.example"]["rcode"] == "REFUSED"
    assert out["xwild.example"]["rcode"] == "REFUSED"
    assert "wild.example A" not in asked_upstream(world)


def test_silent_upstream_gives_servfail_after_two_seconds(world):
    r, out = probe(world, "silent.example", "tcp:silent.example")
    for k in ("silent.example", "tcp:silent.example"):
        assert out[k]["rcode"] == "SERVFAIL" and out[k]["id"], out
        assert 1.8 <= out[k]["s"] < 3.5, out
    ev = [d for d in of_type(r, "observability.v1.dns_query") if d["queryName"] == "silent.example"]
    assert [d["decision"] for d in ev] == ["servfail", "servfail"]
    assert all(d["reasonCode"] == "upstream_timeout" for d in ev)


def test_malformed_queries_are_dropped(world):
    r, out = probe(world)
    assert out["garbage"] == "dropped" and out["response"] == "dropped", out
    assert out["tcp_stream"] == [[True, "NOERROR"], [True, "REFUSED"], "closed"], out
    ev = [d for d in of_type(r, "observability.v1.dns_query") if d["decision"] == "malformed"]
    assert len(ev) == 3 and all(d["reasonCode"] == "malformed_query" for d in ev), ev


def test_declared_resolver_is_used_and_named(world):
    spec = spec_for("a.example")
    spec["spec"]["authority"]["dnsAuthority"] = {
        "resolvers": [{"resolverId": "world-dns", "protocol": "do53-udp", "address": "203.0.113.53:53"}]}
    spec["spec"]["authority"]["dnsAuthority"]["resolvers"][0]["address"] = f"{world.dns_addr}:53"
    # CELLOS_DNS_UPSTREAM points nowhere: the declared resolver wins.
    r = world.run(spec, {"CELLOS_DNS_UPSTREAM": "192.0.2.99:53"})
    assert r.rc == 0, r
    out = json.loads(r.out.strip().splitlines()[-1])
    assert out["a.example"]["answer"] == [world.a1]
    ev = [d for d in of_type(r, "observability.v1.dns_query") if d["queryName"] == "a.example"]
    assert ev and all(d["upstreamResolverId"] == "world-dns" for d in ev), ev


def test_rebinding_answer_is_not_added(world):
    # The answer for rebind.example holds loopback and cloud metadata next to a
    # public address: only the public one joins the rule's set (in both tables).
    c = world.start(with_authority(spec_for("rebind.example", hold=5)))
    try:
        ev = wait_for(c, lambda e: e["type"].endswith("dns_query") and e["data"]["queryName"] == "rebind.example")
        table = c.wait_event("lifecycle.v1.started")["data"]["isolation"]["network"]["hostTable"]
        listing = world.in_host("nft", "list", "set", "inet", table, "egress_2").stdout
    finally:
        r = c.finish()
    assert ev["data"]["decision"] == "permitted" and ev["data"]["reasonCode"] == "rebind_rejected", ev
    assert ev["data"]["answerCount"] == 3
    assert world.a2 in listing, listing
    assert "127.0.0.1" not in listing and "169.254.169.254" not in listing, listing
    out = json.loads(r.out.strip().splitlines()[-1])
    # Relayed as it came: the cell sees the answer; it just cannot reach those addresses.
    assert out["rebind.example"]["answer"] == sorted(["127.0.0.1", "169.254.169.254", world.a2])


def test_answer_extends_the_set_so_the_address_becomes_reachable(world):
    # *.wild.example cannot be resolved at network_scope: its set starts empty,
    # and only the proxy's answer makes x.wild.example's address reachable.
    l7_servers(world, new_dir("l7"), world.a2)
    code = r'''
import socket, json, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
def hello(ip):
    try:
        with ctx.wrap_socket(socket.create_connection((ip, 443), timeout=2), server_hostname="x.wild.example") as t:
            t.sendall(b"hi\n")
            return t.recv(100).decode().strip()
    except OSError as e:
        return type(e).__name__
import time
before = hello(sys.argv[1])
ip = socket.gethostbyname("x.wild.example")
t0 = time.monotonic()
after = hello(ip)
print(json.dumps([before, ip, after, time.monotonic() - t0]))
'''
    spec = make_spec(py_argv(code, world.a2), egress=[{"host": "*.wild.example", "port": 443}])
    r = world.run(spec)
    assert r.rc == 0, r
    before, ip, after, took = json.loads(r.out)
    assert [before, ip, after] == ["TimeoutError", world.a2, "tls x.wild.example"], r.out
    # No first SYN was dropped (its retransmission would take a second). The
    # proxy adds the addresses before it relays the answer; this workload is
    # too slow to hit the other order's window reliably, so this is a floor.
    assert took < 0.9, r.out


def test_ldns_is_loaded_only_when_a_cell_resolves():
    # libldns brings libssl and libcrypto: every supervisor start would pay for
    # loading them. It is dlopen()ed by the DNS proxy and network_scope instead.
    from conftest import SUPERVISOR
    libs = subprocess.run(["ldd", str(SUPERVISOR)], capture_output=True, text=True, check=True).stdout
    assert "libldns" not in libs and "libssl" not in libs and "libcrypto" not in libs, libs


# Five UDP queries for one allowed name, timed one by one, from a fresh cell.
FIRST_QUERIES = r'''
import json, socket, time
import dns.message
gw = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
wire = dns.message.make_query("a.example", "A").to_wire()
def timed():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    t0 = time.perf_counter()
    s.sendto(wire, (gw, 53))
    s.recv(4096)
    s.close()
    return time.perf_counter() - t0
print(json.dumps([timed() for _ in range(5)]))
'''


def library_load_seconds() -> float:
    """What loading libldns (with libssl and libcrypto) costs a fresh process on this host."""
    code = "import ctypes, time; t = time.perf_counter(); ctypes.CDLL('libldns.so.3'); print(time.perf_counter() - t)"
    return statistics.median(float(subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(3))


def test_the_first_query_does_not_wait_for_the_dns_library(world):
    # A cell with DNS-name rules gets the proxy's library loaded while its
    # workload starts. Loaded at the first query instead, it made that query
    # wait as long as the load (~3.5 ms on this host kind: ten queries' worth)
    # on top of what else a first query costs (the neighbours' resolution, the
    # first answer's addresses added to the nft sets: ~2 ms here).
    # The best of up to three cells: one query is a few hundred microseconds,
    # and a busy host can stall any one of them by as much; a first query
    # that waits for the load waits in every cell.
    load = library_load_seconds()
    seen = []
    for _ in range(3):
        r = world.run(make_spec(py_argv(FIRST_QUERIES), egress=EGRESS))
        assert r.rc == 0, r
        first, *rest = json.loads(r.out.strip().splitlines()[-1])
        seen.append((first, statistics.median(rest)))
        if first - statistics.median(rest) < load:
            break
    else:
        raise AssertionError(f"the first query waited in every cell: {seen}, the library's load {load}")
