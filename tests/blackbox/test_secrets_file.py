"""SPEC §5: the file broker (CELLOS_BROKER=file), file delivery (a private tmpfs
secrets directory inside the cell), memory hygiene, and secret values (and
export credentials) never reaching events, logs, error text or files outside
the cell."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import struct
import subprocess
import time
import uuid

import pytest

from conftest import (HOST_MODE, SUPERVISOR, make_spec, new_dir, prepare, py_argv, run_cell, supervisor_env,
                      unique_id)
from exporthelp import tree
from httprecorder import Recorder

pytestmark = pytest.mark.usefixtures("no_residue")

SECRETS_DIR = "/run/cellos/secrets"
F_SETPIPE_SZ = 1031
SANITIZED = b"__asan_init" in SUPERVISOR.read_bytes()
ALL_USER = "net,mnt,pid,ipc,uts,cgroup,user"
# `all` now includes user; the same list without it (the workload then runs as the
# run's own host uid, and the secrets belong to it).
ALL_NO_USER = "net,mnt,pid,ipc,uts,cgroup"


def canary(tag="canary"):
    return f"{tag}-{uuid.uuid4().hex}"


def secret_file(content: bytes, name="s") -> str:
    d = new_dir("sec")
    p = d / name
    p.write_bytes(content)
    os.chmod(p, 0o600)
    return str(p)


def no_leak(r, *values, stdout=True):
    """Not in any event or log line (nor on stdout, unless the workload printed it)."""
    for v in values:
        vb = v.encode() if isinstance(v, str) else v
        places = [("events", r.raw), ("stderr", r.err_bytes)] + ([("stdout", r.out_bytes)] if stdout else [])
        for where, data in places:
            assert vb not in data, f"secret value leaked to {where}"


PRINT_ENV = "import os, json\nprint(json.dumps({k: os.environ.get(k) for k in %r}))\n"


# ------------------------------------------------------------------ the file broker


@pytest.mark.parametrize("content,value", [
    (b"v", "v"), (b"v\n", "v"), (b"v\n\n", "v\n"), (b"v\r\n", "v\r"), (b"", ""), (b"\n", ""),
    (b"two\nlines\n", "two\nlines"), ("h\u00e9 \U0001f511".encode(), "h\u00e9 \U0001f511"),
])
def test_file_broker_reads_the_file_and_strips_one_trailing_newline(content, value):
    r = run_cell(make_spec(py_argv(PRINT_ENV % ["TOKEN"]), secret_refs=["TOKEN"]),
                 env={"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_TOKEN": secret_file(content)})
    assert r.rc == 0, r
    assert json.loads(r.out) == {"TOKEN": value}


def test_file_broker_variable_name_follows_the_secret_ref():
    # '-' and '.' become '_' (such a name needs file delivery: it is no env name).
    code = f"print(open('{SECRETS_DIR}/my-db.password').read())"
    r = run_cell(make_spec(py_argv(code), secret_refs=["my-db.password"], run_extra={"secretDelivery": "file"}),
                 env={"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_MY_DB_PASSWORD": secret_file(b"pw\n"),
                      "CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert r.out == "pw\n"


def test_file_broker_ignores_the_env_broker_variables():
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["TOKEN"]),
                 env={"CELLOS_BROKER": "file", "CELLOS_SECRET_TOKEN": "from-env"})
    assert r.rc == 125, r
    assert "CELLOS_SECRET_FILE_TOKEN" in r.err
    assert r.event("lifecycle.v1.failed")["data"]["phase"] == "secrets"


def _bad_source(kind, value: bytes):
    d = new_dir("bad")
    p = d / "src"
    if kind == "symlink":
        real = d / "real"
        real.write_bytes(value)
        p.symlink_to(real)
    elif kind == "directory":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "device":
        return "/dev/null", "device"
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
    elif kind == "too-big":
        p.write_bytes(value + b"x" * (1024 * 1024 + 1 - len(value)))
    elif kind == "too-big-by-a-newline":
        p.write_bytes(value[:16] + b"y" * (1024 * 1024 - 16) + b"\n")
    elif kind == "missing-file":
        pass
    elif kind == "unreadable-dir":
        return str(d / "nodir" / "x"), "No such file"
    want = {"symlink": "symbolic link", "directory": "directory", "fifo": "FIFO", "socket": "socket",
            "too-big": "1 MiB", "too-big-by-a-newline": "1 MiB", "missing-file": "No such file"}[kind]
    return str(p), want


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo", "device", "socket", "too-big",
                                  "too-big-by-a-newline", "missing-file", "unreadable-dir"])
def test_file_broker_refuses_what_is_not_a_small_regular_file(kind):
    value = canary()
    path, want = _bad_source(kind, value.encode())
    # Host mode and a directory writable for the run's uid: had the workload run,
    # its marker would be on the host (in a default cell it never could be).
    marker = new_dir("m", cell_writable=True) / "ran"
    doc = make_spec(["/usr/bin/touch", str(marker)], id="file-broker-refusal", secret_refs=["OK", "DEPLOY_KEY"])
    t0 = time.monotonic()
    r = run_cell(doc, env={**HOST_MODE, "CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_OK": secret_file(b"fine"),
                           "CELLOS_SECRET_FILE_DEPLOY_KEY": path, "CELLOS_LOG": "debug"})
    assert time.monotonic() - t0 < 10, "the broker waited on something (a FIFO must be refused, not opened)"
    assert r.rc == 125, r
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.failed"], r.types
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["phase"] == "secrets" and f["reason"] == "secret_unavailable"
    assert "DEPLOY_KEY" in f["message"] and want in f["message"], f["message"]
    assert "CELLOS_SECRET_FILE_DEPLOY_KEY" in r.err
    assert not marker.exists()
    no_leak(r, value, "fine")


def test_file_broker_missing_variable_names_it():
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["NOPE"]), env={"CELLOS_BROKER": "file"})
    assert r.rc == 125, r
    assert "NOPE" in r.event("lifecycle.v1.failed")["data"]["message"]
    assert "CELLOS_SECRET_FILE_NOPE is not set" in r.err


def test_file_broker_accepts_exactly_one_mebibyte():
    data = os.urandom(1024 * 1024 - 1) + b"z"  # no trailing newline to strip
    code = (f"import hashlib\nd = open('{SECRETS_DIR}/BIG', 'rb').read()\n"
            "print(len(d), hashlib.sha256(d).hexdigest())\n")
    r = run_cell(make_spec(py_argv(code), secret_refs=["BIG"], run_extra={"secretDelivery": "file"}),
                 env={"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_BIG": secret_file(data),
                      "CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert r.out.split() == [str(len(data)), hashlib.sha256(data).hexdigest()]


def test_a_nul_byte_cannot_be_delivered_by_env_but_can_by_file():
    value = b"be\x00fore"
    env = {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_BIN": secret_file(value), "CELLOS_SUBPROCESS_UNSHARE": "all"}
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["BIN"]), env=env)
    assert r.rc == 125, r
    assert "BIN" in r.err and "NUL" in r.err
    code = f"import sys\nsys.stdout.buffer.write(open('{SECRETS_DIR}/BIN', 'rb').read())\n"
    r = run_cell(make_spec(py_argv(code), secret_refs=["BIN"], run_extra={"secretDelivery": "file"}), env=env)
    assert r.rc == 0, r
    assert r.out_bytes == value


# ------------------------------------------------------------------ file delivery


LAYOUT = r"""
import errno, json, os, stat
D = os.environ.get("CELLOS_SECRETS_DIR")
out = {"dir_env": D, "names": sorted(os.listdir(D)), "in_environ": sorted(k for k in os.environ
       if k not in ("PATH", "HOME", "CELLOS_CELL_ID", "CELLOS_RUN_ID", "CELLOS_SECRETS_DIR", "LC_CTYPE")),
       "uid": os.getuid()}
st = os.stat(D)
out["dir"] = [oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid]
out["files"] = {}
for n in out["names"]:
    s = os.stat(os.path.join(D, n), follow_symlinks=False)
    out["files"][n] = [oct(stat.S_IMODE(s.st_mode)), s.st_uid, s.st_gid, stat.S_ISREG(s.st_mode),
                       open(os.path.join(D, n)).read()]
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4] == D:
        out["mount"] = {"opts": f[5].split(","), "fstype": f[f.index("-") + 1]}
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
out["write"] = attempt(lambda: open(os.path.join(D, out["names"][0]), "w").write("x"))
out["create"] = attempt(lambda: open(os.path.join(D, "new"), "w"))
out["chmod"] = attempt(lambda: os.chmod(os.path.join(D, out["names"][0]), 0o644))
out["unlink"] = attempt(lambda: os.unlink(os.path.join(D, out["names"][0])))
print(json.dumps(out))
"""


@pytest.mark.parametrize("broker", ["env", "file"])
@pytest.mark.parametrize("unshare", ["all", ALL_USER, ALL_NO_USER, "mnt"],
                         ids=["all", "all+user", "all-but-user", "mnt-only"])
def test_file_delivery_private_tmpfs_layout(broker, unshare):
    a, b = canary("a"), canary("b")
    env = {"CELLOS_SUBPROCESS_UNSHARE": unshare, "CELLOS_BROKER": broker}
    if broker == "file":
        env.update(CELLOS_SECRET_FILE_API_TOKEN=secret_file(a.encode() + b"\n"),
                   CELLOS_SECRET_FILE_DB_PASS=secret_file(b.encode()))
    else:
        env.update(CELLOS_SECRET_API_TOKEN=a, CELLOS_SECRET_DB_PASS=b)
    doc = make_spec(py_argv(LAYOUT), secret_refs=["API_TOKEN", "db.pass"], run_extra={"secretDelivery": "file"})
    r = run_cell(doc, env=env)
    assert r.rc == 0, r
    out = json.loads(r.out)
    assert out["dir_env"] == SECRETS_DIR
    assert out["in_environ"] == [], "file delivery must not also put secrets in the environment"
    assert out["names"] == ["API_TOKEN", "db.pass"]
    # The workload's own identity owns the secrets: root of its user namespace, or,
    # without one, the run's own unprivileged host uid (= gid).
    iso = r.event("lifecycle.v1.started")["data"]["isolation"]
    me = 0 if "user" in iso["namespaces"] else iso["hostUid"]
    assert me == 0 or 3000000000 <= me <= 3000999999, iso
    assert out["dir"] == ["0o700", me, me]
    assert out["files"] == {"API_TOKEN": ["0o400", me, me, True, a], "db.pass": ["0o400", me, me, True, b]}
    assert out["uid"] == me
    assert out["mount"]["fstype"] == "tmpfs"
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(out["mount"]["opts"]), out["mount"]
    assert out["write"] in ("EROFS", "EACCES") and out["create"] in ("EROFS", "EACCES")
    assert out["chmod"] in ("EROFS", "EPERM") and out["unlink"] in ("EROFS", "EACCES")
    assert r.event("compliance.v1.summary")["data"]["secretDeliveryMode"] == "file"
    no_leak(r, a, b, stdout=False)  # the workload printed them itself


def test_file_delivery_without_secrets_gives_an_empty_directory():
    code = "import os\nprint(os.environ['CELLOS_SECRETS_DIR'], os.listdir(os.environ['CELLOS_SECRETS_DIR']))\n"
    r = run_cell(make_spec(py_argv(code), run_extra={"secretDelivery": "file"}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    assert r.out.strip() == f"{SECRETS_DIR} []"


# "0": explicit host mode ("" now means `all`, which has a mount namespace).
@pytest.mark.parametrize("unshare", ["0", "net,ipc,uts", "user"])
def test_file_delivery_without_a_mount_namespace_is_refused(unshare):
    # A directory the workload could write, were it run (no mount namespace: the
    # marker would land on the host).
    marker = new_dir("m", cell_writable=True) / "ran"
    doc = make_spec(["/usr/bin/touch", str(marker)], secret_refs=["T"], run_extra={"secretDelivery": "file"})
    env = {"CELLOS_SUBPROCESS_UNSHARE": unshare, "CELLOS_SECRET_T": canary()}
    r = run_cell(doc, env=env)
    assert r.rc == 125, r
    assert r.events == [], r.types
    lines = [l for l in r.err.splitlines() if l.strip() and "host mode" not in l]
    assert len(lines) == 1 and "spec.run.secretDelivery" in lines[0] and "mount namespace" in lines[0], r.err
    assert not marker.exists()
    assert run_cell(doc, env=env, args=["--validate", "{spec}"]).rc == 125


def test_file_delivery_on_the_gvisor_backend_is_refused_clearly():
    doc = make_spec(["/usr/bin/true"], secret_refs=["T"], run_extra={"secretDelivery": "file"})
    r = run_cell(doc, env={"CELLOS_CELL_BACKEND": "gvisor", "CELLOS_SECRET_T": "x"})
    assert r.rc == 125 and r.events == [], r
    assert "spec.run.secretDelivery" in r.err and "gvisor" in r.err


def _mntns_alive(ino: int) -> list[int]:
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/ns/mnt") == f"mnt:[{ino}]":
                    pids.append(int(p))
            except OSError:
                pass
    return pids


def _host_mounts_of_secrets():
    return [l for l in open("/proc/self/mountinfo") if SECRETS_DIR in l]


def test_the_secrets_directory_vanishes_with_the_cell():
    value = canary()
    code = ("import os\nprint(os.stat('/proc/self/ns/mnt').st_ino)\n"
            f"assert open('{SECRETS_DIR}/T').read() == {value!r}\n")
    host_had = os.path.exists(SECRETS_DIR)
    r = run_cell(make_spec(py_argv(code), secret_refs=["T"], run_extra={"secretDelivery": "file"}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECRET_T": value})
    assert r.rc == 0, r
    ino = int(r.out.strip())
    assert _mntns_alive(ino) == [], "the cell's mount namespace (and its secrets tmpfs) outlived the run"
    assert os.path.exists(SECRETS_DIR) == host_had, "the secrets directory appeared on the host"
    assert _host_mounts_of_secrets() == []


def test_secrets_directory_cannot_be_exported():
    value = canary()
    root = new_dir("exp")
    doc = make_spec(["/usr/bin/true"], secret_refs=["T"], run_extra={"secretDelivery": "file"},
                    spec_extra={"export": {"artifacts": [{"name": "t", "path": f"{SECRETS_DIR}/T"},
                                                         {"name": "d", "path": f"{SECRETS_DIR}//./T"}]}})
    r = run_cell(doc, env={"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECRET_T": value,
                           "CELLOS_EXPORT_DIR": str(root)})
    assert r.rc == 125, r
    for e in r.events:
        if e["type"].endswith("export.v2.failed"):
            assert "secrets" in e["data"]["reason"]
    assert len([e for e in r.events if e["type"].endswith("export.v2.failed")]) == 2
    assert tree(root) == {}
    no_leak(r, value)


# ------------------------------------------------------------------ memory hygiene


def _pages(pid: int, lo: int, hi: int):
    """(start, end) runs of the pages of [lo, hi) that are in memory or swapped
    (from /proc/<pid>/pagemap): a large mapping is mostly never touched."""
    with open(f"/proc/{pid}/pagemap", "rb") as pm:
        pm.seek(lo // 4096 * 8)
        addr, run = lo, None
        while addr < hi:
            n = min((hi - addr) // 4096, 1 << 16)
            data = pm.read(n * 8)
            for (entry,) in struct.iter_unpack("<Q", data):
                if entry & (3 << 62):
                    run = (run[0], addr + 4096) if run else (addr, addr + 4096)
                elif run:
                    yield run
                    run = None
                addr += 4096
        if run:
            yield run


def _scan_memory(pid: int, needles: list[bytes], ignore: bytes | None = None) -> list[str]:
    """Mappings of `pid` holding any needle. Large mappings are read only where
    pages exist; the sanitizer's shadow (terabytes) holds no data of ours. A
    mapping that holds `ignore` verbatim is not reported."""
    found = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if "r" not in f[1] or hi - lo > (1 << 40) or (len(f) > 5 and f[5].startswith(("[vvar", "[vsyscall"))):
                continue
            runs = [(lo, hi)] if hi - lo <= (64 << 20) else _pages(pid, lo, hi)
            for a, b in runs:
                try:
                    mem.seek(a)
                    data = mem.read(b - a)
                except OSError:
                    continue
                for n in needles:
                    if n in data and not (ignore and ignore in data):
                        found.append(f"{line.strip()} holds {n[:12]!r}...")
    return found


@pytest.mark.parametrize("broker,delivery", [("env", "env"), ("file", "file"), ("env", "file")])
def test_secret_values_are_locked_while_held_and_wiped_at_revoke(broker, delivery):
    """The events go to a FIFO with a small buffer; the test stops reading after the
    last event before destroy, so the supervisor blocks writing one of the two
    events that follow revoke, and its memory is searched then."""
    values = [canary("mem1"), canary("mem2")]
    token = canary("bearer")
    env = {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_BROKER": broker,
           "CELLOS_EXPORT_HTTP_BEARER_TOKEN": token}
    for i, v in enumerate(values):
        if broker == "file":
            env[f"CELLOS_SECRET_FILE_S{i}"] = secret_file(v.encode())
        else:
            env[f"CELLOS_SECRET_S{i}"] = v
    labels = {f"l{i}": "x" * 200 for i in range(30)}  # ~7 KiB per event that carries them
    code = "import time\ntime.sleep(0.3)\n"
    doc = make_spec(py_argv(code), secret_refs=["S0", "S1"], run_extra={"secretDelivery": delivery},
                    spec_extra={"correlation": {"labels": labels}})
    d, spec_path, _ = prepare(doc, jsonl=False)
    fifo = d / "events.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(rfd, F_SETPIPE_SZ, 4096)  # one page
        p = subprocess.Popen([str(SUPERVISOR), str(spec_path)], env=supervisor_env(env, fifo),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=d)
        buf = b""
        deadline = time.monotonic() + 20
        held_checked = False
        while b"command.v1.completed" not in buf:
            assert time.monotonic() < deadline, f"no command.completed; got {buf[-300:]!r}"
            try:
                chunk = os.read(rfd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                buf += chunk
            else:
                time.sleep(0.005)
            if not held_checked and b"process_spawned" in buf:
                # While held: never in /proc/<pid>/environ; in locked memory.
                environ = open(f"/proc/{p.pid}/environ", "rb").read()
                for v in values + [token]:
                    assert v.encode() not in environ, "a secret is still in the supervisor's environment"
                status = open(f"/proc/{p.pid}/status").read()
                # ASan turns mlock() into a no-op by design: only a plain build can show it.
                if not SANITIZED:
                    assert int(re.search(r"VmLck:\s+(\d+)", status)[1]) > 0, "no locked memory while held"
                # Positive control: the scan does find them while they are held.
                assert _scan_memory(p.pid, [values[0].encode()]), "the memory scan cannot see held secrets"
                held_checked = True
        assert held_checked
        # Let the supervisor run on to the first event after revoke, where it blocks.
        deadline = time.monotonic() + 20
        while True:
            wchan = open(f"/proc/{p.pid}/wchan").read()
            stat_state = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0]
            if stat_state == "S" and "pipe" in wchan:
                break
            assert p.poll() is None and time.monotonic() < deadline, f"supervisor did not block ({wchan})"
            time.sleep(0.01)
        # Events after command.completed that we have not read yet: none may be destroyed.
        # The sanitizer runtime copies the initial environment (/proc/self/environ)
        # into a buffer of its own before main(): beyond our reach, and absent
        # from a plain build, where the values must be nowhere at all.
        initial_env = b"\0".join(f"{k}={v}".encode() for k, v in supervisor_env(env, fifo).items())
        leaks = _scan_memory(p.pid, [v.encode() for v in values], ignore=initial_env if SANITIZED else None)
        assert leaks == [], "secret values still in the supervisor's memory after revoke:\n" + "\n".join(leaks)
    finally:
        # Drain so it can finish.
        os.set_blocking(rfd, True)
        rest = b""
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            rest += chunk
        os.close(rfd)
        p.communicate(timeout=20)
    assert p.returncode == 0, p.stderr
    assert b"lifecycle.v1.destroyed" in buf + rest
    assert b"compliance.v1.summary" not in buf, "the test read past revoke: it proves nothing"


# ------------------------------------------------------------------ canaries everywhere


@pytest.mark.parametrize("outcome", ["success", "failure", "timeout", "export-refused"])
@pytest.mark.parametrize("broker,delivery", [("env", "env"), ("file", "env"), ("file", "file"), ("env", "file")])
def test_canaries_never_reach_events_logs_or_the_export_root(broker, delivery, outcome):
    s1, s2, tok = canary("s1"), canary("s2"), canary("tok")
    root, dlq = new_dir("exp"), new_dir("dlq")
    env = {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_BROKER": broker, "CELLOS_EXPORT_DIR": str(root),
           "CELLOS_EXPORT_HTTP_BEARER_TOKEN": tok, "CELLOS_LOG": "debug", "CELLOS_DLQ_DIR": str(dlq),
           "CELLOS_REDACT_EVENT_FIELDS": ""}
    if broker == "file":
        env.update(CELLOS_SECRET_FILE_ONE=secret_file(s1.encode() + b"\n"), CELLOS_SECRET_FILE_TWO=secret_file(s2.encode()))
    else:
        env.update(CELLOS_SECRET_ONE=s1, CELLOS_SECRET_TWO=s2)
    get = ("open(os.environ['CELLOS_SECRETS_DIR'] + '/' + n).read()" if delivery == "file" else "os.environ[n]")
    # Hashes, not the values: the argv is in command.completed.
    h1, h2 = (hashlib.sha256(v.encode()).hexdigest() for v in (s1, s2))
    code = ("import hashlib, os, sys, time\n"
            f"vals = {{n: hashlib.sha256({get}.encode()).hexdigest() for n in ('ONE', 'TWO')}}\n"
            f"assert vals == {{'ONE': {h1!r}, 'TWO': {h2!r}}}, 'wrong secrets'\n"
            "open('/work/report.txt', 'w').write('report without secrets\\n')\n"
            "print('workload saw', len(vals), 'secrets', flush=True)\n"
            + {"success": "", "failure": "sys.exit(3)\n", "timeout": "time.sleep(30)\n",
               "export-refused": ""}[outcome])
    with Recorder(status=403 if outcome == "export-refused" else 201) as srv:
        doc = make_spec(py_argv(code), secret_refs=["ONE", "TWO"],
                        run_extra={"secretDelivery": delivery, "workingDirectory": "/work",
                                   **({"timeoutMs": 500} if outcome == "timeout" else {})},
                        spec_extra={"export": {
                            "artifacts": [{"name": "report.txt", "path": "/work/report.txt"},
                                          {"name": "web.txt", "path": "/work/report.txt", "target": "web"}],
                            "targets": [{"name": "web", "kind": "http"}]}})
        env["CELLOS_EXPORT_HTTP_BASE_URL__WEB"] = srv.url + "/up"
        r = run_cell(doc, env=env)
    assert r.rc == {"success": 0, "failure": 3, "timeout": 124, "export-refused": 125}[outcome], r
    assert "workload saw 2 secrets" in r.out
    no_leak(r, s1, s2, tok)
    for name, data in tree(root).items():
        for v in (s1, s2, tok):
            assert v.encode() not in data, f"{v} in the export root ({name})"
    for name, data in tree(dlq).items():
        for v in (s1, s2, tok):
            assert v.encode() not in data, f"{v} in a dead letter ({name})"
    for q in srv.requests:
        assert q.headers["authorization"] == f"Bearer {tok}"
        for v in (s1, s2):
            assert v.encode() not in q.body and v not in q.target
