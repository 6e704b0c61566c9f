"""A small authoritative DNS server for the test world (dnspython), UDP and TCP.

Usage: dnsworld.py ADDR ZONE.json LOG READY
ZONE maps a name to a list of IPv4 addresses; a name listed under "_silent" is never
answered (an upstream that times out). Every question received is appended to LOG as
"name type" (so a test can assert what reached the upstream). Other names: NXDOMAIN.
"""
import json
import socket
import sys
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

addr, zone_path, log_path, ready = sys.argv[1:5]
zone = {k.lower().rstrip("."): v for k, v in json.load(open(zone_path)).items()}
silent = {n.lower().rstrip(".") for n in zone.pop("_silent", [])}
lock = threading.Lock()


def answer(wire: bytes):
    q = dns.message.from_wire(wire)
    question = q.question[0]
    name = question.name.to_text().rstrip(".").lower()
    with lock, open(log_path, "a") as f:
        f.write(f"{name} {dns.rdatatype.to_text(question.rdtype)}\n")
    if name in silent:
        return None
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    if name not in zone:
        r.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text_list(question.name, 30, "IN", "A", zone[name]))
    return r.to_wire()


def udp(s):
    while True:
        m, peer = s.recvfrom(65535)
        try:
            a = answer(m)
        except Exception:
            continue
        if a:
            s.sendto(a, peer)


def tcp_client(c):
    with c:
        while True:
            h = c.recv(2)
            if len(h) < 2:
                return
            n = int.from_bytes(h, "big")
            m = b""
            while len(m) < n:
                chunk = c.recv(n - len(m))
                if not chunk:
                    return
                m += chunk
            a = answer(m)
            if a:
                c.sendall(len(a).to_bytes(2, "big") + a)


def tcp(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind((addr, 53))
ts = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ts.bind((addr, 53))
ts.listen(16)
threading.Thread(target=udp, args=(us,), daemon=True).start()
threading.Thread(target=tcp, args=(ts,), daemon=True).start()
open(ready, "w").close()
threading.Event().wait()
