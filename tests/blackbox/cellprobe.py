"""Helpers for the containment tests (test_escape_*.py, test_containment_*.py).

A *probe* is a hostile workload: a Python program (run by /usr/bin/python3 inside
the cell) that tries one thing and prints, as its last line, one JSON object
saying what happened (errno names, exit codes, what it read). The test then
asserts containment on that object and, where it matters, on the host.

`PRELUDE` gives every probe `sc(nr, *args) -> (result, errno_name)` for raw
system calls by x86_64 number, `attempt(fn) -> "OK" | errno name`, and `out`,
the dict that is printed at exit.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import MARK, make_spec, py_argv, run_cell

ALL_NS = "net,mnt,pid,ipc,uts,cgroup"
# The fully isolated cell (`all`, the default: user included), the same with
# `user` listed by name, and every namespace but `user` — what a cell gets where the
# kernel refuses user namespaces: the workload then runs as the run's own host uid.
FULL = {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline"}
FULL_USER = {"CELLOS_SUBPROCESS_UNSHARE": ALL_NS + ",user", "CELLOS_SECCOMP": "baseline"}
NO_USER = {"CELLOS_SUBPROCESS_UNSHARE": ALL_NS, "CELLOS_SECCOMP": "baseline"}
# Containment that must hold without the seccomp filter too (capabilities,
# namespaces, read-only mounts do the work; the filter is defence in depth).
NO_FILTER = {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "off"}

MODES = {"full": FULL, "full+user": FULL_USER, "no-user": NO_USER}


def cell_uid(r) -> int:
    """The workload's uid as the cell sees it: root of its user namespace, or the
    run's own host uid without one (never host root either way)."""
    iso = r.event("lifecycle.v1.started")["data"]["isolation"]
    return 0 if "user" in iso["namespaces"] else iso["hostUid"]

# x86_64 system call numbers used by the probes.
NR = {
    "clone": 56, "ptrace": 101, "pivot_root": 155, "mount": 165, "umount2": 166, "swapon": 167,
    "reboot": 169, "init_module": 175, "delete_module": 176, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "finit_module": 313, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "open_tree": 428, "move_mount": 429, "fsopen": 430, "clone3": 435,
}

PRELUDE = r'''
import atexit, ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def ename(e):
    return errno.errorcode.get(e, str(e)) if e else "OK"
def sc(nr, *args):
    ctypes.set_errno(0)
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return r, (ename(ctypes.get_errno()) if r == -1 else "OK")
def attempt(fn, *args):
    try:
        fn(*args)
        return "OK"
    except OSError as e:
        return ename(e.errno)
out = {}
atexit.register(lambda: print(json.dumps(out), flush=True))
'''


def probe(code: str, env: dict, *, run_extra=None, expect_rc=0, **kw):
    """Run `code` (after PRELUDE) in a cell; returns (results dict, Result)."""
    spec = make_spec(py_argv(PRELUDE + code), run_extra=run_extra, **kw)
    r = run_cell(spec, env=env)
    assert r.rc == expect_rc, r
    lines = [l for l in r.out.splitlines() if l.startswith("{")]
    assert lines, f"the probe printed no result; stdout={r.out!r} stderr={r.err!r}"
    return json.loads(lines[-1]), r


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


@pytest.fixture
def host_opt_dir():
    """A fresh directory under the host's /opt, which cells see read-only: the
    way to put a file of our choosing where a cell can reach it. Removed after."""
    d = Path("/opt") / f"{MARK}-{os.urandom(4).hex()}"
    d.mkdir(mode=0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
