#!/bin/sh
# DNS proxy and SNI/Host check of a gateway cell (SPEC §6.4), in a world of network
# namespaces made for the run (bench/bench_dnsproxy.py says what is measured):
# the latency the DNS proxy adds per query (target < 0.5 ms) and the throughput of
# an allowed 100 MB transfer through the SNI/Host check against the gateway alone
# (target >= 90%) and the gateway alone against a plain netns, without and with
# the rules of SPEC §6.1/§6.4 written by hand (target >= 90%), over HTTP (port 80)
# and TLS (443), both decided on the queue and forwarded by the kernel. Writes the
# figures into bench/README.md between the DNSPROXY markers. Usage: bench/bench-dnsproxy.sh [QUERIES] [REPS] [HTTP_REPS]
#   (default 2000 5 4*REPS; REPS rounds of TLS, HTTP_REPS of HTTP; root)
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
out=$(CELLOS_SUPERVISOR=$PWD/build-bench/cellos-supervisor /usr/bin/python3 bench/bench_dnsproxy.py "${1:-2000}" "${2:-5}" ${3:+"$3"})
echo "$out"
host=$(uname -n)
kernel=$(uname -r)
cores=$(nproc)
now=$(date -u +%Y-%m-%d)
text=$(echo "$out" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print("* DNS proxy: median {dns_proxy_median_us} us per UDP query through the proxy against "
      "{dns_direct_median_us} us straight to the same upstream ({dns_queries} interleaved pairs from inside "
      "one cell): **{dns_added_us} us added** (target < 500 us).".format(**r))
g, s = r["gateway_vs_plain_netns_rounds"], r["sni_vs_gateway_rounds"]
print("* 100 MB HTTP download (curl, {http_reps} interleaved rounds, a cell per round, load average "
      "{load_min}-{load_max}), medians: through the SNI/Host check {sni_check_MBps} MB/s, gateway alone "
      "{gateway_alone_MBps} MB/s; without the product: a plain netns routed through the same host "
      "{plain_netns_MBps} MB/s, the host netns itself {no_product_MBps} MB/s. Median of the rounds\x27 own "
      "ratios [95% interval]: the check keeps **{s0}%** [{s1}-{s2}%] of the gateway alone, and the gateway alone "
      "**{g0}%** [{g1}-{g2}%] of the plain netns (target >= 90%); ratios of the medians: {p1}%, {p4}%, and the "
      "check {p3}% of the plain netns. Each transfer counts from its connection on; the cell\x27s curl first resolved "
      "the name through the DNS proxy in {lookup_ms_median} ms (median: the first lookup of a fresh process, glibc\x27s "
      "own start included).".format(
          p1=round(100 * r["sni_vs_gateway"]), p3=round(100 * r["sni_vs_plain_netns"]),
          p4=round(100 * r["gateway_vs_plain_netns"]), s0=round(100 * s[0]), s1=round(100 * s[1]),
          s2=round(100 * s[2]), g0=round(100 * g[0]), g1=round(100 * g[1]), g2=round(100 * g[2]), **r))
h, hc, gh = (r[k] for k in ("by_hand_vs_plain_netns_rounds", "by_hand_cell_chain_vs_plain_netns_rounds",
                             "gateway_vs_by_hand_rounds"))
print("* The same HTTP download from the plain netns with the rules SPEC \u00a76.1 and \u00a76.4 ask for written "
      "by hand with nft (no product: the cell\x27s output chain with its `ct state established` accept in the plain "
      "netns, the host\x27s forward filter and masquerade; conntrack in both namespaces): {by_hand_MBps} MB/s, "
      "**{h0}%** [{h1}-{h2}%] of the plain netns; the cell-side chain alone {c0}% [{c1}-{c2}%]. The gateway alone "
      "against that path built by hand: **{x0}%** [{x1}-{x2}%] (what the product adds to the rules the SPEC "
      "asks for).".format(h0=round(100 * h[0]), h1=round(100 * h[1]), h2=round(100 * h[2]), c0=round(100 * hc[0]),
                          c1=round(100 * hc[1]), c2=round(100 * hc[2]), x0=round(100 * gh[0]),
                          x1=round(100 * gh[1]), x2=round(100 * gh[2]), **r))
print("* 100 MB TLS download (Python ssl in the cell, {reps} rounds): through the SNI check on the queue "
      "{tls_check_MBps} MB/s, gateway alone (an address rule, port 8443) {tls_gateway_alone_MBps} MB/s, plain netns "
      "{tls_plain_netns_MBps} MB/s: the check keeps **{q1}%** of the gateway alone (target >= 90%) and {q2}% of the "
      "plain netns.".format(q1=round(100 * r["tls_check_vs_gateway"]), q2=round(100 * r["tls_check_vs_plain_netns"]),
                            **r))
k = 25
h = {n: r["rounds"][n][:k] for n in ("sni", "gateway", "plain", "host", "by_hand")}
print("  Rounds (MB/s; HTTP: the first {k} of {n}): check {sni}, gateway {gateway}, plain netns {plain}, host netns "
      "{host}, by hand {by_hand}; TLS: check {tls_check}, gateway {tls_gateway}, plain netns {tls_plain}.".format(
          k=min(k, r["http_reps"]), n=r["http_reps"], **{**r["rounds"], **h}))
')
/usr/bin/python3 - "$now" "$host" "$kernel" "$cores" "$text" <<'PY'
import re, sys
now, host, kernel, cores, text = sys.argv[1:]
p = "bench/README.md"
s = open(p).read()
block = f"<!-- DNSPROXY -->\nMeasured {now} on {host} ({kernel}, {cores} cores):\n\n{text}\n<!-- /DNSPROXY -->"
s = re.sub(r"<!-- DNSPROXY -->.*<!-- /DNSPROXY -->", lambda m: block, s, flags=re.S)
open(p, "w").write(s)
PY
