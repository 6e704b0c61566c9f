"""Dead-letter directory (SPEC §8.4, §8.5): an event a sink could not take after
admission is written to CELLOS_DLQ_DIR; nothing is silently lost and the cell
carries on."""
from __future__ import annotations

import json
import os
import re
import stat
import time

from conftest import canonical, make_spec, new_dir, run_cell, runs_in, short_type, verify_chain
from signed_events import Ed25519Key, cellctl, check_signed_log, inner_type, problems

NAME_RE = re.compile(r"^(\d{13})-([A-Za-z0-9._-]+)\.jsonl$")
# A default cell has a private netns, hence network_enforcement; host mode has none.
HOST_RUN = ["observability.v1.network_policy", "lifecycle.v1.started", "observability.v1.process_spawned",
            "command.v1.completed", "compliance.v1.summary", "lifecycle.v1.destroyed"]
NORMAL_RUN = HOST_RUN[:4] + ["observability.v1.network_enforcement"] + HOST_RUN[4:]


def dead_letters(d):
    """[(millis, name, {"event":..., "error":...}, raw line)] sorted by the event's sequence."""
    out = []
    for name in os.listdir(d):
        m = NAME_RE.match(name)
        assert m, f"DLQ file name {name!r} does not follow <unix-millis>-<event id>.jsonl"
        p = os.path.join(d, name)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
        raw = open(p, "rb").read()
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1, f"{name}: not one line"
        entry = json.loads(raw)
        assert set(entry) == {"event", "error"}, sorted(entry)
        assert m[2] == entry["event"]["id"]
        assert canonical(entry) + b"\n" == raw
        out.append((int(m[1]), name, entry, raw))

    def seq(e):
        ev = e[2]["event"]
        return int(ev["data"]["event"]["sequence"] if "event" in ev.get("data", {}) else ev["sequence"])
    return sorted(out, key=seq)


def test_disk_full_every_event_dead_lettered_and_cell_carries_on():
    dlq = new_dir("dlq")
    t0 = int(time.time() * 1000)
    r = run_cell(make_spec(["/bin/echo", "still ran"]), jsonl="/dev/full", env={"CELLOS_DLQ_DIR": dlq})
    t1 = int(time.time() * 1000)
    assert r.rc == 0, r.err
    assert r.out == "still ran\n"
    letters = dead_letters(dlq)
    assert [short_type(e["event"]) for _, _, e, _ in letters] == NORMAL_RUN
    for millis, name, entry, _ in letters:
        assert t0 - 1000 <= millis <= t1 + 1000
        assert "No space left on device" in entry["error"] and "jsonl" in entry["error"]
        assert name in r.err  # the supervisor says where each one went
    # The dead letters are the events, intact: the chain holds across them.
    verify_chain([canonical(e["event"]) for _, _, e, _ in letters])


def test_signed_events_are_dead_lettered_with_their_signature():
    key = Ed25519Key()
    dlq = new_dir("dlq")
    r = run_cell(make_spec(["/bin/true"]), jsonl="/dev/full", env={**key.env(), "CELLOS_DLQ_DIR": dlq})
    assert r.rc == 0, r.err
    letters = dead_letters(dlq)
    lines = [canonical(e["event"]) for _, _, e, _ in letters]
    inner = check_signed_log(lines, key)
    assert [short_type(e) for e in inner] == NORMAL_RUN
    # cellctl verifies a log rebuilt from the dead letters.
    d = new_dir("verify")
    (d / "keys.json").write_text(key.keys_json())
    (d / "replayed.jsonl").write_bytes(b"".join(l + b"\n" for l in lines))
    rc, out, err = cellctl("verify", d / "replayed.jsonl", "--keys", d / "keys.json")
    assert rc == 0, out + err


def test_event_over_1_mib_goes_to_the_dlq_and_the_rest_to_the_log():
    # 25000 egress rules fit in a document under 1 MiB, but the network_policy
    # event that lists them is larger than 1 MiB. Host mode: in a cell with a private
    # netns the network_enforcement event (one rule counter per rule) would be over
    # 1 MiB too, and this test is about exactly one oversized event.
    rules = [{"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "port": 1 + i % 65535}
             for i in range(25000)]
    spec = make_spec(["/bin/true"], egress=rules)
    assert len(json.dumps(spec, separators=(",", ":"))) < 1024 * 1024
    key = Ed25519Key()
    dlq = new_dir("dlq")
    r = run_cell(spec, env={**key.env(), "CELLOS_DLQ_DIR": dlq, "CELLOS_SUBPROCESS_UNSHARE": "0"}, timeout=120)
    assert r.rc == 0, r.err[-2000:]
    letters = dead_letters(dlq)
    assert len(letters) == 1
    _, _, entry, raw = letters[0]
    assert len(raw) > 1024 * 1024
    assert "1 MiB" in entry["error"]
    assert inner_type(entry["event"]) == "observability.v1.network_policy"
    assert [inner_type(e) for e in r.events] == HOST_RUN[1:]
    # The log alone misses its first event; with the dead letter put back, all holds.
    full = [canonical(entry["event"])] + r.lines
    check_signed_log(full, key)
    d = new_dir("verify")
    (d / "keys.json").write_text(key.keys_json())
    rc, out, _ = cellctl("verify", r.jsonl, "--keys", d / "keys.json")
    assert rc == 1
    assert problems(out, r.jsonl) == [(1, f"run {r.events[0]['data']['event']['data']['runId']}: "
                                          "event with sequence 1 is missing (dropped)")]


def test_without_a_dlq_the_loss_is_logged_and_the_cell_carries_on():
    r = run_cell(make_spec(["/bin/echo", "ok"]), jsonl="/dev/full")
    assert r.rc == 0, r.err
    assert r.out == "ok\n"
    lost = [l for l in r.err.splitlines() if " lost: " in l]
    assert len(lost) == len(NORMAL_RUN), r.err
    assert all("No space left on device" in l and "no CELLOS_DLQ_DIR" in l for l in lost)


def test_dlq_stays_empty_when_sinks_work():
    dlq = new_dir("dlq")
    r = run_cell(make_spec(["/bin/true"]), env={"CELLOS_DLQ_DIR": dlq})
    assert r.rc == 0, r.err
    assert os.listdir(dlq) == []
    assert [short_type(e) for e in r.events] == NORMAL_RUN
    verify_chain(r.lines)
    assert len(runs_in(r.lines)) == 1


def test_unusable_dlq_dir_is_an_admission_error():
    d = new_dir("dlq")
    (d / "file").write_text("x")
    for bad in (d / "missing", d / "file"):
        r = run_cell(make_spec(["/bin/true"]), env={"CELLOS_DLQ_DIR": bad})
        assert r.rc == 125
        assert "CELLOS_DLQ_DIR" in r.err and str(bad) in r.err
        assert r.events == []
