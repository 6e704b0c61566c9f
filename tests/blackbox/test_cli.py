"""SPEC §1: --validate, --help, --version, usage errors, the document on stdin."""
import json

import pytest

from conftest import make_spec, new_dir, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")


def test_validate_prints_a_summary_and_runs_nothing():
    marker = new_dir("validate") / "ran"
    doc = make_spec(["/usr/bin/touch", str(marker)], id="validate-me", secret_refs=["GITHUB_TOKEN"],
                    egress=[{"host": "192.0.2.10", "port": 443}],
                    run_extra={"timeoutMs": 5000, "limits": {"memoryMaxBytes": 1 << 30, "pidsMax": 64}})
    # --validate must not need the secret, nor open the sink, nor start anything.
    r = run_cell(doc, args=["--validate", "{spec}"], env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert "validate-me" in r.out
    assert "/usr/bin/touch" in r.out
    assert "GITHUB_TOKEN" in r.out
    assert "192.0.2.10" in r.out
    assert "stub" in r.out
    assert not marker.exists(), "--validate ran the workload"
    assert not r.jsonl.exists(), "--validate wrote events"


def test_validate_reports_problems_with_125():
    r = run_cell(make_spec(ttl=0, id="bad id"), args=["--validate", "{spec}"])
    assert r.rc == 125, r
    assert "spec.lifetime.ttlSeconds" in r.err and "spec.id" in r.err
    assert r.out == ""


def test_validate_reads_stdin():
    doc = json.dumps(make_spec(["/usr/bin/true"], id="from-stdin")).encode()
    r = run_cell(b"", args=["--validate", "-"], input=doc)
    assert r.rc == 0, r
    assert "from-stdin" in r.out


def test_validate_honours_configuration_errors():
    r = run_cell(make_spec(), args=["--validate", "{spec}"], env={"CELLOS_CELL_BACKEND": "nope"})
    assert r.rc == 125, r
    assert "CELLOS_CELL_BACKEND" in r.err


def test_document_on_stdin_runs():
    doc = json.dumps(make_spec(["/bin/sh", "-c", "exit 3"], id="stdin-run")).encode()
    r = run_cell(b"", args=["-"], input=doc)
    assert r.rc == 3, r
    assert r.event("lifecycle.v1.started")["data"]["cellId"] == "stdin-run"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    r = run_cell(b"", args=[flag], jsonl=False)
    assert r.rc == 0, r
    assert "usage" in r.out.lower() and "--validate" in r.out
    assert r.err == ""


def test_version():
    r = run_cell(b"", args=["--version"], jsonl=False)
    assert r.rc == 0, r
    assert r.out.startswith("cellos-supervisor ") and r.out.strip() != "cellos-supervisor"
    assert r.err == ""


@pytest.mark.parametrize("args", [[], ["--bogus"], ["--validate"], ["{spec}", "{spec}"], ["-x", "{spec}"]],
                         ids=["no-argument", "unknown-flag", "validate-without-document", "two-documents",
                              "unknown-short-flag"])
def test_usage_error_exits_125_with_usage_on_stderr(args):
    marker = new_dir("usage") / "ran"
    r = run_cell(make_spec(["/usr/bin/touch", str(marker)]), args=args)
    assert r.rc == 125, r
    assert "usage" in r.err.lower(), r.err
    assert r.out == ""
    assert not marker.exists()
    assert r.events == []
