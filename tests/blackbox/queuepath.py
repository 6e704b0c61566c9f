"""Whether this kernel lets the SNI/Host check decide on the queue (l7queue.h),
asked the way the supervisor asks it, so that a test knows which of its two
paths a gateway cell takes: "queue" (the supervisor logs "...: allowed on queue
N") or "proxy" (it logs "...: the SNI/Host check proxies 443/80" and splices).

The supervisor takes the queue when all of these hold, and the probe (run in a
network namespace, by default a throwaway one of its own: never the real
host's) tries each the same way, in raw netlink like the product:
* the queue bind (egress_proxy.c -> l7queue_open): NFQNL_MSG_CONFIG BIND with
  copy-packet params on a number from L7QUEUE_FIRST, trying on while numbers
  answer EPERM/EBUSY (taken), at most L7QUEUE_TRIES of them;
* ctnetlink (l7queue_open): a conntrack GET of a flow that cannot exist
  answers ENOENT (ctnetlink sets the flow's mark after the decision);
* the queue rule (gateway.c -> gateway_build): an inet table with a forward
  filter chain and a rule "ct mark != ALLOW, then nft_compat's xt NFQUEUE
  target, revision 3, no bypass" (nft_build.c nftx_nfqueue), in one nf_tables
  batch; the probe's table is deleted again.
A kernel without nfnetlink_queue, ctnetlink, nft_compat or xt_NFQUEUE answers
one of these with an error, and the supervisor then proxies.

`probe(netns)` probes a namespace the caller owns (a test world's "host", where
another socket may hold every queue number: the same "no queue" the supervisor
meets there); `kernel_path()` is the answer for this kernel, probed once per
session in a namespace created and deleted here."""
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

PY = "/usr/bin/python3"

SRC = Path(__file__).resolve().parents[2] / "src" / "isolate"


def _define(header: str, name: str) -> int:
    """A numeric #define of the product's header, so the probe asks what the supervisor asks."""
    m = re.search(rf"^#define {name} (\w+?)u?$", (SRC / header).read_text(), re.M)
    assert m, f"{name} not in {header}"
    return int(m.group(1), 0)


L7QUEUE_FIRST, L7QUEUE_LAST, L7QUEUE_TRIES = (_define("l7queue.h", n)
                                              for n in ("L7QUEUE_FIRST", "L7QUEUE_LAST", "L7QUEUE_TRIES"))
GATEWAY_CT_ALLOW = _define("gateway.h", "GATEWAY_CT_ALLOW")

QUEUE_LINE = "allowed on queue"
PROXY_LINE = "the SNI/Host check proxies 443/80"

PROBE = r"""
import errno, json, os, socket, struct, sys
FIRST, LAST, TRIES, ALLOW = (int(a) for a in sys.argv[1:5])
TARGET = sys.argv[5]
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL = 1, 4, 0x400, 0x200
NESTED = 0x8000

def attr(t, payload):
    return struct.pack("HH", 4 + len(payload), t) + payload + b"\0" * (-len(payload) % 4)
def nest(t, *attrs):
    return attr(t | NESTED, b"".join(attrs))
def s(t, text):
    return attr(t, text.encode() + b"\0")
def be32(t, v):
    return attr(t, struct.pack(">I", v))
def msg(mtype, flags, seq, family, res_id, body):
    payload = struct.pack("BBH", family, 0, socket.htons(res_id)) + body
    return struct.pack("IHHII", 16 + len(payload), mtype, NLM_F_REQUEST | flags, seq, 0) + payload

def call(sock, msgs):
    # The first error among the acks of `msgs` (each asked NLM_F_ACK), else 0.
    sock.send(b"".join(msgs))
    want = {struct.unpack_from("I", m, 8)[0] for m in msgs if struct.unpack_from("H", m, 6)[0] & NLM_F_ACK}
    while want:
        buf = sock.recv(65536)
        off = 0
        while off + 16 <= len(buf):
            ln, typ, _, seq, _ = struct.unpack_from("IHHII", buf, off)
            if typ == 2:  # NLMSG_ERROR
                err = struct.unpack_from("i", buf, off + 16)[0]
                if err:
                    return err
                want.discard(seq)
            off += (ln + 3) & ~3
    return 0

def netfilter():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    sock.bind((0, 0))
    return sock

def bind_queue(sock):
    # NFQNL_MSG_CONFIG (subsys 3): BIND for AF_INET and the whole packet.
    start, span, rc = os.getpid() % (LAST - FIRST + 1), LAST - FIRST + 1, -errno.EPERM
    for k in range(TRIES):
        if rc not in (-errno.EPERM, -errno.EBUSY):
            break
        n = FIRST + (start + k) % span
        body = attr(1, struct.pack("BxH", 1, socket.htons(socket.AF_INET))) + attr(2, struct.pack(">IB", 0xFFFF, 2))
        if (rc := call(sock, [msg(3 << 8 | 2, NLM_F_ACK, n, 0, n, body)])) == 0:
            return n, "bound queue %d" % n
    return None, "binding an nfnetlink_queue: " + os.strerror(-rc)

def ctnetlink(sock):
    # IPCTNL_MSG_CT_GET (subsys 1) of a TCP flow that cannot exist, 0.0.0.0:0 -> 0.0.0.0:0.
    tup = nest(1, nest(1, attr(1, bytes(4)), attr(2, bytes(4))),
               nest(2, attr(1, bytes([6])), attr(2, bytes(2)), attr(3, bytes(2))))
    rc = call(sock, [msg(1 << 8 | 1, NLM_F_ACK, 1, socket.AF_INET, 0, tup)])
    return rc in (0, -errno.ENOENT), "ctnetlink: " + ("answers" if rc in (0, -errno.ENOENT) else os.strerror(-rc))

def queue_rule(num):
    # One nf_tables batch (subsys 10): table, base chain, the queue rule.
    sock = netfilter()
    table = "cellos-qprobe-%d" % os.getpid()
    NFT, INET = 10 << 8, 1
    def batch(*body):
        seq = [100]
        def m(t, flags, b):
            seq[0] += 1
            return msg(NFT | t, flags | NLM_F_ACK, seq[0], INET, 0, b)
        msgs = [f(m) for f in body]
        return [msg(0x10, 0, 100, 0, 10, b"")] + msgs + [msg(0x11, 0, 200, 0, 10, b"")]
    expr = lambda name, *a: nest(1, s(1, name), nest(2, *a))
    info = struct.pack("HHH", num, 1, 0) + bytes(2)  # xt_NFQ_info_v3, XT_ALIGNed; flags 0: no bypass
    rule = nest(4, expr("ct", be32(1, 1), be32(2, 3)),                     # reg 1 <- ct mark
                   expr("cmp", be32(1, 1), be32(2, 1), nest(3, attr(1, struct.pack("I", ALLOW)))),  # !=
                   expr("target", s(1, TARGET), be32(2, 3), attr(3, info)))
    rc = call(sock, batch(lambda m: m(0, NLM_F_CREATE | NLM_F_EXCL, s(1, table)),
                          lambda m: m(3, NLM_F_CREATE, s(1, table) + s(3, "forward") +
                                      nest(4, be32(1, 2), be32(2, 0)) + be32(5, 1) + s(7, "filter")),
                          lambda m: m(6, NLM_F_CREATE, s(1, table) + s(2, "forward") + rule)))
    if rc == 0:
        call(sock, batch(lambda m: m(2, 0, s(1, table))))
    sock.close()
    return rc == 0, "queue rule: " + ("accepted" if rc == 0 else os.strerror(-rc))

out = {}
sock = netfilter()
num, out["bind"] = bind_queue(sock)
ok_ct, out["ctnetlink"] = ctnetlink(sock)
ok_rule, out["rule"] = queue_rule(num or FIRST)
out["path"] = "queue" if num and ok_ct and ok_rule else "proxy"
sock.close()
print(json.dumps(out))
"""


def probe(netns: str, target: str = "NFQUEUE") -> dict:
    """The path a supervisor in `netns` would take now, and what each step
    answered: {"path": "queue"|"proxy", "bind": ..., "ctnetlink": ..., "rule": ...}.
    `target`: the xt target the rule names (another name: a kernel without
    that target, for a test of the probe)."""
    args = [str(v) for v in (L7QUEUE_FIRST, L7QUEUE_LAST, L7QUEUE_TRIES, GATEWAY_CT_ALLOW)] + [target]
    p = subprocess.run(["ip", "netns", "exec", netns, PY, "-c", PROBE, *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def fresh_probe(target: str = "NFQUEUE") -> dict:
    """probe() in a network namespace created for it and deleted after."""
    ns = f"cqp{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        return probe(ns, target)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True, capture_output=True)


@functools.lru_cache(maxsize=None)
def kernel_probe() -> dict:
    """fresh_probe(), once per session."""
    return fresh_probe()


def kernel_path() -> str:
    """"queue" or "proxy": how this kernel's gateway cells decide TLS/HTTP."""
    return kernel_probe()["path"]


def assert_path(err: str, path: str, dest: str | None = None) -> None:
    """The supervisor's log `err` says it took `path`; for the queue, an allowed
    connection to `dest` (addr:port) was decided on it."""
    if path == "queue":
        assert (f"SNI check: {dest}: {QUEUE_LINE}" if dest else QUEUE_LINE) in err, err
        assert "proxies 443/80" not in err, err
    else:
        assert PROXY_LINE in err and QUEUE_LINE not in err, err
