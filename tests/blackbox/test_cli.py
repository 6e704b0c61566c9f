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
    # --validate checks that the secret is there (never reading it), and neither
    # opens the sink nor starts anything.
    r = run_cell(doc, args=["--validate", "{spec}"], env={"CELLOS_SUBPROCESS_UNSHARE": "all",
                                                          "CELLOS_SECRET_GITHUB_TOKEN": "t"})
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


def test_validate_refuses_a_secret_the_broker_cannot_see():
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["GITHUB_TOKEN"]), args=["--validate", "{spec}"])
    assert r.rc == 125, r
    assert "spec.authority.secretRefs[0]: secret GITHUB_TOKEN: not found (env broker: CELLOS_SECRET_GITHUB_TOKEN" in r.err
    assert r.out == "" and not r.jsonl.exists()


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


# ---- the --validate summary (issue 14 item 8) ----


def summary(doc, env=None) -> dict:
    """--validate's summary as {label: text after it} (continuation lines joined)."""
    r = run_cell(doc, args=["--validate", "{spec}"], env=env)
    assert r.rc == 0, r
    fields, last = {}, None
    for line in r.out.splitlines():
        label, sep, rest = line.partition(":")
        if sep and label.strip() and not line.startswith(" "):
            last = label.strip()
            fields[last] = rest.strip()
        elif last:
            fields[last] += " | " + line.strip()
    return fields


def test_validate_summary_prints_only_the_limits_that_are_set():
    assert summary(make_spec(["/usr/bin/true"]))["limits"] == "none"
    got = summary(make_spec(["/usr/bin/true"], run_extra={"limits": {"memoryMaxBytes": 1 << 30}}))["limits"]
    assert got == "memory 1073741824 bytes", got
    got = summary(make_spec(["/usr/bin/true"], run_extra={"limits": {"pidsMax": 64}}))["limits"]
    assert got == "pids 64", got
    got = summary(make_spec(["/usr/bin/true"], run_extra={"limits": {
        "memoryMaxBytes": 1 << 30, "cpuMax": {"quotaMicros": 50000}, "pidsMax": 64}}))["limits"]
    assert got == "memory 1073741824 bytes, cpu 50000/100000 us, pids 64", got
    # the operator's cpu default applies when the document sets none, and says so
    got = summary(make_spec(["/usr/bin/true"]), env={"CELLOS_CGROUP_CPU_MAX": "20000 100000"})["limits"]
    assert got == "cpu 20000/100000 us (CELLOS_CGROUP_CPU_MAX)", got


def test_validate_summary_explains_the_stub_backend_and_the_isolation():
    s = summary(make_spec(["/usr/bin/true"]))
    assert s["backend"] == "stub (host processes in namespaces), portable profile", s
    assert s["namespaces"] == "net, mnt, pid, ipc, uts, cgroup, user (user only where the kernel allows one)", s
    assert s["seccomp"] == "baseline", s
    assert s["uid"] == "a host uid of its own from 3000000000-3000999999, never 0", s

    s = summary(make_spec(["/usr/bin/true"]), env={"CELLOS_SUBPROCESS_UNSHARE": "net,mnt,user",
                                                   "CELLOS_SECCOMP": "off", "CELLOS_CELL_UID": "4000",
                                                   "CELLOS_CELL_BACKEND": "host"})
    assert s["backend"] == "stub (host processes in namespaces), portable profile", s
    assert s["namespaces"] == "net, mnt, pid, user", s  # mnt implies pid; user listed: required
    assert s["seccomp"] == "off", s
    assert s["uid"] == "host uid 4000, gid 4000 for every cell (CELLOS_CELL_UID)", s

    s = summary(make_spec(["/usr/bin/true"]), env={"CELLOS_SUBPROCESS_UNSHARE": "0"})
    assert s["namespaces"] == "none: host mode (CELLOS_SUBPROCESS_UNSHARE=0), the workload shares the host's", s


def test_unknown_backend_lists_only_what_this_build_runs():
    r = run_cell(make_spec(["/usr/bin/true"]), args=["--validate", "{spec}"],
                 env={"CELLOS_CELL_BACKEND": "firecraker"})
    assert r.rc == 125, r
    assert "CELLOS_CELL_BACKEND" in r.err and "stub, host, gvisor, oci, qemu, firecracker" in r.err, r.err


def test_help_points_at_the_reference_in_the_repository():
    r = run_cell(b"", args=["--help"], jsonl=False)
    assert r.rc == 0, r
    assert "SPEC.md" not in r.out, r.out
    assert "docs/reference.md" in r.out, r.out


@pytest.mark.parametrize("backend,line,namespaces,uid", [
    ("gvisor", "gvisor (runsc: the workload runs on gVisor's user-space kernel), portable profile",
     "net, mnt, pid, ipc, uts", "the workload is no host process (gVisor's kernel runs it)"),
    ("oci", "oci (runc: a container on the host kernel), portable profile",
     "net, mnt, pid, ipc, uts, user", "a host uid of its own from 3000000000-3000999999, never 0"),
])
def test_validate_summary_explains_the_runtime_backends(backend, line, namespaces, uid):
    s = summary(make_spec(["/usr/bin/true"]), env={"CELLOS_CELL_BACKEND": backend})
    assert (s["backend"], s["namespaces"], s["seccomp"], s["uid"]) == (line, namespaces, "baseline", uid), s
