"""CELLOS_NETWORK=gateway (SPEC §6.4): declared egress that really works, and
nothing else. Every test builds its own world (networld.py): the supervisor runs in
a test netns that plays the host, the servers in another that plays the internet;
no packet leaves the machine and the real host's network is never touched."""
from __future__ import annotations

import base64
import os
import time
import uuid

import pytest

from conftest import PY, assert_no_residue, host_snapshot, make_spec, unique_id
from networld import NetWorld, gw_allocations


@pytest.fixture
def world():
    """A fresh test world; afterwards the real host is as it was (no table, mount,
    cgroup, netns, process or fd of ours left)."""
    before = host_snapshot()
    w = NetWorld()
    try:
        yield w
    finally:
        w.close()
    assert_no_residue(before)


# A workload that tries each "addr:port" of argv and prints one line per target:
# "addr:port ok <http body>" or "addr:port fail <errno>".
PROBE = r"""
import socket, sys
for t in sys.argv[1:]:
    a, p = t.rsplit(":", 1)
    if a == "GW":
        # the cell's default gateway: the host side of its veth
        for line in open("/proc/net/route").read().splitlines()[1:]:
            f = line.split()
            if f[1] == "00000000":
                a = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
    s = socket.socket(); s.settimeout(2)
    rc = s.connect_ex((a, int(p)))
    if rc == 0:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print(t, "ok", data.split(b"\r\n\r\n", 1)[-1].decode())
    else:
        print(t, "fail", rc)
    s.close()
"""


def probe(*targets: str) -> list[str]:
    return [PY, "-c", PROBE, *targets]


def outcome(r, target: str) -> str:
    for line in r.out.splitlines():
        if line.startswith(target + " "):
            return line.split(" ", 2)[1]
    raise AssertionError(f"no probe line for {target}: {r.out!r} {r.err!r}")


def inner(ev):
    return ev["data"]["event"] if ev.get("type", "").endswith("signed_envelope.v1") else ev


def counters(r) -> dict[str, int]:
    enf = r.event("observability.v1.network_enforcement")["data"]
    return {c["rule"]: c["packets"] for c in enf["ruleCounters"]}


def assert_gone(world: NetWorld, cell_id: str):
    """Nothing of the cell's gateway is left in the test host: veth, table, route, /30.
    The veth goes with the cell's netns, which the kernel tears down in the
    background once the cell is gone: it is given a few seconds."""
    deadline = time.monotonic() + 5
    while [l for l in world.links() if l.startswith("cellos-")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [l for l in world.links() if l.startswith("cellos-")], world.links()
    assert not [t for t in world.tables() if "cellos" in t], world.tables()
    assert not [r for r in world.routes() if "cellos-" in r], world.routes()
    assert gw_allocations(cell_id) == []


def test_declared_flow_reachable_undeclared_not(world):
    world.http_server(8080)
    world.http_server(8081)
    # Control: without the product both ports answer (from the test host itself).
    assert world.host_can_connect(world.world_addr, 8080)
    assert world.host_can_connect(world.world_addr, 8081)
    spec = make_spec(probe(f"{world.world_addr}:8080", f"{world.world_addr}:8081", f"{world.world_addr2}:8080"),
                     egress=[{"host": world.world_addr, "port": 8080, "protocol": "tcp"}])
    r = world.run(spec)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "ok"
    assert f"world 8080" in r.out
    assert outcome(r, f"{world.world_addr}:8081") == "fail"
    assert outcome(r, f"{world.world_addr2}:8080") == "fail"
    c = counters(r)
    assert c[f"ip daddr {world.world_addr} tcp dport 8080 accept"] >= 1, c
    assert c["drop"] >= 2, c  # the two denied attempts reached the drop rule (there is a route now)
    net = r.event("lifecycle.v1.started")["data"]["isolation"]["network"]
    assert net["mode"] == "gateway" and net["cellAddress"].startswith("100.96."), net
    assert net["hostInterface"].startswith("cellos-") and net["hostTable"].startswith("cellos-gw-"), net
    enf = r.event("observability.v1.network_enforcement")["data"]
    assert enf["nftRulesApplied"] is True
    assert_gone(world, spec["spec"]["id"])


def test_isolated_default_has_no_route(world):
    """CELLOS_NETWORK unset: the declared flow is documentation plus a filter."""
    world.http_server(8080)
    spec = make_spec(probe(f"{world.world_addr}:8080"), egress=[{"host": world.world_addr, "port": 8080}])
    r = world.run(spec, env={"CELLOS_NETWORK": None})
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "fail"
    assert "network" not in r.event("lifecycle.v1.started")["data"]["isolation"]


def test_cell_without_egress_keeps_isolated_netns(world):
    spec = make_spec(probe(f"{world.world_addr}:8080"))
    r = world.run(spec)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "fail"
    assert "network" not in r.event("lifecycle.v1.started")["data"]["isolation"]


def test_host_own_services_unreachable(world):
    """A rule as wide as 0.0.0.0/0:8080 still never reaches the host itself: not its
    address on the world side, not the gateway address (sshd, brokers, metrics)."""
    world.http_server(8080)
    # The host's own service listens on every address of the test host.
    world.http_server(8080, addr="0.0.0.0", ns=world.host, name="host-service")
    assert world.host_can_connect(world.host_addr, 8080)  # control: the service is up
    spec = make_spec(probe(f"{world.world_addr}:8080", f"{world.host_addr}:8080", "GW:8080", "GW:22"),
                     egress=[{"host": "0.0.0.0/0", "port": 8080}, {"host": "0.0.0.0/0", "port": 22}])
    r = world.run(spec)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "ok"
    assert outcome(r, f"{world.host_addr}:8080") == "fail"
    assert outcome(r, "GW:8080") == "fail"
    assert outcome(r, "GW:22") == "fail"
    assert "host-service" not in r.out


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "224.0.0.1", "100.96.0.5", "HOST"])
def test_denied_cidr_rule_refused_at_admission(world, host):
    host = world.host_addr if host == "HOST" else host
    spec = make_spec(["/usr/bin/true"], egress=[{"host": host, "port": 80}])
    r = world.run(spec)
    assert r.rc == 125, r
    assert "spec.authority.egressRules[0].host" in r.err and "CELLOS_EGRESS_DENY_CIDRS" in r.err, r.err
    assert not r.has("lifecycle.v1.started")
    assert_gone(world, spec["spec"]["id"])


def test_denied_resolver_refused_at_admission(world):
    spec = make_spec(["/usr/bin/true"], egress=[{"host": world.world_addr, "port": 80}])
    spec["spec"]["authority"]["dnsAuthority"] = {
        "hostnameAllowlist": ["api.world.test"],
        "resolvers": [{"resolverId": "meta", "protocol": "do53-udp", "address": "169.254.169.254:53"}]}
    r = world.run(spec)
    assert r.rc == 125, r
    assert "spec.authority.dnsAuthority.resolvers[0].address" in r.err and "CELLOS_EGRESS_DENY_CIDRS" in r.err


def test_operator_deny_list(world):
    """CELLOS_EGRESS_DENY_CIDRS replaces the default list: a world address denied by
    the operator is refused, one it does not list runs."""
    spec = make_spec(["/usr/bin/true"], egress=[{"host": world.world_addr, "port": 80}])
    r = world.run(spec, env={"CELLOS_EGRESS_DENY_CIDRS": f"127.0.0.0/8, {world.prefix}.0/24"})
    assert r.rc == 125 and "CELLOS_EGRESS_DENY_CIDRS" in r.err, r
    r = world.run(spec, env={"CELLOS_EGRESS_DENY_CIDRS": "not-a-cidr"})
    assert r.rc == 125 and "CELLOS_EGRESS_DENY_CIDRS" in r.err and "not-a-cidr" in r.err, r


def test_bad_subnet_and_network_values(world):
    spec = make_spec(["/usr/bin/true"], egress=[{"host": world.world_addr, "port": 80}])
    for env, needle in (({"CELLOS_CELL_SUBNET": "10.0.0.0/8"}, "/16 to /29"),
                        ({"CELLOS_CELL_SUBNET": "fd00::/64"}, "not an IPv4 CIDR"),
                        ({"CELLOS_NETWORK": "bridge"}, "expected isolated, gateway"),
                        ({"CELLOS_DNS_UPSTREAM": "10.0.0.1"}, "not ip:port"),
                        ({"CELLOS_SUBPROCESS_UNSHARE": "pid,mnt"}, "private network namespace")):
        r = world.run(spec, env=env)
        assert r.rc == 125, (env, r)
        var = [k for k in env if k in r.err]
        assert var and needle in r.err, (env, r.err)


def test_forwarding_off_is_125(world):
    world.set_forwarding(False)
    spec = make_spec(["/usr/bin/true"], egress=[{"host": world.world_addr, "port": 80}])
    r = world.run(spec)
    assert r.rc == 125, r
    assert "net.ipv4.ip_forward" in r.err, r.err
    # never changed by the supervisor
    assert world.in_host("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert_gone(world, spec["spec"]["id"])


def test_two_concurrent_cells_get_distinct_links(world):
    world.http_server(8080)
    a, b = unique_id("gwa"), unique_id("gwb")
    runs = []
    for cid in (a, b):
        spec = make_spec([PY, "-c", "import time,urllib.request;time.sleep(1.5);"
                          f"print(urllib.request.urlopen('http://{world.world_addr}:8080/',timeout=3).read().decode())"],
                         id=cid, egress=[{"host": world.world_addr, "port": 8080}])
        runs.append(world.start(spec))
    nets = [r.wait_event("lifecycle.v1.started")["data"]["isolation"]["network"] for r in runs]
    results = [r.finish() for r in runs]
    for res in results:
        assert res.rc == 0 and "world 8080" in res.out, res
    assert nets[0]["cellAddress"] != nets[1]["cellAddress"]
    assert nets[0]["hostInterface"] != nets[1]["hostInterface"]
    assert nets[0]["hostTable"] != nets[1]["hostTable"]
    # distinct /30s: the network parts differ
    n = [int.from_bytes(bytes(map(int, x["cellAddress"].split("."))), "big") & ~3 for x in nets]
    assert n[0] != n[1]
    assert_gone(world, a)
    assert_gone(world, b)


def test_ttl_leaves_nothing(world):
    spec = make_spec(["/usr/bin/sleep", "30"], ttl=2, egress=[{"host": world.world_addr, "port": 80}])
    r = world.run(spec)
    assert r.rc == 124, r
    assert r.has("lifecycle.v1.started")
    assert_gone(world, spec["spec"]["id"])


def test_sigkilled_supervisor_is_swept_by_the_next(world):
    cid = unique_id("gwkill")
    spec = make_spec(["/usr/bin/sleep", "30"], id=cid, egress=[{"host": world.world_addr, "port": 80}])
    run = world.start(spec)
    net = run.wait_event("lifecycle.v1.started")["data"]["isolation"]["network"]
    assert net["hostTable"] in world.tables()
    run.sigkill()
    # The cell died with its supervisor (and its veth with its netns) ...
    deadline = time.monotonic() + 10
    while net["hostInterface"] in world.links() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert net["hostInterface"] not in world.links()
    # ... but the host table and the /30 need the next supervisor.
    assert net["hostTable"] in world.tables()
    assert gw_allocations(cid)
    r = world.run(make_spec(["/usr/bin/true"]))
    assert r.rc == 0, r
    assert_gone(world, cid)


def test_sigterm_cleans_up(world):
    cid = unique_id("gwterm")
    run = world.start(make_spec(["/usr/bin/sleep", "30"], id=cid, egress=[{"host": world.world_addr, "port": 80}]))
    run.wait_event("lifecycle.v1.started")
    run.proc.terminate()
    r = run.finish()
    assert r.rc == 128 + 15, r
    assert_gone(world, cid)


def run_id_env() -> tuple[str, dict]:
    rid = str(uuid.uuid4())
    return rid, {"CELLOS_RUN_ID": rid}


def test_nft_failure_never_fails_open(world):
    """The run's host table cannot be made (here: one of its name already exists):
    portable runs the cell without a veth and says nftRulesApplied false; the
    declared flow is then not reachable."""
    world.http_server(8080)
    cid = unique_id("gwnft")
    rid, env = run_id_env()
    world.in_host("nft", "add", "table", "inet", f"cellos-gw-{cid}-{rid[:8]}")
    try:
        spec = make_spec(probe(f"{world.world_addr}:8080"), id=cid,
                         egress=[{"host": world.world_addr, "port": 8080}])
        r = world.run(spec, env=env)
        assert r.rc == 0, r
        assert outcome(r, f"{world.world_addr}:8080") == "fail"
        enf = r.event("observability.v1.network_enforcement")["data"]
        assert enf["nftRulesApplied"] is False and "gateway table" in enf["nftError"], enf
        assert "network" not in r.event("lifecycle.v1.started")["data"]["isolation"]
        # no veth was ever made (the table the test made is the only one)
        assert not [l for l in world.links() if l.startswith("cellos-")]
        assert world.tables() == [f"cellos-gw-{cid}-{rid[:8]}"]
        assert gw_allocations(cid) == []
    finally:
        world.in_host("nft", "delete", "table", "inet", f"cellos-gw-{cid}-{rid[:8]}")


def test_hardened_nft_failure_is_125(world):
    world.http_server(8080)
    cid = unique_id("gwhard")
    rid, env = run_id_env()
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env.update({"CELLOS_DEPLOYMENT_PROFILE": "hardened", "CELLOS_EVENT_SIGNING": "ed25519",
                "CELLOS_EVENT_SIGNING_KID": "gw-test", "CELLOS_EVENT_SIGNING_KEY_BASE64": key})
    # Control: the same hardened cell runs, and reaches its declared flow, when nft works.
    ok = world.run(make_spec(probe(f"{world.world_addr}:8080"), egress=[{"host": world.world_addr, "port": 8080}]),
                   env={k: v for k, v in env.items() if k != "CELLOS_RUN_ID"})
    assert ok.rc == 0 and f"{world.world_addr}:8080 ok" in ok.out, ok
    world.in_host("nft", "add", "table", "inet", f"cellos-gw-{cid}-{rid[:8]}")
    try:
        r = world.run(make_spec(["/usr/bin/true"], id=cid, egress=[{"host": world.world_addr, "port": 80}]), env=env)
        assert r.rc == 125, r
        assert "hardened" in r.err and "gateway" in r.err, r.err
        failed = [inner(e) for e in r.events if inner(e)["type"].endswith("lifecycle.v1.failed")]
        assert failed and failed[0]["data"]["phase"] == "create", r.events
        assert not [l for l in world.links() if l.startswith("cellos-")]
        assert gw_allocations(cid) == []
    finally:
        world.in_host("nft", "delete", "table", "inet", f"cellos-gw-{cid}-{rid[:8]}")


# ---------------------------------------------------------------- DNS-name rules


def name_world(world: NetWorld):
    world.http_server(8080)
    world.http_server(8081)
    world.http_server(8080, addr=world.world_addr2, name="other-site")
    world.dns_server({"api.world.test": world.world_addr, "other.world.test": world.world_addr2,
                      "evil.world.test": "169.254.169.254"})


def resolver(world: NetWorld) -> dict:
    return {"hostnameAllowlist": [], "resolvers": [
        {"resolverId": "world", "protocol": "do53-udp", "address": f"{world.dns_addr}:53"}]}


def test_name_rule_resolved_through_the_declared_resolver(world):
    name_world(world)
    spec = make_spec(probe(f"{world.world_addr}:8080", f"{world.world_addr}:8081", f"{world.world_addr2}:8080"),
                     egress=[{"host": "api.world.test", "port": 8080}])
    spec["spec"]["authority"]["dnsAuthority"] = resolver(world)
    r = world.run(spec)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "ok"      # the name's address, declared port
    assert outcome(r, f"{world.world_addr}:8081") == "fail"    # the name's address, another port
    assert outcome(r, f"{world.world_addr2}:8080") == "fail"   # another site's address
    c = counters(r)
    assert c["ip daddr @egress_0 tcp dport 8080 accept"] >= 1, c
    assert c["drop"] >= 2, c


def test_name_rule_through_dns_upstream_and_rebinding_answer_dropped(world):
    name_world(world)
    spec = make_spec(probe(f"{world.world_addr2}:8080", f"{world.world_addr}:8080"),
                     egress=[{"host": "other.world.test", "port": 8080}, {"host": "evil.world.test", "port": 80},
                             {"host": "*.world.test", "port": 8080}])
    r = world.run(spec, env={"CELLOS_DNS_UPSTREAM": f"{world.dns_addr}:53"})
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr2}:8080") == "ok"
    # the wildcard's set starts empty: nothing reachable through it yet
    assert outcome(r, f"{world.world_addr}:8080") == "fail"
    assert "evil.world.test resolves to 169.254.169.254" in r.err, r.err
    c = counters(r)
    assert set(c) >= {"ip daddr @egress_0 tcp dport 8080 accept", "ip daddr @egress_1 tcp dport 80 accept",
                      "ip daddr @egress_2 tcp dport 8080 accept"}, c


def test_name_rule_through_the_host_resolver(world):
    """Neither a declared resolver nor CELLOS_DNS_UPSTREAM: the host's resolver, which
    in the test host is the world's DNS server (networld's resolv.conf)."""
    name_world(world)
    spec = make_spec(probe(f"{world.world_addr}:8080"), egress=[{"host": "api.world.test", "port": 8080}])
    r = world.run(spec)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "ok"


def test_unanswering_resolver_leaves_the_set_empty(world):
    world.http_server(8080)
    spec = make_spec(probe(f"{world.world_addr}:8080"), egress=[{"host": "api.world.test", "port": 8080}])
    spec["spec"]["authority"]["dnsAuthority"] = resolver(world)  # no DNS server started
    r = world.run(spec)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "fail"
    assert "api.world.test" in r.err and "starts empty" in r.err


# ---------------------------------------------------------------- gVisor


def test_gvisor_cell_uses_the_same_gateway(world):
    """runsc --network=sandbox over the same veth: the declared flow is reachable,
    an undeclared one and the host's own services are not (the host table)."""
    world.http_server(8080)
    world.http_server(8081)
    world.http_server(8080, addr="0.0.0.0", ns=world.host, name="host-service")
    cid = unique_id("gwgv")
    spec = make_spec(probe(f"{world.world_addr}:8080", f"{world.world_addr}:8081", f"{world.host_addr}:8080"),
                     id=cid, egress=[{"host": world.world_addr, "port": 8080}, {"host": "0.0.0.0/0", "port": 8080}])
    r = world.run(spec, env={"CELLOS_CELL_BACKEND": "gvisor"}, timeout=120)
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "ok"
    assert outcome(r, f"{world.world_addr}:8081") == "fail"
    assert outcome(r, f"{world.host_addr}:8080") == "fail"
    net = r.event("lifecycle.v1.started")["data"]["isolation"]["network"]
    assert net["mode"] == "gateway", net
    assert_gone(world, cid)


def test_gvisor_sandbox_network_needs_the_gateway(world):
    spec = make_spec(["/bin/true"], egress=[{"host": world.world_addr, "port": 80}])
    r = world.run(spec, env={"CELLOS_CELL_BACKEND": "gvisor", "CELLOS_GVISOR_NETWORK": "sandbox",
                             "CELLOS_NETWORK": "isolated"})
    assert r.rc == 125 and "CELLOS_GVISOR_NETWORK" in r.err and "CELLOS_NETWORK=gateway" in r.err, r


def test_all_links_in_use_is_125_and_parallel_cells_never_share_one(world):
    """A /29 holds two /30s: two live cells take both, distinct; a third is 125
    naming CELLOS_CELL_SUBNET, and leaves nothing behind."""
    env = {"CELLOS_CELL_SUBNET": "100.96.8.0/29"}
    ids = [unique_id("gwfull") for _ in range(2)]
    runs = [world.start(make_spec(["/usr/bin/sleep", "30"], id=i, egress=[{"host": world.world_addr, "port": 80}]),
                        env) for i in ids]
    try:
        nets = [r.wait_event("lifecycle.v1.started")["data"]["isolation"]["network"] for r in runs]
        assert {n["cellAddress"] for n in nets} == {"100.96.8.2", "100.96.8.6"}, nets
        third = unique_id("gwfull")
        r = world.run(make_spec(["/usr/bin/true"], id=third, egress=[{"host": world.world_addr, "port": 80}]), env)
        assert r.rc == 125, r
        assert "CELLOS_CELL_SUBNET" in r.err and "in use" in r.err, r.err
        assert gw_allocations(third) == []
    finally:
        for run in runs:
            run.proc.terminate()
            run.finish()
    for i in ids:
        assert_gone(world, i)


def test_failed_runs_leave_nothing(world):
    """Failure paths after the gateway was made: a workload that cannot be spawned
    (127), and a cell refused in create (argv[0] outside the allowed prefixes)."""
    a = unique_id("gwfail")
    r = world.run(make_spec(["/nonexistent/program"], id=a, egress=[{"host": world.world_addr, "port": 80}]))
    assert r.rc == 127, r
    assert_gone(world, a)
    b = unique_id("gwfail")
    r = world.run(make_spec(["/usr/bin/true"], id=b, egress=[{"host": world.world_addr, "port": 80}]),
                  env={"CELLOS_RUN_ARGV0_ALLOW_PREFIXES": "/opt/nothing"})
    assert r.rc == 125, r
    assert_gone(world, b)


def test_ipv6_rule_warns_and_is_not_routed(world):
    world.http_server(8080)
    spec = make_spec(probe(f"{world.world_addr}:8080"), egress=[{"host": world.world_addr, "port": 8080},
                                                              {"host": "2001:db8::7", "port": 443}])
    r = world.run(spec)
    assert r.rc == 0, r
    assert "2001:db8::7 is IPv6" in r.err and "IPv4 only" in r.err, r.err
    assert outcome(r, f"{world.world_addr}:8080") == "ok"
    assert "ip6 daddr 2001:db8::7 tcp dport 443 accept" in counters(r)


def test_without_a_user_namespace(world):
    """Without `user` the supervisor makes the cell's netns itself (and hands it
    over): the gateway works the same."""
    world.http_server(8080)
    cid = unique_id("gwnouser")
    spec = make_spec(probe(f"{world.world_addr}:8080", f"{world.world_addr}:8081"), id=cid,
                     egress=[{"host": world.world_addr, "port": 8080}])
    r = world.run(spec, env={"CELLOS_SUBPROCESS_UNSHARE": "net,mnt,pid,ipc,uts"})
    assert r.rc == 0, r
    assert outcome(r, f"{world.world_addr}:8080") == "ok"
    assert outcome(r, f"{world.world_addr}:8081") == "fail"
    assert_gone(world, cid)
