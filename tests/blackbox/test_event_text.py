"""SPEC §8: every event is emitted, whatever text it carries. Free text from the
environment, the host or a server (messages, paths, program names) that is not
UTF-8 has each ill-formed sequence replaced by U+FFFD, so the event can always be
serialised (docs/DESIGN.md); the log line keeps the exact bytes, escaped."""
from __future__ import annotations

import json
import os

import pytest

from cellprobe import FULL
from conftest import make_spec, new_dir, run_cell, verify_chain
from exporthelp import writer_spec

pytestmark = pytest.mark.usefixtures("no_residue")

BAD = "\udcff"  # surrogateescape for the byte 0xff


def parse_every_line(r):
    """Every line of the log is strict UTF-8 JSON."""
    for line in r.lines:
        json.loads(line.decode("utf-8"))


def test_failed_event_survives_a_path_that_is_not_utf8():
    env = dict(FULL, CELLOS_BROKER="file", CELLOS_SECRET_FILE_KEY="/tmp/no-such-" + BAD)
    r = run_cell(make_spec(secret_refs=["KEY"]), env=env)
    assert r.rc == 125, r
    assert "cannot serialise" not in r.err, r.err
    parse_every_line(r)
    assert r.types[-1] == "lifecycle.v1.failed", r
    d = r.event("lifecycle.v1.failed")["data"]
    assert d["phase"] == "secrets"
    assert "CELLOS_SECRET_FILE_KEY=/tmp/no-such-\ufffd" in d["message"], d
    verify_chain(r.lines)
    # The log line has the exact byte, escaped.
    assert b"/tmp/no-such-\\xff" in r.err_bytes


def test_export_event_survives_a_destination_that_is_not_utf8():
    root = new_dir("exp") / ("out-" + BAD)
    os.mkdir(root)
    spec = writer_spec({"/work/out.txt": b"x\n"}, [("out.txt", "/work/out.txt")])
    r = run_cell(spec, env=dict(FULL, CELLOS_EXPORT_DIR=str(root)))
    assert r.rc == 0, r
    assert "cannot serialise" not in r.err, r.err
    parse_every_line(r)
    d = r.event("export.v2.completed")["data"]
    assert d["destination"].startswith(str(root).replace(BAD, "\ufffd") + "/"), d
    assert (root / spec["spec"]["id"] / "out.txt").read_bytes() == b"x\n"
    verify_chain(r.lines)
