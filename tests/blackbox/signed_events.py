"""Helpers for the signed-event tests (SPEC §8.3–§9): keys, independent
verification of what the supervisor wrote, and cellctl.

The verification here deliberately shares no code with ours: Ed25519 through
PyNaCl (Debian's python3-nacl), HMAC-SHA256 through Python's hmac, RFC 8785
through conftest.canonical, SHA-256 through hashlib.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
from pathlib import Path

import nacl.signing

from conftest import SUPERVISOR, UUID4_RE, canonical, runs_in, verify_chain

CELLCTL = Path(os.environ.get("CELLOS_CELLCTL") or (SUPERVISOR.parent / "cellctl"))
ENVELOPE = "dev.cellos.events.signed_envelope.v1"
ZERO = "0" * 64


def b64url(raw: bytes, pad: bool = False) -> str:
    s = base64.urlsafe_b64encode(raw).decode()
    return s if pad else s.rstrip("=")


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Ed25519Key:
    def __init__(self, kid: str = "ops-2026-q4", seed: bytes | None = None):
        self.kid = kid
        self.sk = nacl.signing.SigningKey(seed) if seed else nacl.signing.SigningKey.generate()
        self.seed = bytes(self.sk)
        self.pk = bytes(self.sk.verify_key)

    def env(self, pad: bool = False) -> dict:
        return {"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": self.kid,
                "CELLOS_EVENT_SIGNING_KEY_BASE64": b64url(self.seed, pad)}

    def keys_json(self) -> str:
        return json.dumps({self.kid: b64url(self.pk)})

    def sign(self, msg: bytes) -> bytes:
        return self.sk.sign(msg).signature

    def check(self, msg: bytes, sig: bytes) -> None:
        nacl.signing.VerifyKey(self.pk).verify(msg, sig)  # raises BadSignatureError


class HmacKey:
    def __init__(self, key: bytes, kid: str = "hmac-1"):
        self.kid = kid
        self.key = key

    def env(self, pad: bool = False) -> dict:
        return {"CELLOS_EVENT_SIGNING": "hmac", "CELLOS_EVENT_SIGNING_KID": self.kid,
                "CELLOS_EVENT_SIGNING_KEY_BASE64": b64url(self.key, pad)}

    def sign(self, msg: bytes) -> bytes:
        return hmac.new(self.key, msg, hashlib.sha256).digest()

    def check(self, msg: bytes, sig: bytes) -> None:
        assert hmac.compare_digest(self.sign(msg), sig), "HMAC-SHA256 tag does not match"


def check_signed_log(lines: list[bytes], key) -> list[dict]:
    """Every line is a signed_envelope.v1 in canonical form whose signature (checked
    independently) covers the canonical inner event; wrappers repeat the inner
    source/subject/time; every run's chain holds on the inner events. Returns the
    inner events."""
    alg = "ed25519" if isinstance(key, Ed25519Key) else "hmac-sha256"
    inner_lines = []
    for n, line in enumerate(lines, 1):
        w = json.loads(line)
        assert canonical(w) == line, f"line {n}: the envelope is not in canonical form"
        assert set(w) == {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}, \
            f"line {n}: envelope attributes {sorted(w)}"
        assert w["type"] == ENVELOPE and w["specversion"] == "1.0" and w["datacontenttype"] == "application/json"
        d = w["data"]
        assert set(d) == {"algorithm", "signerKid", "signature", "event"}, f"line {n}: data keys {sorted(d)}"
        assert d["algorithm"] == alg and d["signerKid"] == key.kid
        assert "=" not in d["signature"] and "+" not in d["signature"] and "/" not in d["signature"]
        ev = d["event"]
        for attr in ("source", "subject", "time"):
            assert w[attr] == ev[attr], f"line {n}: envelope {attr} {w[attr]!r} != event's {ev[attr]!r}"
        assert UUID4_RE.match(w["id"]) and w["id"] != ev["id"]
        assert ev["type"].startswith("dev.cellos.events.cell.")
        c = canonical(ev)
        sig = unb64url(d["signature"])
        assert len(sig) == (64 if alg == "ed25519" else 32)
        key.check(c, sig)
        inner_lines.append(c)
    for run in runs_in(inner_lines).values():
        verify_chain(run)
    return [json.loads(c) for c in inner_lines]


def wrap(event: dict, key, wrapper_id: str = "00000000-0000-4000-8000-000000000000") -> bytes:
    """Sign an (inner) event the way the supervisor does; for forging test logs."""
    alg = "ed25519" if isinstance(key, Ed25519Key) else "hmac-sha256"
    w = {"specversion": "1.0", "id": wrapper_id, "source": event["source"], "type": ENVELOPE,
         "subject": event["subject"], "time": event["time"], "datacontenttype": "application/json",
         "data": {"algorithm": alg, "signerKid": key.kid, "signature": b64url(key.sign(canonical(event))),
                  "event": event}}
    return canonical(w)


def inner_type(ev: dict) -> str:
    """Short type of an event, looking through a signed envelope."""
    if ev.get("type") == ENVELOPE:
        ev = ev.get("data", {}).get("event", {})
    return ev.get("type", "").removeprefix("dev.cellos.events.cell.")


def wait_inner(run, short: str, timeout: float = 10) -> None:
    """Running.wait_event for signed logs: wait until an envelope carries `short`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(inner_type(e) == short for e in run.events()):
            return
        if run.proc.poll() is not None:
            break
        time.sleep(0.01)
    raise AssertionError(f"no {short} event within {timeout}s; rc={run.proc.poll()}")


def cellctl(*args, env: dict | None = None, input: bytes | None = None, timeout: float = 30):
    assert CELLCTL.is_file(), f"cellctl missing at {CELLCTL}: run make"
    full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    full.update(env or {})
    p = subprocess.run([str(CELLCTL), *map(str, args)], env=full, capture_output=True, timeout=timeout,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def problems(stdout: str, path) -> list[tuple[int, str]]:
    """cellctl verify's `PATH:LINE: message` lines as (line, message)."""
    out = []
    prefix = f"{path}:"
    for l in stdout.splitlines():
        assert l.startswith(prefix), f"unexpected output line {l!r}"
        rest = l[len(prefix):]
        num, _, msg = rest.partition(": ")
        out.append((int(num), msg))
    return out
