"""cellctl (SPEC §1, §9): keygen, validate, and verify against every kind of
tampering, on a log where several real runs are interleaved."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import nacl.signing
import pytest

from conftest import SUPERVISOR, canonical, make_spec, new_dir, prepare, run_cell, supervisor_env
from signed_events import (CELLCTL, Ed25519Key, HmacKey, b64url, cellctl, check_signed_log, inner_type, problems,
                           unb64url, wrap)

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


# --------------------------------------------------------------------------- keygen


def test_keygen_seed_and_public_key_work_with_the_supervisor():
    rc, out, err = cellctl("keygen", "--kid", "ops-2026-q4")
    assert rc == 0, err
    seed_line, key_line = out.splitlines()
    seed = unb64url(seed_line)
    assert len(seed) == 32 and "=" not in seed_line
    keys = json.loads(key_line)
    assert list(keys) == ["ops-2026-q4"]
    assert unb64url(keys["ops-2026-q4"]) == bytes(nacl.signing.SigningKey(seed).verify_key)
    # The pair is what the supervisor and the verifier expect.
    key = Ed25519Key("ops-2026-q4", seed)
    r = run_cell(make_spec(["/bin/true"]), env={"CELLOS_EVENT_SIGNING": "ed25519",
                                                "CELLOS_EVENT_SIGNING_KID": "ops-2026-q4",
                                                "CELLOS_EVENT_SIGNING_KEY_BASE64": seed_line})
    assert r.rc == 0, r.err
    check_signed_log(r.lines, key)
    d = r.jsonl.parent
    (d / "keys.json").write_text(key_line + "\n")
    rc, out, err = cellctl("verify", r.jsonl, "--keys", d / "keys.json")
    assert (rc, out) == (0, ""), out + err
    # Fresh every time.
    assert cellctl("keygen", "--kid", "ops-2026-q4")[1].splitlines()[0] != seed_line


@pytest.mark.parametrize("args", [["keygen"], ["keygen", "--kid"], ["keygen", "--kid", "has space"],
                                  ["keygen", "--kid", ""], ["keygen", "--kid", "k", "extra"]])
def test_keygen_usage_errors(args):
    rc, out, err = cellctl(*args)
    assert rc == 2 and out == "" and "usage" in err


# --------------------------------------------------------------------------- validate


def test_validate_valid_document():
    d, spec_path, _ = prepare(make_spec(["/bin/true"], id="valid-doc"), jsonl=False)
    rc, out, err = cellctl("validate", spec_path)
    assert rc == 0, out + err
    assert "valid" in out and "valid-doc" in out


def test_validate_reports_what_the_supervisor_reports():
    doc = make_spec(["relative-prog"], secret_refs=["A", "A"], ttl=0)
    doc["spec"]["id"] = "..bad"
    d, spec_path, _ = prepare(doc, jsonl=False)
    rc, out, err = cellctl("validate", spec_path)
    assert rc == 1
    mine = sorted(l.split(": ", 1)[1] for l in out.splitlines())
    p = subprocess.run([str(SUPERVISOR), "--validate", str(spec_path)], env=ENV, capture_output=True, text=True)
    assert p.returncode == 125
    theirs = sorted(l.split("error: ", 1)[1] for l in p.stderr.splitlines() if "error: " in l)
    assert mine == theirs and len(mine) >= 3
    assert any(m.startswith("spec.id") for m in mine) and any("secretRefs" in m for m in mine)


def test_validate_honours_the_supervisor_configuration():
    doc = make_spec(["/bin/true"])
    doc["spec"]["unknownKey"] = 1
    d, spec_path, _ = prepare(doc, jsonl=False)
    assert cellctl("validate", spec_path)[0] == 0
    rc, out, _ = cellctl("validate", spec_path, env={"CELLOS_STRICT_SPEC": "1"})
    assert rc == 1 and "unknownKey" in out
    # hardened refuses unknown keys too (SPEC §7), and checks the configuration
    rc, out, _ = cellctl("validate", spec_path, env={"CELLOS_DEPLOYMENT_PROFILE": "hardened"})
    assert rc == 1 and "unknownKey" in out
    del doc["spec"]["unknownKey"]
    d, spec_path, _ = prepare(doc, jsonl=False)
    rc, out, _ = cellctl("validate", spec_path, env={"CELLOS_DEPLOYMENT_PROFILE": "hardened"})
    assert rc == 1 and "hardened" in out
    rc, out, _ = cellctl("validate", "-", input=json.dumps(make_spec(["/bin/true"])).encode())
    assert rc == 0, out


# --------------------------------------------------------------------------- verify


KEY = Ed25519Key("ops-1")
# Events of one default (private-netns) run of the fixture, and how many of them come
# before its workload starts sleeping.
PER_RUN = 7
BEFORE = 3
TOTAL = 3 * PER_RUN


@pytest.fixture(scope="module")
def interleaved():
    """Three real supervisors appending to one JSONL file, launched so that their
    lines interleave whatever the machine's speed: A starts, B starts, A ends,
    C starts, B ends, C ends (each run has another run's line between its first
    and its last)."""
    d = new_dir("interleaved")
    log = d / "events.jsonl"
    (d / "keys.json").write_text(KEY.keys_json())

    def count():
        return log.read_bytes().count(b"\n") if log.exists() else 0

    def wait_lines(n, timeout=20):
        deadline = time.monotonic() + timeout
        while count() < n:
            assert time.monotonic() < deadline, f"expected {n} lines, have {count()}"
            time.sleep(0.01)

    def launch(i, argv):
        _, spec_path, _ = prepare(make_spec(argv, id=f"inter-{i}"), jsonl=False)
        return subprocess.Popen([str(SUPERVISOR), str(spec_path)], env=supervisor_env(KEY.env(), log),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # A default cell (private netns) writes 3 lines before its workload sleeps
    # (network_policy, started, process_spawned) and 4 after (completed,
    # network_enforcement, summary, destroyed).
    a = launch(0, ["/bin/sleep", "0.6"])
    wait_lines(BEFORE)
    b = launch(1, ["/bin/sh", "-c", "sleep 1.5; exit 4"])
    wait_lines(2 * BEFORE)
    a.communicate(timeout=30)                    # A has ended: PER_RUN + BEFORE lines
    c = launch(2, ["/bin/sleep", "1.2"])
    wait_lines(PER_RUN + 2 * BEFORE)
    for p in (b, c):
        p.communicate(timeout=30)
    lines = [l for l in log.read_bytes().split(b"\n") if l]
    runs = [json.loads(l)["data"]["event"]["data"]["runId"] for l in lines]
    assert len(set(runs)) == 3 and len(lines) == 3 * PER_RUN
    # Interleaved: no run's lines form one contiguous block.
    for rid in set(runs):
        idx = [i for i, r in enumerate(runs) if r == rid]
        assert idx[-1] - idx[0] + 1 > len(idx), "runs did not interleave"
    check_signed_log(lines, KEY)
    return d, lines, runs


def verify_lines(d, lines, *extra, name="t.jsonl"):
    p = d / name
    p.write_bytes(b"".join(l + b"\n" for l in lines))
    rc, out, err = cellctl("verify", p, "--keys", d / "keys.json", *extra)
    return rc, problems(out, p), err


def where(lines, runs, rid, seq):
    """0-based index of run rid's event with sequence seq."""
    for i, l in enumerate(lines):
        ev = json.loads(l)["data"]["event"]
        if ev["data"]["runId"] == rid and ev["sequence"] == str(seq):
            return i
    raise AssertionError(f"no sequence {seq} in run {rid}")


def test_verify_accepts_the_untouched_interleaved_log(interleaved):
    d, lines, runs = interleaved
    rc, probs, err = verify_lines(d, lines)
    assert (rc, probs) == (0, []), err
    assert f"{TOTAL} signed event(s), 3 run(s): ok" in err


def test_verify_catches_an_altered_field(interleaved):
    d, lines, runs = interleaved
    i = next(i for i, l in enumerate(lines) if inner_type(json.loads(l)) == "command.v1.completed")
    w = json.loads(lines[i])
    w["data"]["event"]["data"]["exitCode"] = 0 if w["data"]["event"]["data"]["exitCode"] else 1
    tampered = lines[:i] + [canonical(w)] + lines[i + 1:]
    rc, probs, _ = verify_lines(d, tampered)
    assert rc == 1
    assert probs == [(i + 1, "bad Ed25519 signature (key 'ops-1'): the event was altered or signed by another key")]


def test_verify_catches_an_altered_envelope(interleaved):
    d, lines, runs = interleaved
    w = json.loads(lines[5])
    w["subject"] = "urn:cellos:cell:someone-else"
    rc, probs, _ = verify_lines(d, lines[:5] + [canonical(w)] + lines[6:])
    assert rc == 1
    assert probs == [(6, "signed envelope: subject differs from the signed event's (the envelope is not signed)")]


def test_verify_catches_a_dropped_event(interleaved):
    d, lines, runs = interleaved
    rid = runs[0]
    i3, i4 = where(lines, runs, rid, 3), where(lines, runs, rid, 4)
    rest = lines[:i3] + lines[i3 + 1:]
    rc, probs, _ = verify_lines(d, rest)
    assert rc == 1
    # Reported where the gap shows: the run's next event (one line earlier now).
    assert probs == [(i4, f"run {rid}: event with sequence 3 is missing (dropped)")]


def test_verify_catches_a_duplicated_event(interleaved):
    d, lines, runs = interleaved
    rid = runs[1]
    i2 = where(lines, runs, rid, 2)
    dup = lines[:10] + [lines[i2]] + lines[10:]
    rc, probs, _ = verify_lines(d, dup)
    assert rc == 1
    assert probs == [(11, f"run {rid}: duplicate of line {i2 + 1} (sequence 2)")]


def test_verify_catches_reordered_events(interleaved):
    d, lines, runs = interleaved
    rid = runs[0]
    a, b = where(lines, runs, rid, 2), where(lines, runs, rid, 4)
    swapped = list(lines)
    swapped[a], swapped[b] = swapped[b], swapped[a]
    rc, probs, _ = verify_lines(d, swapped)
    assert rc == 1
    # 4 now comes first (where 2 was), then 3, then 2: the two late ones are reported.
    assert [p[0] for p in probs] == sorted({where(lines, runs, rid, 3) + 1, b + 1})
    assert all("events out of order" in m for _, m in probs), probs


def test_verify_catches_foreign_signatures(interleaved):
    d, lines, runs = interleaved
    intruder = Ed25519Key("ops-1")  # same kid, another key
    ev = json.loads(lines[7])["data"]["event"]
    forged = lines[:7] + [wrap(ev, intruder)] + lines[8:]
    rc, probs, _ = verify_lines(d, forged)
    assert rc == 1
    assert probs == [(8, "bad Ed25519 signature (key 'ops-1'): the event was altered or signed by another key")]
    stranger = Ed25519Key("stranger")
    forged = lines[:7] + [wrap(ev, stranger)] + lines[8:]
    rc, probs, _ = verify_lines(d, forged)
    assert probs == [(8, "signed by unknown key 'stranger' (not in the keys file)")]
    hm = HmacKey(os.urandom(32))
    forged = lines[:7] + [wrap(ev, hm)] + lines[8:]
    rc, probs, _ = verify_lines(d, forged)
    assert probs == [(8, "HMAC-signed event (key 'hmac-1') but no HMAC key was given (--hmac-key-env)")]


def test_verify_chain_catches_what_a_key_holder_rewrites(interleaved):
    # Even an event re-signed with the right key breaks the chain when altered:
    # the next event of its run names the digest of the original.
    d, lines, runs = interleaved
    rid = runs[2]
    i = where(lines, runs, rid, 3)
    ev = json.loads(lines[i])["data"]["event"]
    ev["data"]["pid"] = 1
    rewritten = lines[:i] + [wrap(ev, KEY)] + lines[i + 1:]
    nxt = where(lines, runs, rid, 4)
    rc, probs, _ = verify_lines(d, rewritten)
    assert rc == 1
    assert probs == [(nxt + 1, f"run {rid}: cellosprevdigest does not match the event with sequence 3 "
                               f"(line {i + 1}): an event was altered, replaced or inserted")]


def test_verify_catches_a_missing_last_event(interleaved):
    d, lines, runs = interleaved
    rid = runs[-1]  # the run whose destroyed is the last line of the file
    assert inner_type(json.loads(lines[-1])) == "lifecycle.v1.destroyed"
    rc, probs, _ = verify_lines(d, lines[:-1])
    assert rc == 1
    last = max(i for i, r in enumerate(runs[:-1]) if r == rid)
    assert probs == [(last + 1, f"run {rid} started but did not end: no lifecycle.v1.destroyed after sequence {PER_RUN - 1} "
                                "(its last events are missing, or it is still running)")]


def test_verify_catches_unsigned_and_garbage_lines(interleaved):
    d, lines, runs = interleaved
    ev = json.loads(lines[0])["data"]["event"]
    ev["id"] = "11111111-1111-4111-8111-111111111111"
    ev["sequence"] = "99"
    bad = lines + [canonical(ev), b"{not json", b'{"type":"x","type":"y"}']
    rc, probs, _ = verify_lines(d, bad)
    assert rc == 1
    got = {(n, m.split(":")[0]) for n, m in probs}
    assert (TOTAL + 1, "unsigned event (dev.cellos.events.cell.observability.v1.network_policy)") in got
    assert any(n == TOTAL + 1 and "sequence 99" in m or n == TOTAL + 1 and "events with sequence" in m
               for n, m in probs)
    assert [n for n, m in probs if m.startswith("not a JSON event")] == [TOTAL + 2, TOTAL + 3]


def test_verify_hmac_log():
    key = HmacKey(os.urandom(48), kid="hmac-ci")
    r = run_cell(make_spec(["/bin/true"]), env=key.env())
    assert r.rc == 0, r.err
    d = r.jsonl.parent
    env = {"MY_HMAC": b64url(key.key, pad=True)}
    rc, out, err = cellctl("verify", r.jsonl, "--hmac-key-env", "MY_HMAC", env=env)
    assert (rc, out) == (0, ""), out + err
    rc, out, _ = cellctl("verify", r.jsonl, "--hmac-key-env", "MY_HMAC", env={"MY_HMAC": b64url(os.urandom(48))})
    assert rc == 1 and len(problems(out, r.jsonl)) == len(r.lines)
    assert all("bad HMAC-SHA256 signature (key 'hmac-ci')" in m for _, m in problems(out, r.jsonl))
    # No HMAC key: every event is a problem, and the run still counts as ended.
    (d / "keys.json").write_text(Ed25519Key().keys_json())
    rc, out, _ = cellctl("verify", r.jsonl, "--keys", d / "keys.json")
    assert rc == 1 and len(problems(out, r.jsonl)) == len(r.lines)
    # The log on stdin.
    rc, out, _ = cellctl("verify", "-", "--hmac-key-env", "MY_HMAC", env=env, input=r.raw)
    assert (rc, out) == (0, "")


def test_verify_truncated_last_line(interleaved):
    d, lines, runs = interleaved
    p = d / "trunc.jsonl"
    p.write_bytes(b"".join(l + b"\n" for l in lines) + lines[0][:100])
    rc, out, _ = cellctl("verify", p, "--keys", d / "keys.json")
    assert rc == 1
    probs = problems(out, p)
    assert probs[0] == (TOTAL + 1, "the last line has no newline: a partial write?")
    assert all(n == TOTAL + 1 for n, _ in probs)


def test_verify_usage_and_io_errors(interleaved):
    d, lines, runs = interleaved
    log = d / "ok.jsonl"
    log.write_bytes(b"".join(l + b"\n" for l in lines))
    (d / "bad-keys.json").write_text('{"ops-1": "not a key"}')
    (d / "broken-keys.json").write_text('{"ops-1": ')
    for args, env in [((), {}), ((log,), {}), ((log, "--keys"), {}), ((log, "--bogus", "x"), {}),
                      ((log, "--keys", d / "missing.json"), {}), ((d / "missing.jsonl", "--keys", d / "keys.json"), {}),
                      ((log, "--keys", d / "bad-keys.json"), {}), ((log, "--keys", d / "broken-keys.json"), {}),
                      ((log, "--hmac-key-env", "UNSET_VAR"), {}),
                      ((log, "--hmac-key-env", "BAD"), {"BAD": "***"})]:
        rc, out, err = cellctl("verify", *args, env=env)
        assert rc == 2, (args, out, err)
        assert out == "" and err, (args, err)
    assert cellctl()[0] == 2
    assert cellctl("frobnicate")[0] == 2
    rc, out, _ = cellctl("--help")
    assert rc == 0 and "verify" in out and "keygen" in out


# --------------------------------------------------------------------------- every command (issue 14 item 6)

SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer")


def ctl(*args, **kw):
    """cellctl, failing on a sanitizer report."""
    rc, out, err = cellctl(*args, **kw)
    for needle in SANITIZER:
        assert needle not in err, f"sanitizer report from cellctl:\n{err}"
    return rc, out, err


@pytest.mark.parametrize("cmd", ["validate", "verify", "keygen", "show", "vm-config"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(cmd, flag):
    rc, out, err = ctl(cmd, flag)
    assert (rc, err) == (0, ""), (rc, err)
    assert out.startswith(f"usage: cellctl {cmd}"), out
    # --help wins wherever it is, even after a file name or an incomplete option.
    assert ctl(cmd, "some-file", flag)[:2] == (0, out)
    assert ctl("help", cmd)[:2] == (0, out)


def test_top_level_help_names_every_command_and_flag():
    rc, out, err = ctl("--help")
    assert (rc, err) == (0, "")
    for word in ("validate", "verify", "keygen", "show", "--format", "--keys", "--hmac-key-env", "--kid",
                 "--follow", "--run", "Exit status"):
        assert word in out, word


@pytest.mark.parametrize("args", [["validate"], ["validate", "a.json", "b.json"], ["validate", "--bogus", "a.json"],
                                  ["validate", "--format", "yaml", "a.json"], ["validate", "--format"],
                                  ["show", "--bogus"], ["show", "a", "b"], ["show", "--run"],
                                  ["verify", "-", "--keys", "-"]])
def test_usage_errors_exit_2(args):
    rc, out, err = ctl(*args)
    assert rc == 2 and out == "" and "usage: cellctl" in err, (args, rc, out, err)


def test_io_errors_exit_2():
    d = new_dir("ioerr")
    for args in (["validate", d / "missing.json"], ["validate", "--format", "json", d / "missing.json"],
                 ["validate", d], ["show", d / "missing.jsonl"], ["verify", d / "missing.jsonl"]):
        rc, out, err = ctl(*args)
        assert (rc, out) == (2, ""), (args, rc, out, err)
        assert str(args[-1]) in err, (args, err)


def test_validate_document_on_stdin_and_a_file_named_like_an_option():
    doc = json.dumps(make_spec(["/bin/true"], id="from-stdin")).encode()
    rc, out, _ = ctl("validate", "-", input=doc)
    assert rc == 0 and "from-stdin" in out
    d = new_dir("dash")
    (d / "-odd.json").write_bytes(doc)
    rc, out, err = ctl("validate", "--", d / "-odd.json")
    assert rc == 0, err


# --------------------------------------------------------------------------- verify without keys (SPEC §9)


def test_verify_without_keys_checks_the_chain_of_an_unsigned_log():
    r = run_cell(make_spec(["/bin/true"]))
    assert r.rc == 0
    rc, out, err = ctl("verify", r.jsonl)
    assert (rc, out) == (0, ""), out + err
    assert "signatures not checked" in err
    rc, out, err = ctl("verify", "-", input=r.raw)
    assert (rc, out) == (0, ""), out + err
    # A dropped event and an altered one are found.
    d = r.jsonl.parent
    (d / "dropped.jsonl").write_bytes(b"".join(l + b"\n" for l in r.lines[:2] + r.lines[3:]))
    rc, out, _ = ctl("verify", d / "dropped.jsonl")
    assert rc == 1 and problems(out, d / "dropped.jsonl") == [
        (3, f"run {r.events[0]['data']['runId']}: event with sequence 3 is missing (dropped)")]
    ev = json.loads(r.lines[2])
    ev["data"]["pid"] = 1
    (d / "altered.jsonl").write_bytes(b"".join(l + b"\n" for l in r.lines[:2] + [canonical(ev)] + r.lines[3:]))
    rc, out, _ = ctl("verify", d / "altered.jsonl")
    assert rc == 1 and [n for n, _ in problems(out, d / "altered.jsonl")] == [4]


def test_verify_a_signed_log_without_keys_is_an_error():
    r = run_cell(make_spec(["/bin/true"]), env=KEY.env())
    assert r.rc == 0
    rc, out, err = ctl("verify", r.jsonl)
    assert rc == 2 and out == "" and "--keys" in err, (rc, out, err)


def test_verify_keys_on_stdin():
    r = run_cell(make_spec(["/bin/true"]), env=KEY.env())
    rc, out, err = ctl("verify", r.jsonl, "--keys", "-", input=KEY.keys_json().encode())
    assert (rc, out) == (0, ""), err


# --------------------------------------------------------------------------- show (SPEC §9, issue 14 item 7)


def show(*args, **kw):
    rc, out, err = ctl("show", *args, **kw)
    assert rc == 0, (rc, out, err)
    return out, err


def event_lines(out):
    """show's event lines as (time, cell, run8, type, fields dict)."""
    rows = []
    for line in out.splitlines():
        if line.startswith("== "):
            continue
        parts = line.split(None, 4)
        fields = {}
        for f in shlex_split(parts[4] if len(parts) > 4 else ""):
            k, _, v = f.partition("=")
            fields[k] = v
        rows.append((parts[0], parts[1], parts[2], parts[3], fields))
    return rows


def shlex_split(s):
    import shlex
    return shlex.split(s)


def summaries(out):
    return [l for l in out.splitlines() if l.startswith("== run ")]


def test_show_a_successful_run():
    r = run_cell(make_spec(["/bin/true"], id="show-ok", egress=[{"host": "192.0.2.7", "port": 443}]))
    assert r.rc == 0
    out, err = show(r.jsonl)
    rows = event_lines(out)
    run8 = r.events[0]["data"]["runId"][:8]
    assert [row[3] for row in rows] == ["network_policy", "lifecycle.started", "process_spawned",
                                        "command.completed", "network_enforcement", "compliance.summary",
                                        "lifecycle.destroyed"], out
    assert all(row[1] == "show-ok" and row[2] == run8 for row in rows)
    assert [row[0] for row in rows] == [e["time"] for e in r.events]
    f = {row[3]: row[4] for row in rows}
    assert f["process_spawned"]["program"] == "/bin/true"
    assert f["process_spawned"]["pid"] == str(r.event("observability.v1.process_spawned")["data"]["pid"])
    assert f["command.completed"]["exit"] == "0" and f["command.completed"]["duration"].endswith("ms")
    assert f["lifecycle.destroyed"]["outcome"] == "succeeded"
    assert f["network_enforcement"]["denied_packets"] == "0"
    assert f["network_policy"]["egress_rules"] == "1"
    (s,) = summaries(out)
    assert s.startswith(f"== run {run8} cell show-ok: outcome=succeeded exit=0 duration="), s
    assert "peak_memory=" in s and "denied_packets=0" in s
    # The log on stdin gives the same.
    assert show("-", input=r.raw)[0] == out
    assert show(input=r.raw)[0] == out


def test_show_a_failed_run_and_a_timeout():
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 3"], id="show-fail"))
    assert r.rc == 3
    out, _ = show(r.jsonl)
    f = {row[3]: row[4] for row in event_lines(out)}
    assert f["command.completed"]["exit"] == "3"
    assert (f["lifecycle.destroyed"]["outcome"], f["lifecycle.destroyed"]["reason"]) == ("failed", "nonzero_exit")
    (s,) = summaries(out)
    assert "outcome=failed reason=nonzero_exit exit=3 " in s

    r = run_cell(make_spec(["/bin/sleep", "30"], id="show-timeout", run_extra={"timeoutMs": 200}))
    assert r.rc == 124
    out, _ = show(r.jsonl)
    f = {row[3]: row[4] for row in event_lines(out)}
    assert f["command.completed"]["exit"] == "124" and "timed_out" in f["command.completed"]
    (s,) = summaries(out)
    assert "outcome=failed reason=timeout exit=124 " in s


def test_show_a_run_that_failed_before_it_started():
    r = run_cell(make_spec(["/bin/true"], id="show-prestart", secret_refs=["ABSENT"]))
    assert r.rc == 125
    out, _ = show(r.jsonl)
    f = {row[3]: row[4] for row in event_lines(out)}
    assert f["lifecycle.failed"]["phase"] == "secrets" and "ABSENT" in f["lifecycle.failed"]["message"]
    (s,) = summaries(out)
    assert "outcome=failed phase=secrets reason=secret_unavailable" in s


def test_show_a_signed_log_and_an_export():
    root = new_dir("show-export")
    env = dict(KEY.env(), CELLOS_EXPORT_DIR=root)
    doc = make_spec(["/bin/sh", "-c", "echo hi > /work/out.txt"], id="show-signed",
                    run_extra={"workingDirectory": "/work"},
                    spec_extra={"export": {"artifacts": [{"name": "out.txt", "path": "/work/out.txt"}]}})
    r = run_cell(doc, env=env)
    assert r.rc == 0, r
    out, _ = show(r.jsonl)
    rows = event_lines(out)
    assert "export.completed" in [row[3] for row in rows], out
    f = {row[3]: row[4] for row in rows}
    assert f["export.completed"]["artifact"] == "out.txt"
    assert f["export.completed"]["destination"] == str(root / "show-signed" / "out.txt")
    assert f["export.completed"]["bytes"] == "3"
    assert all(row[1] == "show-signed" for row in rows) and len(rows) == len(r.lines)
    assert len(summaries(out)) == 1


def test_show_one_run_of_several(interleaved):
    d, lines, runs = interleaved
    p = d / "all.jsonl"
    p.write_bytes(b"".join(l + b"\n" for l in lines))
    out, _ = show(p)
    assert len(summaries(out)) == 3 and len(event_lines(out)) == len(lines)
    for rid in set(runs):
        for sel in (rid, rid[:8]):
            out, _ = show(p, "--run", sel)
            rows = event_lines(out)
            assert len(rows) == runs.count(rid) and {row[2] for row in rows} == {rid[:8]}
            assert len(summaries(out)) == 1
    out, _ = show(p, "--run", "no-such-run")
    assert out == ""


def synthetic(type_, data, run="11111111-2222-4333-8444-555555555555", cell="synth", time_="2026-01-02T03:04:05.000006Z"):
    ev = {"specversion": "1.0", "id": "00000000-0000-4000-8000-000000000001", "source": "/cellos/supervisor/h",
          "type": "dev.cellos.events.cell." + type_, "subject": f"urn:cellos:cell:{cell}", "time": time_,
          "datacontenttype": "application/json", "data": dict(data, cellId=cell, runId=run)}
    return json.dumps(ev).encode() + b"\n"


def test_show_escapes_control_characters():
    log = (synthetic("observability.v1.process_spawned", {"program": "/bin/\x1b[31mred\r\n", "pid": 7},
                     cell="c\x1b]0;x\x07", time_="2026\x1b[2J") +
           synthetic("lifecycle.v1.failed", {"phase": "secrets", "reason": "x\x9by", "message": "a\tb\x00c"}))
    rc, out, err = ctl("show", "-", input=log)
    assert rc == 0, err
    assert not any(ch in out for ch in "\x1b\x07\r\x00\t\x9b"), repr(out)
    assert "\\x1b[31mred\\x0d\\x0a" in out and "c\\x1b]0;x\\x07" in out and "2026\\x1b[2J" in out
    assert "a\\x09b\\x00c" in out and "x\\xc2\\x9by" in out
    # A real run whose message carries a control character from the environment.
    r = run_cell(make_spec(["/bin/true"], secret_refs=["KEY"]),
                 env={"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_KEY": "/tmp/no-such-\x1b[1m"})
    assert r.rc == 125
    out, _ = show(r.jsonl)
    assert "\x1b" not in out and "no-such-\\x1b[1m" in out


def test_show_counts_denied_egress_and_skips_garbage():
    counters = [{"rule": "ip daddr 192.0.2.7 tcp dport 443 accept", "packets": 4, "bytes": 400},
                {"rule": "drop", "packets": 3, "bytes": 180}]
    log = (synthetic("observability.v1.network_enforcement", {"ruleCounters": counters, "nftRulesApplied": True}) +
           b"{not json\n" +
           synthetic("lifecycle.v1.destroyed", {"outcome": "failed", "reason": "nonzero_exit", "durationMs": 1500}))
    rc, out, err = ctl("show", "-", input=log)
    assert rc == 0
    assert "-:2: " in err and "not a JSON event" in err
    f = {row[3]: row[4] for row in event_lines(out)}
    assert (f["network_enforcement"]["allowed_packets"], f["network_enforcement"]["denied_packets"],
            f["network_enforcement"]["denied_bytes"]) == ("4", "3", "180")
    (s,) = summaries(out)
    assert "duration=1.5s" in s and "allowed_packets=4" in s and "denied_packets=3" in s


def test_show_a_run_that_did_not_end():
    r = run_cell(make_spec(["/bin/true"], id="show-cut"))
    out, _ = show("-", input=b"".join(l + b"\n" for l in r.lines[:3]))
    (s,) = summaries(out)
    assert "not ended" in s


def wait_for(pred, timeout=20.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Reader:
    """Collects a process's stdout on a thread (so the test never blocks on it)."""

    def __init__(self, proc):
        import threading
        self.buf = b""
        self.proc = proc
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self.buf += chunk

    @property
    def text(self):
        return self.buf.decode("utf-8", "replace")


def stop(proc):
    """Never leave a process of a failed test behind (the residue checks of the
    next tests would see it)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_show_follow_a_log_a_running_supervisor_appends_to(sig):
    d = new_dir("follow")
    log = d / "events.jsonl"
    # An earlier run is already in the file.
    first = run_cell(make_spec(["/bin/true"], id="follow-before"), jsonl=log)
    assert first.rc == 0
    show_p = subprocess.Popen([str(CELLCTL), "show", "--follow", str(log)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    reader, sup = Reader(show_p), None
    try:
        wait_for(lambda: "cell follow-before:" in reader.text, what="the earlier run")
        _, spec_path, _ = prepare(make_spec(["/bin/sh", "-c", "sleep 1.5; exit 2"], id="follow-live"), jsonl=False)
        sup = subprocess.Popen([str(SUPERVISOR), str(spec_path)], env=supervisor_env({}, log),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The live run's first events are shown while it runs.
        wait_for(lambda: reader.text.count("process_spawned") == 2, what="the live run's first events")
        assert sup.poll() is None, "the supervisor ended before show saw its first events"
        sup.communicate(timeout=30)
        assert sup.returncode == 2
        wait_for(lambda: "cell follow-live:" in reader.text, what="the live run's summary")
        assert show_p.poll() is None, "show --follow ended on its own"
        show_p.send_signal(sig)
        rc = show_p.wait(timeout=10)
        reader.t.join(timeout=5)
        err = show_p.stderr.read().decode()
    finally:
        stop(sup)
        stop(show_p)
    assert rc == 0, (rc, err)
    for needle in SANITIZER:
        assert needle not in err
    assert "outcome=failed reason=nonzero_exit exit=2" in [l for l in summaries(reader.text) if "follow-live" in l][0]


def test_show_follow_on_stdin_ends_with_stdin():
    r = run_cell(make_spec(["/bin/true"], id="follow-stdin"))
    p = subprocess.Popen([str(CELLCTL), "show", "--follow", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    reader = Reader(p)
    try:
        p.stdin.write(b"".join(l + b"\n" for l in r.lines[:3]))
        p.stdin.flush()
        # Output comes as the lines come, not at the end.
        wait_for(lambda: "process_spawned" in reader.text, what="the first lines")
        p.stdin.write(b"".join(l + b"\n" for l in r.lines[3:]))
        p.stdin.close()
        assert p.wait(timeout=10) == 0
        reader.t.join(timeout=5)
    finally:
        stop(p)
    assert len(summaries(reader.text)) == 1 and len(event_lines(reader.text)) == len(r.lines)
