"""Secure by default (SPEC §3, §6.1; issue 9): what a user gets with no variable set.

With no configuration a cell has every namespace including `user`, the seccomp
baseline, and a host uid of its own that no other live run has: never host root,
never shared. These tests run the real supervisor with an empty environment (only
PATH and the JSONL sink) unless they say otherwise.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import (PY, SUPERVISOR, Running, make_spec, new_dir, py_argv, run_cell, supervisor_env, unique_id,
                      prepare, Result)

UID_FIRST, UID_LAST = 3000000000, 3000999999
ALL_NS = {"net", "mnt", "pid", "ipc", "uts", "user", "cgroup"}
NS_GET_OWNER_UID = 0xB704  # _IO(0xb7, 0x4)

libc = ctypes.CDLL(None, use_errno=True)


def status_ids(pid: int) -> tuple[int, int]:
    """(effective uid, effective gid) of a host process, as the host sees them."""
    uid = gid = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[2])
            elif line.startswith("Gid:"):
                gid = int(line.split()[2])
    return uid, gid


def userns_owner(pid: int) -> int:
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    try:
        buf = bytearray(4)
        fcntl.ioctl(fd, NS_GET_OWNER_UID, buf)
        return struct.unpack("I", buf)[0]
    finally:
        os.close(fd)


def host_uid(res) -> int:
    return res.event("lifecycle.v1.started")["data"]["isolation"]["hostUid"]


# --------------------------------------------------------------------------- the default cell


def test_default_cell_has_every_namespace_seccomp_and_its_own_uid():
    res = run_cell(make_spec(py_argv(
        "import os; print(os.getuid(), open('/proc/self/uid_map').read().split(), "
        "[l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])")))
    assert res.rc == 0, res.err
    iso = res.event("lifecycle.v1.started")["data"]["isolation"]
    assert set(iso["namespaces"]) == ALL_NS
    assert iso["seccomp"] == "baseline"
    uid = iso["hostUid"]
    assert UID_FIRST <= uid <= UID_LAST
    # Inside: root of its own user namespace, mapped to the run's uid only; filter on.
    inner_uid, rest = res.out.split(" ", 1)
    assert inner_uid == "0"
    assert f"['0', '{uid}', '1']" in rest
    assert rest.strip().endswith("2"), res.out  # Seccomp: 2 (filter mode)
    assert res.event("observability.v1.network_policy")["data"]["isolationMode"] == "clone_newnet"


def test_the_workload_process_is_the_run_uid_on_the_host_and_owns_its_user_namespace():
    """Seen from the host: the workload runs as the run's uid, and its user namespace
    is *owned* by that uid (so per-user kernel counters charge the cell, not root)."""
    r = Running(make_spec(["/usr/bin/sleep", "30"]))
    try:
        spawned = r.wait_event("observability.v1.process_spawned")
        pid = spawned["data"]["pid"]
        uid = r.wait_event("lifecycle.v1.started")["data"]["isolation"]["hostUid"]
        assert status_ids(pid) == (uid, uid)
        assert userns_owner(pid) == uid
        assert uid != 0
    finally:
        r.proc.terminate()
        r.finish()


def test_two_live_runs_never_share_a_uid():
    runs = [Running(make_spec(["/usr/bin/sleep", "30"])) for _ in range(4)]
    try:
        uids = [r.wait_event("lifecycle.v1.started")["data"]["isolation"]["hostUid"] for r in runs]
        assert len(set(uids)) == len(uids), uids
    finally:
        for r in runs:
            r.proc.terminate()
        for r in runs:
            r.finish()


def test_the_uid_is_released_when_the_run_ends():
    res = run_cell(make_spec(["/usr/bin/true"]))
    assert res.rc == 0
    uid = host_uid(res)
    lock = Path(f"/run/cellos/uids/{uid}.lock")
    assert not lock.exists(), f"{lock} left behind"


def test_nested_user_namespaces_are_refused_even_without_seccomp():
    """max_user_namespaces is 0 inside the cell's user namespace: with the seccomp
    filter off, unshare(CLONE_NEWUSER) still fails."""
    code = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
            "rc = libc.unshare(0x10000000); print(rc, ctypes.get_errno(), "
            "open('/proc/sys/user/max_user_namespaces').read().strip())")
    res = run_cell(make_spec(py_argv(code)), env={"CELLOS_SECCOMP": "off"})
    assert res.rc == 0, res.err
    rc, err, limit = res.out.split()
    assert rc == "-1" and int(err) == errno.ENOSPC, res.out
    assert limit == "0"
    assert "CELLOS_SECCOMP=off" in res.err  # off is loud


# --------------------------------------------------------------------------- root-only host files (finding 3)


@pytest.fixture
def root_only_canary():
    """A 0600 root file in a 0700 root directory under /etc (bound into every cell,
    and on no mask list)."""
    d = Path(tempfile.mkdtemp(prefix="cellos-canary-", dir="/etc"))
    os.chmod(d, 0o700)
    f = d / "secret"
    f.write_text("root-only-canary\n")
    os.chmod(f, 0o600)
    yield f
    shutil.rmtree(d)


@pytest.mark.parametrize("unshare", [None, "1", "net,mnt,pid,ipc,uts", "0"])
def test_root_only_host_files_are_unreadable(root_only_canary, unshare):
    code = (f"import sys\ntry:\n    open({str(root_only_canary)!r}).read(); print('READ')\n"
            f"except PermissionError: print('EACCES')\n")
    env = {"CELLOS_SUBPROCESS_UNSHARE": unshare} if unshare else {}
    res = run_cell(make_spec(py_argv(code)), env=env)
    assert res.rc == 0, res.err
    assert res.out.strip() == "EACCES"
    assert root_only_canary.read_text() == "root-only-canary\n"  # control: it is there, root reads it


# --------------------------------------------------------------------------- no user namespace: the run's uid


@pytest.mark.parametrize("unshare", ["1", "0", "none", "net,ipc"])
def test_without_a_user_namespace_the_workload_runs_as_the_run_uid(unshare):
    res = run_cell(make_spec(py_argv("import os; print(os.getuid(), os.getgid(), os.getgroups())")),
                   env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert res.rc == 0, res.err
    uid = host_uid(res)
    assert UID_FIRST <= uid <= UID_LAST
    assert res.out.split(None, 2)[:2] == [str(uid), str(uid)]
    assert res.out.split(None, 2)[2].strip() == "[]"
    assert "user" not in res.event("lifecycle.v1.started")["data"]["isolation"]["namespaces"]


@pytest.mark.parametrize("unshare", ["0", "none"])
def test_host_mode_is_explicit_and_warned(unshare):
    res = run_cell(make_spec(["/usr/bin/true"]), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert res.rc == 0, res.err
    assert "host mode" in res.err and "CELLOS_SUBPROCESS_UNSHARE" in res.err
    assert res.event("observability.v1.network_policy")["data"]["isolationMode"] == "host"
    assert res.event("lifecycle.v1.started")["data"]["isolation"]["namespaces"] == []


def test_without_a_user_namespace_the_cell_has_a_passwd_entry_and_owns_its_workspace():
    code = ("import os, pwd, grp; p = pwd.getpwuid(os.getuid()); "
            "open('out', 'w').write('x'); "
            "print(p.pw_name, p.pw_dir, grp.getgrgid(os.getgid()).gr_name, os.stat('.').st_uid == os.getuid())")
    res = run_cell(make_spec(py_argv(code), run_extra={"workingDirectory": "/work/x"}),
                   env={"CELLOS_SUBPROCESS_UNSHARE": "1"})
    assert res.rc == 0, res.err
    assert res.out.split() == ["cellos", "/work/x", "cellos", "True"]


def test_file_secrets_are_readable_by_the_run_uid_without_a_user_namespace():
    spec = make_spec(["/bin/sh", "-c", 'cat "$CELLOS_SECRETS_DIR/TOKEN"'], secret_refs=["TOKEN"],
                     run_extra={"secretDelivery": "file"})
    res = run_cell(spec, env={"CELLOS_SUBPROCESS_UNSHARE": "1", "CELLOS_SECRET_TOKEN": "s3cr3t"})
    assert res.rc == 0, res.err
    assert res.out == "s3cr3t"


# --------------------------------------------------------------------------- pid follows mnt


def test_mnt_implies_pid():
    """Without a PID namespace the workload could see (and SIGSTOP) the supervisor."""
    code = "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    res = run_cell(make_spec(py_argv(code)), env={"CELLOS_SUBPROCESS_UNSHARE": "mnt"})
    assert res.rc == 0, res.err
    assert {"mnt", "pid"} <= set(res.event("lifecycle.v1.started")["data"]["isolation"]["namespaces"])
    assert eval(res.out) == [1, 2], res.out  # the cell's init and the workload, nothing of the host


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("var,value,needle", [
    ("CELLOS_CELL_UID_RANGE", "0-100000", "CELLOS_CELL_UID_RANGE"),
    ("CELLOS_CELL_UID_RANGE", "5000-5010", "CELLOS_CELL_UID_RANGE"),
    ("CELLOS_CELL_UID_RANGE", "abc", "CELLOS_CELL_UID_RANGE"),
    ("CELLOS_CELL_UID_RANGE", "9000-8000", "CELLOS_CELL_UID_RANGE"),
    ("CELLOS_CELL_UID", "0", "CELLOS_CELL_UID"),
    ("CELLOS_CELL_UID", "-5", "CELLOS_CELL_UID"),
    ("CELLOS_CELL_GID", "5000", "CELLOS_CELL_GID"),
])
def test_bad_identity_configuration_is_refused(var, value, needle):
    res = run_cell(make_spec(["/usr/bin/true"]), env={var: value})
    assert res.rc == 125
    assert needle in res.err
    assert res.events == []


def test_a_fixed_uid_needs_a_pid_namespace():
    res = run_cell(make_spec(["/usr/bin/true"]),
                   env={"CELLOS_CELL_UID": "4000000", "CELLOS_SUBPROCESS_UNSHARE": "net"})
    assert res.rc == 125
    assert "CELLOS_CELL_UID" in res.err and "PID namespace" in res.err


@pytest.mark.parametrize("unshare", [None, "1"])
def test_a_fixed_uid_is_used(unshare):
    env = {"CELLOS_CELL_UID": "4000000", "CELLOS_CELL_GID": "4000001"}
    if unshare:
        env["CELLOS_SUBPROCESS_UNSHARE"] = unshare
    r = Running(make_spec(["/usr/bin/sleep", "30"]), env=env)
    try:
        pid = r.wait_event("observability.v1.process_spawned")["data"]["pid"]
        assert status_ids(pid) == (4000000, 4000001)
    finally:
        r.proc.terminate()
        r.finish()


def test_a_custom_range_is_used():
    res = run_cell(make_spec(["/usr/bin/true"]), env={"CELLOS_CELL_UID_RANGE": "200000-200015"})
    assert res.rc == 0, res.err
    assert 200000 <= host_uid(res) <= 200015


def test_hardened_requires_a_user_namespace():
    res = run_cell(make_spec(["/usr/bin/true"]),
                   env={"CELLOS_DEPLOYMENT_PROFILE": "hardened", "CELLOS_SUBPROCESS_UNSHARE": "net,mnt,pid,ipc,uts"})
    assert res.rc == 125
    assert "user" in res.err and "CELLOS_SUBPROCESS_UNSHARE" in res.err


# --------------------------------------------------------------------------- kernel refuses user namespaces


NOUSERNS = Path(__file__).with_name("nouserns.py")


def run_without_userns(spec, env=None) -> Result:
    """The supervisor where the kernel refuses user namespaces: inside a user
    namespace of the test's own whose max_user_namespaces is 0 (nouserns.py); the
    host's setting is never touched."""
    d, spec_path, jsonl = prepare(spec)
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/python3", str(NOUSERNS), str(SUPERVISOR), str(spec_path)],
                       env=supervisor_env(env, jsonl), capture_output=True, timeout=60, cwd=d,
                       stdin=subprocess.DEVNULL)
    return Result(p.returncode, p.stdout, p.stderr, jsonl, spec_path, time.monotonic() - t0)


def test_all_falls_back_without_user_namespaces_and_drops_to_the_run_uid():
    res = run_without_userns(make_spec(py_argv("import os; print(os.getuid(), os.getgid())")))
    assert res.rc == 0, res.err
    assert "warn: the kernel refuses a user namespace" in res.err
    iso = res.event("lifecycle.v1.started")["data"]["isolation"]
    assert set(iso["namespaces"]) == ALL_NS - {"user"}
    assert res.out.split() == [str(iso["hostUid"])] * 2
    # Control: the same document outside gets its user namespace.
    assert "user" in run_cell(make_spec(["/usr/bin/true"])).event("lifecycle.v1.started")["data"]["isolation"]["namespaces"]


def test_an_explicit_user_namespace_the_kernel_refuses_is_fatal():
    res = run_without_userns(make_spec(["/usr/bin/true"]), env={"CELLOS_SUBPROCESS_UNSHARE": "user,net,mnt,pid"})
    assert res.rc == 125, res.err
    assert "clone3" in res.err
    assert res.event("lifecycle.v1.failed")["data"]["phase"] == "create"


# --------------------------------------------------------------------------- kernel keyring (finding 4)

KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4
KEYCTL_GET_KEYRING_ID, KEYCTL_READ, KEYCTL_SEARCH, KEYCTL_INVALIDATE = 0, 11, 10, 21
SYS_add_key, SYS_keyctl = 248, 250


def keyctl(*args):
    rc = libc.syscall(SYS_keyctl, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return rc, ctypes.get_errno()


@pytest.mark.parametrize("unshare", [None, "1"])
def test_the_cell_has_a_keyring_of_its_own(unshare):
    """Host root's session keyring is neither readable nor writable from a cell,
    and keys a cell adds do not outlive it in root's keyrings (seccomp off: the
    keyring itself must hold, not only the filter)."""
    desc = f"cellos-host-canary-{unique_id()}".encode()
    serial = libc.syscall(SYS_add_key, b"user", desc, b"host-secret", 11, ctypes.c_long(KEY_SPEC_SESSION_KEYRING))
    assert serial > 0, os.strerror(ctypes.get_errno())
    host_session, _ = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    cell_desc = f"cellos-cell-canary-{unique_id()}"
    code = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
L = ctypes.c_long
buf = ctypes.create_string_buffer(64)
rc = libc.syscall(250, L(11), L({serial}), buf, L(64))
print('read', rc, ctypes.get_errno())
print('session', libc.syscall(250, L(0), L(-3), L(0)))
for ring in (-3, -4):
    print('add', libc.syscall(248, b'user', b'{cell_desc}', b'x', L(1), L(ring)) > 0)
"""
    env = {"CELLOS_SECCOMP": "off"}
    if unshare:
        env["CELLOS_SUBPROCESS_UNSHARE"] = unshare
    try:
        res = run_cell(make_spec(py_argv(code)), env=env)
        assert res.rc == 0, res.err
        lines = res.out.splitlines()
        read = lines[0].split()
        assert read[1] == "-1" and int(read[2]) in (errno.EACCES, errno.ENOKEY), res.out
        assert int(lines[1].split()[1]) != host_session
        # Whatever the cell added is nowhere in root's keyrings afterwards.
        for ring in (KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING):
            rc, err = keyctl(KEYCTL_SEARCH, ring, ctypes.c_char_p(b"user"), ctypes.c_char_p(cell_desc.encode()), 0)
            assert rc == -1 and err == errno.ENOKEY, f"cell key found in host ring {ring}"
    finally:
        keyctl(KEYCTL_INVALIDATE, serial)


# --------------------------------------------------------------------------- per-user kernel quotas (finding 7)


def _inotify_init():
    fd = libc.inotify_init1(os.O_CLOEXEC)
    return fd, ctypes.get_errno()


@pytest.mark.parametrize("unshare", [None, "1"])
def test_a_cell_exhausting_inotify_leaves_host_root_its_budget(unshare):
    limit = int(open("/proc/sys/fs/inotify/max_user_instances").read())
    code = ("import ctypes, os, sys, time\nlibc = ctypes.CDLL(None, use_errno=True)\nn = 0\n"
            "while libc.inotify_init1(0) >= 0:\n    n += 1\n"
            "print('READY', n, ctypes.get_errno(), flush=True)\ntime.sleep(20)\n")
    env = {"CELLOS_SUBPROCESS_UNSHARE": unshare} if unshare else {}
    d, spec_path, jsonl = prepare(make_spec(py_argv(code), ttl=30))
    p = subprocess.Popen([str(SUPERVISOR), str(spec_path)], env=supervisor_env(env, jsonl), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=d)
    try:
        line = p.stdout.readline().decode()
        assert line.startswith("READY"), line + p.stderr.read().decode()
        _, n, err = line.split()
        # The cell spent a per-user budget to the end (its own: the limit of
        # this namespace level, or a lower one set above it on other hosts)...
        assert 0 < int(n) <= limit and int(err) == errno.EMFILE, line
        # ...while host root can still make instances.
        fd, e = _inotify_init()
        assert fd >= 0, f"host root's inotify_init1 failed: {os.strerror(e)}"
        os.close(fd)
    finally:
        p.terminate()
        p.communicate(timeout=20)


# --------------------------------------------------------------------------- argv[0] (finding 6)


def test_relative_path_entries_are_skipped_so_the_checked_file_is_the_executed_one():
    """A relative PATH entry used to be resolved twice: for the prefix check in the
    init's cwd, and for the exec after chdir(workingDirectory). A planted file under
    the working directory then ran although the check had passed on /usr/bin."""
    wd = Path(tempfile.mkdtemp(prefix="cellos-argv0-"))
    try:
        os.chmod(wd, 0o755)
        (wd / "usr" / "bin").mkdir(parents=True)
        evil = wd / "usr" / "bin" / "true"
        evil.write_text("#!/bin/sh\necho PLANTED\n")
        os.chmod(evil, 0o755)
        for p in (wd / "usr", wd / "usr" / "bin"):
            os.chmod(p, 0o755)
        spec = make_spec(["true"], run_extra={"workingDirectory": str(wd), "env": {"PATH": "usr/bin"}})
        res = run_cell(spec, env={"CELLOS_SUBPROCESS_UNSHARE": "0", "CELLOS_RUN_ARGV0_ALLOW_PREFIXES": "/usr/bin"},
                       cwd="/")
        assert "PLANTED" not in res.out
        assert res.rc == 127, res  # not found: the only PATH entry is relative
        # Control: the planted file is found when the entry is absolute, and refused by the prefix check.
        spec = make_spec(["true"], run_extra={"workingDirectory": str(wd), "env": {"PATH": f"{wd}/usr/bin"}})
        res = run_cell(spec, env={"CELLOS_SUBPROCESS_UNSHARE": "0", "CELLOS_RUN_ARGV0_ALLOW_PREFIXES": "/usr/bin"},
                       cwd="/")
        assert res.rc == 125 and "CELLOS_RUN_ARGV0_ALLOW_PREFIXES" in res.err
        assert "PLANTED" not in res.out
    finally:
        shutil.rmtree(wd)


def test_the_program_is_resolved_to_an_absolute_path_in_the_cell():
    res = run_cell(make_spec(["./run.sh"], run_extra={"workingDirectory": "/work"}),
                   env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    # Nothing is there: 127, and the resolution was absolute, in the cell's cwd.
    assert res.rc == 127
    res = run_cell(make_spec(["python3", "-c", "print(1)"]))
    assert res.rc == 0
    assert res.event("observability.v1.process_spawned")["data"]["program"] == "/usr/bin/python3"


def test_scripts_still_run():
    """The checked file is executed through its descriptor; a #! script falls back to
    its absolute path (its interpreter cannot open a close-on-exec /dev/fd/N)."""
    assert open("/usr/bin/ldd", "rb").read(2) == b"#!"  # a shell script on Debian
    res = run_cell(make_spec(["ldd", "--version"]))
    assert res.rc == 0, res.err
    assert "ldd" in res.out
    assert res.event("observability.v1.process_spawned")["data"]["program"] == "/usr/bin/ldd"


def test_a_killed_supervisors_uid_lock_is_swept_by_the_next_run():
    """A SIGKILLed supervisor cannot release its uid; the next run removes the
    stale lock (and could take that uid again), so nothing of it stays."""
    r = Running(make_spec(["/usr/bin/sleep", "30"]))
    uid = r.wait_event("lifecycle.v1.started")["data"]["isolation"]["hostUid"]
    pid = r.wait_event("observability.v1.process_spawned")["data"]["pid"]
    lock = Path(f"/run/cellos/uids/{uid}.lock")
    assert lock.exists()
    r.proc.kill()
    r.proc.communicate()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}"), "the cell outlived its supervisor"
    assert lock.exists()  # nobody released it
    assert run_cell(make_spec(["/usr/bin/true"])).rc == 0
    assert not lock.exists(), f"{lock} of a dead run left behind"
