"""Driver of bench/bench-dnsproxy.sh: the test world of tests/blackbox/networld.py
(network namespaces: the supervisor in a "host" netns, DNS/HTTP servers of
tests/blackbox/proxyworld.py in a "world" netns), and one gateway cell per
measurement.

1. DNS: from inside a cell, N UDP queries for an allowed name through the DNS proxy,
   interleaved with N queries sent straight to the same upstream (allowed by an
   egress rule for its address, so only the gateway's routing is in the path); the
   difference of the medians is what the proxy adds per query.
2. Throughput: a 100 MB HTTP download (curl, server with sendfile) from inside the
   cell through the SNI/Host check (port 80: the Host header read on the queue, then
   the flow forwarded by the kernel), against
   the same download on port 8080 (the gateway alone: forwarded and masqueraded);
   without the product: the same download from a "plain" netns routed through the
   "host" netns by a plain veth (the same two namespaces' path, forwarding and no
   table), from the same plain netns with the rules SPEC §6.1 and §6.4 ask for written
   by hand with nft (the cell's output chain with its `ct state established` accept in
   the plain netns, and the host's forward filter and masquerade: conntrack in both
   namespaces, NAT in the host), from the plain netns with that cell-side chain alone,
   and from the "host" netns itself (one hop less). HTTP_REPS rounds (a
   cell per round; the cell's two ports and the transfers without the product in
   an order that alternates from round to round); medians, and the median of the
   rounds' own ratios with its 95% interval (the host's speed drifts between
   rounds, so the ratio within a round is the steadier figure). Every transfer's
   throughput is its bytes over its time from the connection on: curl's name lookup
   (the cell's goes through the DNS proxy, measured in 1.; the transfers without the
   product use the address) is left out, and reported on its own.
3. TLS throughput: a 100 MB download over TLS (Python's ssl in the cell; the
   world's TLS server answers "bulk N" with N bytes) through the SNI check on
   443 (decided on the queue, then forwarded by the kernel: l7queue.h), against
   the same download on 8443, an address rule (the gateway alone), and from the
   plain netns (no product); REPS interleaved rounds.
Prints one JSON object."""
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "blackbox"))
import conftest  # noqa: E402  (helpers only; CELLOS_SUPERVISOR picks the binary)
from conftest import make_spec, new_dir, py_argv  # noqa: E402
from networld import NetWorld, sh  # noqa: E402
from proxyworld import dns_server, l7_servers  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
HTTP_REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 4 * REPS
SIZE = 100_000_000

DNS_PROBE = r'''
import json, socket, sys, time
import dns.message
n = int(sys.argv[1])
gw = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
def timed(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 53))
    wire = dns.message.make_query("a.example", "A").to_wire()
    t0 = time.perf_counter_ns()
    s.send(wire)
    s.recv(4096)
    t = time.perf_counter_ns() - t0
    s.close()
    return t
for _ in range(50):
    timed(gw), timed(sys.argv[2])
proxy, direct = [], []
for _ in range(n):
    proxy.append(timed(gw))
    direct.append(timed(sys.argv[2]))
print(json.dumps({"proxy": proxy, "direct": direct}))
'''

# In the cell: one round of both ports (a cell per round: the driver interleaves
# the rounds with the transfers without the product).
CURL = r'''
import json, subprocess, sys
size = sys.argv[1]
out = {}
for port in sys.argv[2:]:
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_namelookup} %{time_total} %{size_download}",
                        f"http://a.example:{port}/bulk?n={size}"], capture_output=True, text=True, check=True)
    lookup, total, got = r.stdout.split()
    assert int(got) == int(size), r.stdout
    out[port] = int(size) / (float(total) - float(lookup))
    out["lookup_" + port] = float(lookup)
print(json.dumps(out))
'''


# A 100 MB TLS download: bytes/s from the connection on (the name is resolved before).
TLS = r'''
import json, socket, ssl, sys, time
def get(host, port, size):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    buf = memoryview(bytearray(1 << 20))
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    t0 = time.perf_counter()
    with ctx.wrap_socket(socket.create_connection(addr, timeout=30), server_hostname="a.example") as t:
        t.sendall(f"bulk {size}\n".encode())
        n = 0
        while True:
            k = t.recv_into(buf)
            if not k:
                break
            n += k
    assert n == size, n
    return size / (time.perf_counter() - t0)
host, size = sys.argv[1], int(sys.argv[2])
print(json.dumps({p: get(host, int(p), size) for p in sys.argv[3:]}))
'''


def median_ci(xs):
    """The median of xs and a 95% interval of it (order statistics, normal approximation)."""
    v = sorted(xs)
    n = len(v)
    k = max(0, int(n / 2 - 0.98 * n ** 0.5))
    return statistics.median(v), v[k], v[min(n - 1, n - 1 - k)]


def tls(ns, addr, port):
    r = sh("ip", "netns", "exec", ns, "/usr/bin/python3", "-c", TLS, addr, str(SIZE), str(port))
    return json.loads(r.stdout)[str(port)]


def curl(ns, url):
    r = sh("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w",
           "%{time_namelookup} %{time_total} %{size_download}", url)
    lookup, total, got = r.stdout.split()
    assert int(got) == SIZE, r.stdout
    return SIZE / (float(total) - float(lookup))


def plain_netns(w, ns):
    """A netns routed through the test host by a plain veth: no product on the path."""
    a, b = w.hveth.replace("gh", "ph"), w.hveth.replace("gh", "pp")
    net = w.prefix.split(".")
    pre = f"10.{(int(net[1]) + 1) % 250 + 5}.{net[2]}"
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", a, "netns", w.host, "type", "veth", "peer", "name", b, "netns", ns)
    sh("ip", "-n", w.host, "addr", "add", f"{pre}.1/24", "dev", a)
    sh("ip", "-n", ns, "addr", "add", f"{pre}.2/24", "dev", b)
    for n, dev in ((w.host, a), (ns, b), (ns, "lo")):
        sh("ip", "-n", n, "link", "set", dev, "up")
    sh("ip", "-n", ns, "route", "add", "default", "via", f"{pre}.1")
    sh("ip", "-n", w.world, "route", "add", f"{pre}.0/24", "via", w.host_addr)
    return a, f"{pre}.2"


# The rules of SPEC §6.1 (the cell's netns) and §6.4 (the host's table), written by
# hand for the plain netns: what the same path costs without the product.
HAND_HOST = """table inet benchhand {{
 chain forward {{
  type filter hook forward priority filter; policy accept;
  oifname "{dev}" ct state established,related accept
  oifname "{dev}" counter drop
  iifname "{dev}" ip saddr != {addr} counter drop
  iifname "{dev}" ct state established,related accept
  iifname "{dev}" ip daddr {world} tcp dport 8080 counter accept
  iifname "{dev}" counter drop
 }}
 chain postrouting {{
  type nat hook postrouting priority srcnat; policy accept;
  ip saddr {addr} oifname != "{dev}" masquerade
 }}
}}
"""
HAND_CELL = """table inet benchhand {{
 chain output {{
  type filter hook output priority filter; policy drop;
  oifname "lo" accept
  ct state established,related accept
  ip daddr {world} tcp dport 8080 counter accept
  counter drop
 }}
}}
"""


def with_tables(tables, fn):
    """fn() with the nft tables [(netns, text)] in place; removed again on every path."""
    made = []
    try:
        for ns, text in tables:
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)
            made.append(ns)
        return fn()
    finally:
        for ns in made:
            sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "benchhand", check=False)


def main():
    w = NetWorld()
    try:
        d = new_dir("bench")
        dns_server(w, d, {"a.example": [w.world_addr]})
        l7_servers(w, d, w.world_addr)
        egress = [{"host": "a.example", "port": 80}, {"host": "a.example", "port": 8080},
                  {"host": w.dns_addr, "port": 53, "protocol": "udp"}]
        tls_egress = [{"host": "a.example", "port": 443}, {"host": w.world_addr, "port": 8443}]
        r = w.run(make_spec(py_argv(DNS_PROBE, str(N), w.dns_addr), egress=egress), {"CELL_OS_USE_NOOP_SINK": "1"},
                  timeout=600)
        assert r.rc == 0, r
        t = json.loads(r.out)
        p, q = statistics.median(t["proxy"]) / 1e3, statistics.median(t["direct"]) / 1e3
        plain = w.host.replace("cgh", "cgp")
        load = [os.getloadavg()[0]]
        s = {"80": [], "8080": []}
        bare, routed, hand, hand_cell = [], [], [], []
        lookups = []  # the cell's curl: seconds to resolve a.example through the proxy
        t_s = {"443": [], "8443": []}
        t_plain = []
        try:
            pdev, paddr = plain_netns(w, plain)
            host_t = HAND_HOST.format(dev=pdev, addr=paddr, world=w.world_addr)
            cell_t = HAND_CELL.format(world=w.world_addr)

            def without_product(url):
                routed.append(curl(plain, url))
                hand.append(with_tables([(w.host, host_t), (plain, cell_t)], lambda: curl(plain, url)))
                hand_cell.append(with_tables([(plain, cell_t)], lambda: curl(plain, url)))
                bare.append(curl(w.host, url))

            for i in range(HTTP_REPS):
                ports = ["80", "8080"] if i % 2 == 0 else ["8080", "80"]
                url = f"http://{w.world_addr}:8080/bulk?n={SIZE}"
                if i % 4 >= 2:
                    without_product(url)
                r = w.run(make_spec(py_argv(CURL, str(SIZE), *ports), egress=egress), {"CELL_OS_USE_NOOP_SINK": "1"},
                          timeout=600)
                assert r.rc == 0, r
                got = json.loads(r.out)
                for k in s:
                    s[k].append(got[k])
                    lookups.append(got["lookup_" + k])
                if i % 4 < 2:
                    without_product(url)
                load.append(os.getloadavg()[0])
            for _ in range(REPS):
                # TLS: the check on the queue (443) and the gateway alone (8443)
                # in alternating order, then the plain netns.
                ports = ["443", "8443"] if len(t_plain) % 2 == 0 else ["8443", "443"]
                r = w.run(make_spec(py_argv(TLS, "a.example", str(SIZE), *ports), egress=tls_egress),
                          {"CELL_OS_USE_NOOP_SINK": "1"}, timeout=600)
                assert r.rc == 0, r
                got = json.loads(r.out)
                for k in t_s:
                    t_s[k].append(got[k])
                t_plain.append(tls(plain, w.world_addr, 8443))
                load.append(os.getloadavg()[0])
        finally:
            sh("ip", "netns", "del", plain, check=False)
        mb = lambda v: statistics.median(v) / 1e6  # noqa: E731
        gw_ratio = median_ci([g / p for g, p in zip(s["8080"], routed)])
        sni_ratio = median_ci([c / g for c, g in zip(s["80"], s["8080"])])
        hand_ratio = median_ci([h / p for h, p in zip(hand, routed)])
        hand_cell_ratio = median_ci([h / p for h, p in zip(hand_cell, routed)])
        gw_hand_ratio = median_ci([g / h for g, h in zip(s["8080"], hand)])
        print(json.dumps({
            "http_reps": HTTP_REPS,
            "gateway_vs_plain_netns_rounds": [round(x, 3) for x in gw_ratio],
            "sni_vs_gateway_rounds": [round(x, 3) for x in sni_ratio],
            "by_hand_vs_plain_netns_rounds": [round(x, 3) for x in hand_ratio],
            "by_hand_cell_chain_vs_plain_netns_rounds": [round(x, 3) for x in hand_cell_ratio],
            "gateway_vs_by_hand_rounds": [round(x, 3) for x in gw_hand_ratio],
            "lookup_ms_median": round(statistics.median(lookups) * 1e3, 2),
            "by_hand_MBps": round(mb(hand), 1), "by_hand_cell_chain_MBps": round(mb(hand_cell), 1),
            "dns_queries": N, "dns_proxy_median_us": round(p, 1), "dns_direct_median_us": round(q, 1),
            "dns_added_us": round(p - q, 1),
            "transfer_bytes": SIZE, "reps": REPS,
            "sni_check_MBps": round(mb(s["80"]), 1), "gateway_alone_MBps": round(mb(s["8080"]), 1),
            "plain_netns_MBps": round(mb(routed), 1), "no_product_MBps": round(mb(bare), 1),
            "sni_vs_gateway": round(mb(s["80"]) / mb(s["8080"]), 3),
            "sni_vs_plain_netns": round(mb(s["80"]) / mb(routed), 3),
            "gateway_vs_plain_netns": round(mb(s["8080"]) / mb(routed), 3),
            "sni_vs_no_product": round(mb(s["80"]) / mb(bare), 3),
            "tls_check_MBps": round(mb(t_s["443"]), 1), "tls_gateway_alone_MBps": round(mb(t_s["8443"]), 1),
            "tls_plain_netns_MBps": round(mb(t_plain), 1),
            "tls_check_vs_gateway": round(mb(t_s["443"]) / mb(t_s["8443"]), 3),
            "tls_check_vs_plain_netns": round(mb(t_s["443"]) / mb(t_plain), 3),
            "load_min": round(min(load), 1), "load_max": round(max(load), 1),
            "rounds": {"sni": [round(x / 1e6) for x in s["80"]], "gateway": [round(x / 1e6) for x in s["8080"]],
                       "plain": [round(x / 1e6) for x in routed], "host": [round(x / 1e6) for x in bare],
                       "by_hand": [round(x / 1e6) for x in hand],
                       "tls_check": [round(x / 1e6) for x in t_s["443"]],
                       "tls_gateway": [round(x / 1e6) for x in t_s["8443"]],
                       "tls_plain": [round(x / 1e6) for x in t_plain]},
        }))
    finally:
        w.close()
        shutil.rmtree(conftest._BASE, ignore_errors=True)


main()
