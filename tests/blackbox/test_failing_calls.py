"""Calls that practically never fail (signalfd, setsockopt SO_PASSCRED), made to
fail by an LD_PRELOAD shim (failshim.c): the run must fail cleanly, 125 with a
line that says what failed, instead of going on without what the call provides
(a supervisor that SIGTERM cannot stop; a process_spawned event with pid 0)."""
import subprocess

import pytest

from conftest import REPO_ROOT, make_spec, new_dir, py_argv, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")

STUB = {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline"}
OCI = {"CELLOS_CELL_BACKEND": "oci", "CELLOS_OCI_RUNTIME": "runc"}


@pytest.fixture(scope="module")
def shim():
    out = new_dir("failshim") / "failshim.so"
    cc = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(REPO_ROOT / "tests/blackbox/failshim.c"),
                         "-ldl"], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    # A sanitizer build wants its runtime first in the library list; the shim
    # only interposes two libc calls.
    return {"LD_PRELOAD": str(out), "ASAN_OPTIONS": "verify_asan_link_order=0"}


def test_the_shim_changes_nothing_by_itself(shim):
    r = run_cell(make_spec(["/bin/sh", "-c", "exit 3"]), env={**STUB, **shim})
    assert r.rc == 3, r
    assert r.event("observability.v1.process_spawned")["data"]["pid"] > 0


@pytest.mark.parametrize("backend", [STUB, OCI], ids=["stub", "oci-runc"])
def test_no_signalfd_for_the_supervisor_refuses_to_start_the_cell(shim, backend):
    # Without it SIGTERM/SIGINT would stay blocked for good: the supervisor
    # could not be stopped, and its cell only with SIGKILL.
    doc = make_spec(["/usr/bin/true"], id="no-signalfd")
    r = run_cell(doc, env={**backend, **shim, "FAILSHIM_SIGNALFD": "1"})
    assert r.rc == 125, r
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1 and "no-signalfd" in lines[0] and "signalfd" in lines[0] and \
        "Too many open files" in lines[0], r.err
    assert r.events == [], r.types  # nothing was started


def test_no_signalfd_for_the_oci_runtime_fails_create(shim):
    # The oci backend watches SIGTERM/SIGINT itself while the runtime creates
    # the container (the supervisor's own signalfd is the first call).
    r = run_cell(make_spec(["/usr/bin/true"]), env={**OCI, **shim, "FAILSHIM_SIGNALFD": "2"})
    assert r.rc == 125, r
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.failed"], r.types
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["phase"] == "create" and "signalfd" in f["message"], f
    assert "signalfd" in r.err


def test_no_so_passcred_on_the_control_socket_fails_create(shim):
    # The workload's pid in process_spawned comes with SCM_CREDENTIALS; without
    # SO_PASSCRED it was reported as 0.
    r = run_cell(make_spec(["/usr/bin/true"]), env={**STUB, **shim, "FAILSHIM_SO_PASSCRED": "1"})
    assert r.rc == 125, r
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.failed"], r.types
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["phase"] == "create" and "SO_PASSCRED" in f["message"], f
    assert not r.has("observability.v1.process_spawned")
