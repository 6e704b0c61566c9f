"""Signed events (SPEC §9): every event wrapped in a signed_envelope.v1 whose
signature an independent implementation accepts; the configuration's lenient and
strict behaviour; the key's hygiene."""
from __future__ import annotations

import os
import re

import pytest

from conftest import Running, make_spec, py_argv, run_cell, short_type
from signed_events import ENVELOPE, Ed25519Key, HmacKey, b64url, check_signed_log, wait_inner

# A default cell has a private netns, hence network_enforcement after the command.
NORMAL_RUN = ["observability.v1.network_policy", "lifecycle.v1.started", "observability.v1.process_spawned",
              "command.v1.completed", "observability.v1.network_enforcement", "compliance.v1.summary",
              "lifecycle.v1.destroyed"]


def inner_types(events):
    return [short_type(e) for e in events]


def test_ed25519_every_event_signed_and_chained():
    key = Ed25519Key()
    r = run_cell(make_spec(["/bin/echo", "hello"]), env=key.env())
    assert r.rc == 0, r.err
    assert r.out == "hello\n"
    assert all(e["type"] == ENVELOPE for e in r.events)
    inner = check_signed_log(r.lines, key)
    assert inner_types(inner) == NORMAL_RUN
    assert len({e["id"] for e in inner}) == len(inner)
    # The unsigned event attributes all live on the inner event.
    assert [e["sequence"] for e in inner] == [str(i) for i in range(1, len(inner) + 1)]
    for w in r.events:
        assert "sequence" not in w and "cellosprevdigest" not in w


def test_ed25519_key_with_padding_is_accepted():
    key = Ed25519Key(kid="padded")
    r = run_cell(make_spec(["/bin/true"]), env=key.env(pad=True))
    assert r.rc == 0, r.err
    check_signed_log(r.lines, key)


@pytest.mark.parametrize("length", [1, 5, 31, 32, 64, 65, 200])
def test_hmac_key_of_any_length(length):
    # RFC 2104: shorter than the block is zero-padded, longer is hashed first; both
    # must give what Python's hmac gives.
    key = HmacKey(os.urandom(length), kid=f"hmac-{length}")
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 3"]), env=key.env(pad=True))
    assert r.rc == 3, r.err
    inner = check_signed_log(r.lines, key)
    assert inner_types(inner) == NORMAL_RUN
    assert inner[-1]["data"]["outcome"] == "failed"


def test_short_hmac_key_warns():
    r = run_cell(make_spec(["/bin/true"]), env=HmacKey(b"short").env())
    assert r.rc == 0
    assert "CELLOS_EVENT_SIGNING_KEY_BASE64" in r.err and "shorter than the 32" in r.err


def test_failed_run_is_signed_too():
    key = Ed25519Key()
    r = run_cell(make_spec(["/bin/true"], secret_refs=["NOT_THERE"]), env=key.env())
    assert r.rc == 125
    inner = check_signed_log(r.lines, key)
    assert inner_types(inner) == ["observability.v1.network_policy", "lifecycle.v1.failed"]


def test_unsigned_by_default_and_when_off():
    for env in ({}, {"CELLOS_EVENT_SIGNING": "off"}):
        r = run_cell(make_spec(["/bin/true"]), env=env)
        assert r.rc == 0, r.err
        assert inner_types(r.events) == NORMAL_RUN


BAD_CONFIGS = [
    ({"CELLOS_EVENT_SIGNING": "rsa"}, "CELLOS_EVENT_SIGNING:"),
    ({"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KEY_BASE64": b64url(b"s" * 32)},
     "CELLOS_EVENT_SIGNING_KID:"),
    ({"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "k"}, "CELLOS_EVENT_SIGNING_KEY_BASE64:"),
    ({"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "k",
      "CELLOS_EVENT_SIGNING_KEY_BASE64": "not*base64url*at*all*but*long*enough*to*look*like*a*key"},
     "CELLOS_EVENT_SIGNING_KEY_BASE64:"),
    # standard base64 alphabet: '+' and '/' are not base64url
    ({"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "k",
      "CELLOS_EVENT_SIGNING_KEY_BASE64": "++++++++++++++++++++++++++++++++++++++++///="},
     "CELLOS_EVENT_SIGNING_KEY_BASE64:"),
    ({"CELLOS_EVENT_SIGNING": "ed25519", "CELLOS_EVENT_SIGNING_KID": "k",
      "CELLOS_EVENT_SIGNING_KEY_BASE64": b64url(b"sixteen byte key")}, "32-byte seed"),
    ({"CELLOS_EVENT_SIGNING": "hmac", "CELLOS_EVENT_SIGNING_KID": "bad kid",
      "CELLOS_EVENT_SIGNING_KEY_BASE64": b64url(b"k" * 32)}, "CELLOS_EVENT_SIGNING_KID:"),
]


def _secret_of(env):
    return env.get("CELLOS_EVENT_SIGNING_KEY_BASE64")


@pytest.mark.parametrize("env,names", BAD_CONFIGS)
def test_invalid_signing_config_warns_and_emits_unsigned(env, names):
    r = run_cell(make_spec(["/bin/true"]), env={**env, "CELLOS_LOG": "debug"})
    assert r.rc == 0, r.err
    assert names in r.err and "unsigned" in r.err, r.err
    assert inner_types(r.events) == NORMAL_RUN
    secret = _secret_of(env)
    if secret:
        assert secret not in r.err and secret.encode() not in r.raw


@pytest.mark.parametrize("env,names", BAD_CONFIGS)
@pytest.mark.parametrize("mode", [{"CELLOS_STRICT_CONFIG": "1"}, {"CELLOS_DEPLOYMENT_PROFILE": "hardened"}])
def test_invalid_signing_config_is_fatal_when_strict_or_hardened(env, names, mode):
    r = run_cell(make_spec(["/bin/true"]), env={**env, **mode})
    assert r.rc == 125, r.err
    assert names in r.err, r.err
    assert r.events == []
    # One line naming the variable (SPEC §1), never the key.
    assert len(r.err.strip().splitlines()) == 1, r.err
    secret = _secret_of(env)
    if secret:
        assert secret not in r.err


def test_hardened_requires_signing_and_counts_it_when_valid():
    spec = make_spec(["/bin/true"])
    r = run_cell(spec, env={"CELLOS_DEPLOYMENT_PROFILE": "hardened"})
    assert r.rc == 125
    assert "signed events (CELLOS_EVENT_SIGNING" in r.err, r.err
    assert "not available in this build" not in r.err.split("signed events")[1].split(";")[0]
    r = run_cell(spec, env={"CELLOS_DEPLOYMENT_PROFILE": "hardened", **Ed25519Key().env()})
    assert "signed events" not in r.err, r.err


def test_key_is_wiped_from_the_environment_and_never_logged():
    key = Ed25519Key()
    text = key.env()["CELLOS_EVENT_SIGNING_KEY_BASE64"]
    code = ("import os,sys,time; sys.stdout.write(repr(dict(os.environ))); sys.stdout.flush(); time.sleep(30)")
    run = Running(make_spec(py_argv(code), ttl=60), env={**key.env(), "CELLOS_LOG": "debug"})
    try:
        wait_inner(run, "observability.v1.process_spawned")
        environ = open(f"/proc/{run.proc.pid}/environ", "rb").read()
        assert b"CELLOS_EVENT_SIGNING_KID=" in environ  # we are looking at the right process
        assert text.encode() not in environ
        # The cell's processes (its init is a fork of the supervisor) do not carry it either.
        for pid in _descendants(run.proc.pid):
            try:
                assert text.encode() not in open(f"/proc/{pid}/environ", "rb").read()
            except (FileNotFoundError, ProcessLookupError):
                pass
        run.proc.send_signal(15)
        r = run.finish()
    finally:
        run.kill()
    assert text not in r.out, "the workload saw the key"
    assert "CELLOS_EVENT_SIGNING" not in r.out
    assert text not in r.err and text.encode() not in r.raw
    check_signed_log(r.lines, key)


def _descendants(pid: int) -> list[int]:
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = open(f"/proc/{name}/stat", "rb").read()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _memory_contains(pid: int, needles: list[bytes]) -> list[bytes]:
    """Which of `needles` occur anywhere in the readable memory of `pid`. Mappings
    over 1 GiB are skipped: only a sanitizer's shadow reservations are that large,
    and they hold no program data.

    Under ASan (the test build), the sanitizer runtime reads /proc/self/environ
    into an anonymous buffer of its own before main() runs, so a verbatim copy of
    the initial environment block exists that no code of ours can reach; a match
    inside such a copy (`...\\0NAME=value\\0`, outside [stack]) is not counted
    there. The plain build gets the full check (the bench and demo binaries)."""
    found = []
    maps_text = open(f"/proc/{pid}/maps").read()
    asan = "libasan" in maps_text
    overlap = max(len(n) for n in needles) + 64
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps_text.splitlines():
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            start, end, perms = int(m[1], 16), int(m[2], 16), m[3]
            if "r" not in perms or "[vsyscall]" in line or "[vvar]" in line or end - start > 1 << 30:
                continue
            tail = b""
            for off in range(start, end, 16 << 20):
                try:
                    mem.seek(off)
                    chunk = tail + mem.read(min(16 << 20, end - off))
                except OSError:
                    tail = b""
                    continue
                for n in needles:
                    i = chunk.find(n)
                    while i >= 0 and n not in found:
                        env_copy = (asan and "[stack]" not in line
                                    and chunk[:i].endswith(b"\0CELLOS_EVENT_SIGNING_KEY_BASE64="))
                        if not env_copy:
                            found.append(n)
                        i = chunk.find(n, i + 1)
                tail = chunk[-overlap:]
    return found


def test_cell_init_holds_no_copy_of_the_key():
    # The cell's init is a fork of the supervisor: the signing state is in pages
    # marked MADV_WIPEONFORK, and the decoded key and its text are wiped before
    # the fork, so neither the seed nor its text reaches the cell.
    key = Ed25519Key()
    text = key.env()["CELLOS_EVENT_SIGNING_KEY_BASE64"].encode()
    run = Running(make_spec(["/bin/sleep", "30"], ttl=60), env=key.env())
    try:
        wait_inner(run, "observability.v1.process_spawned")
        exe = os.readlink(f"/proc/{run.proc.pid}/exe")
        inits = [p for p in _descendants(run.proc.pid) if os.readlink(f"/proc/{p}/exe") == exe]
        assert inits, "cell init not found"
        for pid in inits:
            assert _memory_contains(pid, [key.seed, text]) == []
        # The supervisor itself keeps the signing key (it signs until the end),
        # but not its base64 text.
        assert _memory_contains(run.proc.pid, [text]) == []
        run.proc.send_signal(15)
        r = run.finish()
    finally:
        run.kill()
    check_signed_log(r.lines, key)
