"""Driver of bench/bench-dnsproxy.sh: the test world of tests/blackbox/networld.py
(network namespaces: the supervisor in a "host" netns, DNS/HTTP servers of
tests/blackbox/proxyworld.py in a "world" netns), and one gateway cell per
measurement.

1. DNS: from inside a cell, N UDP queries for an allowed name through the DNS proxy,
   interleaved with N queries sent straight to the same upstream (allowed by an
   egress rule for its address, so only the gateway's routing is in the path); the
   difference of the medians is what the proxy adds per query.
2. Throughput: a 100 MB HTTP download (curl, server with sendfile) from inside the
   cell through the SNI/Host check (port 80: redirected, checked, spliced), against
   the same download on port 8080 (the gateway alone: forwarded and masqueraded);
   without the product: the same download from a "plain" netns routed through the
   "host" netns by a plain veth (the same two namespaces' path, forwarding and no
   table), and from the "host" netns itself (one hop less). HTTP_REPS rounds (a
   cell per round; the cell's two ports and the transfers without the product in
   an order that alternates from round to round); medians, and the median of the
   rounds' own ratios with its 95% interval (the host's speed drifts between
   rounds, so the ratio within a round is the steadier figure).
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
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
                        f"http://a.example:{port}/bulk?n={size}"], capture_output=True, text=True, check=True)
    speed, got = r.stdout.split()
    assert int(got) == int(size), r.stdout
    out[port] = float(speed)
print(json.dumps(out))
'''


# A 100 MB TLS download: MB/s (bytes / seconds from the first byte asked for).
TLS = r'''
import json, socket, ssl, sys, time
def get(host, port, size):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    buf = memoryview(bytearray(1 << 20))
    t0 = time.perf_counter()
    with ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname="a.example") as t:
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
    r = sh("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}", url)
    speed, got = r.stdout.split()
    assert int(got) == SIZE, r.stdout
    return float(speed)


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
        bare, routed = [], []
        t_s = {"443": [], "8443": []}
        t_plain = []
        try:
            plain_netns(w, plain)
            for i in range(HTTP_REPS):
                ports = ["80", "8080"] if i % 2 == 0 else ["8080", "80"]
                url = f"http://{w.world_addr}:8080/bulk?n={SIZE}"
                if i % 4 >= 2:
                    routed.append(curl(plain, url))
                    bare.append(curl(w.host, url))
                r = w.run(make_spec(py_argv(CURL, str(SIZE), *ports), egress=egress), {"CELL_OS_USE_NOOP_SINK": "1"},
                          timeout=600)
                assert r.rc == 0, r
                got = json.loads(r.out)
                for k in s:
                    s[k].append(got[k])
                if i % 4 < 2:
                    routed.append(curl(plain, url))
                    bare.append(curl(w.host, url))
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
        print(json.dumps({
            "http_reps": HTTP_REPS,
            "gateway_vs_plain_netns_rounds": [round(x, 3) for x in gw_ratio],
            "sni_vs_gateway_rounds": [round(x, 3) for x in sni_ratio],
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
                       "tls_check": [round(x / 1e6) for x in t_s["443"]],
                       "tls_gateway": [round(x / 1e6) for x in t_s["8443"]],
                       "tls_plain": [round(x / 1e6) for x in t_plain]},
        }))
    finally:
        w.close()
        shutil.rmtree(conftest._BASE, ignore_errors=True)


main()
