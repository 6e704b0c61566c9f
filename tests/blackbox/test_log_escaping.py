"""SPEC §4: every control character that comes from a document, a workload or the
environment is escaped in the supervisor's log lines (ESC -> `\\x1b`), so none can
forge a log line or drive the operator's terminal. Bytes that are not UTF-8 are
escaped the same way; well-formed non-ASCII text is left alone (docs/DESIGN.md)."""
from __future__ import annotations

import pytest

from cellprobe import FULL
from conftest import make_spec, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")

# A line the workload would like the operator to believe.
FORGED = b"cellos-supervisor: info: cell finished cleanly"


def check_lines(raw: bytes):
    """stderr is whole lines, each one of the supervisor's, none of them forged."""
    assert raw.endswith(b"\n"), raw
    for line in raw.split(b"\n")[:-1]:
        assert line.startswith(b"cellos-supervisor: "), line
        assert not line.startswith(FORGED), f"forged log line: {line!r}"


def test_argv0_cannot_forge_a_line_or_drive_the_terminal():
    # Erase the line, return to column 0, print a fake line, start another, ring.
    argv0 = "/no/such\x1b[2K\r" + FORGED.decode() + "\n" + FORGED.decode() + "\x07"
    r = run_cell(make_spec([argv0]), env=FULL)
    assert r.rc == 127, r
    raw = r.err_bytes
    for ctl in (b"\x1b", b"\r", b"\x07"):
        assert ctl not in raw, f"raw {ctl!r} on the supervisor's stderr: {raw!r}"
    assert b"cannot execute /no/such\\x1b[2K\\x0d" + FORGED + b"\\x0a" + FORGED + b"\\x07" in raw, raw
    check_lines(raw)
    # The event keeps the document's text as it is (JSON escapes it).
    assert r.event("command.v1.completed")["data"]["argv"] == [argv0]


def test_del_c1_and_tab_are_escaped_but_utf8_text_is_kept():
    # DEL, U+009B (CSI as a C1 control: some terminals act on it), a tab, and
    # ordinary non-ASCII text that must stay readable.
    argv0 = "/no/such-\x7f-\u009b31m-\t-caf\u00e9-\u2603"
    r = run_cell(make_spec([argv0]), env=FULL)
    assert r.rc == 127, r
    raw = r.err_bytes
    assert b"\x7f" not in raw and b"\xc2\x9b" not in raw and b"\t" not in raw, raw
    assert "/no/such-\\x7f-\\xc2\\x9b31m-\\x09-caf\u00e9-\u2603".encode() in raw, raw
    check_lines(raw)


@pytest.mark.parametrize("value, escaped", [
    (b"/tmp/no-such-\x1b]0;pwned\x07", b"/tmp/no-such-\\x1b]0;pwned\\x07"),
    (b"/tmp/no-such-\xff\xfe-\xe2\x82", b"/tmp/no-such-\\xff\\xfe-\\xe2\\x82"),
    (b"/tmp/no-such\n" + FORGED, b"/tmp/no-such\\x0a" + FORGED),
], ids=["osc-title", "invalid-utf8", "newline"])
def test_environment_text_is_escaped(value, escaped):
    # The file broker names the path it looked at: text from the environment.
    # surrogateescape hands the exact bytes to the supervisor.
    env = dict(FULL, CELLOS_BROKER="file", CELLOS_SECRET_FILE_KEY=value.decode("utf-8", "surrogateescape"))
    r = run_cell(make_spec(secret_refs=["KEY"]), env=env)
    assert r.rc == 125, r
    raw = r.err_bytes
    assert value not in raw
    assert b"CELLOS_SECRET_FILE_KEY=" + escaped in raw, raw
    check_lines(raw)


def test_unknown_option_is_escaped():
    r = run_cell(make_spec(), args=["-\x1b[31mx", "{spec}"])
    assert r.rc == 125, r
    assert b"\x1b" not in r.err_bytes
    assert b"unknown option '-\\x1b[31mx'" in r.err_bytes, r.err_bytes
