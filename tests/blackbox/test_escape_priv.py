"""Escape suite, privilege and namespaces (SPEC §6.1): no capability at all in the
workload (inside a user namespace too), NO_NEW_PRIVS, fresh namespaces per run,
nothing outside the cell to see, trace or signal. One hostile cell per attack;
the namespace and capability attacks also run without the seccomp filter, since
they must be contained by the missing privilege alone."""
import os
import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from cellprobe import FULL, FULL_USER, MODES, NO_FILTER, NR, cell_uid, host_opt_dir, probe, sh  # noqa: F401 (host_opt_dir is a fixture)
from conftest import make_spec, py_argv, run_cell, unique_id

# Each namespace/capability attack, with and without the filter.
ALL_MODES = dict(MODES, **{"no-filter": NO_FILTER})

CAPS = """
st = dict(l.split(":", 1) for l in open("/proc/self/status"))
for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
    out[k] = st[k].strip()
out["uid"] = os.getuid()
"""


@pytest.mark.parametrize("mode", sorted(ALL_MODES))
def test_workload_has_no_capabilities_and_no_new_privs(mode):
    res, r = probe(CAPS, ALL_MODES[mode])
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(res[k], 16) == 0, (k, res[k])
    assert res["NoNewPrivs"] == "1"
    assert res["Seccomp"] == ("0" if mode == "no-filter" else "2")
    # Root of the cell without any of root's power, or (no user namespace) the
    # run's own unprivileged host uid.
    assert res["uid"] == cell_uid(r)
    assert res["uid"] == 0 or res["uid"] >= 3000000000


def test_user_namespace_maps_the_cell_root_to_an_unprivileged_host_uid():
    code = """
out["uid_map"] = open("/proc/self/uid_map").read().split()
out["gid_map"] = open("/proc/self/gid_map").read().split()
out["groups"] = os.getgroups()
out["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
"""
    res, r = probe(code, FULL_USER)
    # The cell's root is the run's own host uid/gid (SPEC §3 CELLOS_CELL_UID_RANGE,
    # default 3000000000-3000999999; uid = gid), reported as isolation.hostUid.
    host_uid = r.event("lifecycle.v1.started")["data"]["isolation"]["hostUid"]
    assert 3000000000 <= host_uid <= 3000999999, host_uid
    assert res["uid_map"] == ["0", str(host_uid), "1"]
    assert res["gid_map"] == ["0", str(host_uid), "1"]
    assert res["ids"] == [0, 0, 0, 0]
    # The supervisor's supplementary groups (host root's) are gone.
    assert res["groups"] == []
    assert "user" in r.event("lifecycle.v1.started")["data"]["isolation"]["namespaces"]


@pytest.mark.parametrize("mode", sorted(ALL_MODES))
def test_mount_is_denied(mode):
    res, _ = probe(f"""
out["mount"] = sc({NR['mount']}, b"none", b"/tmp", b"tmpfs", 0, 0)[1]
out["remount ro->rw"] = sc({NR['mount']}, 0, b"/usr", 0, 0x20 | 0x1000, 0)[1]
out["umount /proc"] = sc({NR['umount2']}, b"/proc", 2)[1]
out["pivot_root"] = sc({NR['pivot_root']}, b"/tmp", b"/tmp")[1]
out["fsopen"] = sc({NR['fsopen']}, b"tmpfs", 0)[1]
out["open_tree"] = sc({NR['open_tree']}, -100, b"/usr", 1)[1]
import subprocess
out["mount(8)"] = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True).returncode
""", ALL_MODES[mode])
    for k in ("mount", "remount ro->rw", "umount /proc", "pivot_root", "fsopen", "open_tree"):
        assert res[k] == "EPERM", (k, res[k])
    assert res["mount(8)"] != 0


@pytest.mark.parametrize("mode", sorted(ALL_MODES))
def test_new_namespaces_cannot_be_made(mode):
    res, _ = probe(f"""
out["unshare(NEWNS)"] = sc({NR['unshare']}, 0x00020000)[1]
out["unshare(NEWNET)"] = sc({NR['unshare']}, 0x40000000)[1]
out["clone(NEWPID)"] = sc({NR['clone']}, 0x20000000 | 17, 0, 0, 0, 0)[1]
out["clone(NEWUSER)"] = sc({NR['clone']}, 0x10000000 | 17, 0, 0, 0, 0)[1]
if out["clone(NEWUSER)"] == "OK":
    os.wait()
out["unshare(NEWUSER)"] = sc({NR['unshare']}, 0x10000000)[1]
import subprocess
p = subprocess.run(["unshare", "-Urmn", "true"], capture_output=True, text=True)
out["unshare -Urmn"] = [p.returncode, p.stderr.strip()]
""", ALL_MODES[mode])
    # Without any capability, no namespace but a user namespace can be made.
    assert res["unshare(NEWNS)"] == "EPERM" and res["unshare(NEWNET)"] == "EPERM"
    assert res["clone(NEWPID)"] == "EPERM"
    if mode != "no-filter":
        # A user namespace needs no privilege at all: only the filter stops it
        # (docs/DESIGN.md, "Containment").
        assert res["unshare(NEWUSER)"] == "EPERM" and res["clone(NEWUSER)"] == "EPERM"
        assert res["unshare -Urmn"][0] != 0, res


@pytest.mark.parametrize("mode", sorted(ALL_MODES))
def test_setns_through_proc_fails(mode):
    res, _ = probe(f"""
for ns in ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup"):
    try:
        fd = os.open("/proc/1/ns/" + ns, os.O_RDONLY)
    except OSError as e:
        out["open " + ns] = ename(e.errno)
        fd = os.open("/proc/self/ns/" + ns, os.O_RDONLY)
    out["setns " + ns] = sc({NR['setns']}, fd, 0)[1]
    os.close(fd)
import subprocess
out["nsenter"] = subprocess.run(["nsenter", "-t", "1", "-m", "-n", "true"], capture_output=True).returncode
""", ALL_MODES[mode])
    for ns in ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup"):
        assert res["setns " + ns] in ("EPERM", "EINVAL"), (ns, res)
    # The init (PID 1) is not dumpable: its namespace links are closed to the workload.
    assert res.get("open mnt") == "EACCES"
    assert res["nsenter"] != 0


def test_namespaces_are_fresh_for_every_run():
    # Two cells alive at the same time (namespace inode numbers are reused once
    # a namespace is gone, so sequential runs could show the same ones).
    code = ('out.update({ns: os.readlink("/proc/self/ns/" + ns) for ns in ("mnt", "net", "pid", "ipc", "uts", "cgroup")})\n'
            'import time; time.sleep(1.5)')
    with ThreadPoolExecutor(max_workers=2) as pool:
        (a, _), (b, _) = pool.map(lambda _: probe(code, FULL), range(2))
    for ns, link in a.items():
        assert link != os.readlink(f"/proc/self/ns/{ns}"), f"{ns} namespace is the host's"
        assert link != b[ns], f"two runs shared the {ns} namespace"


@pytest.mark.parametrize("mode", sorted(ALL_MODES))
def test_supervisor_cannot_be_seen_traced_or_signalled(mode):
    # The cell sees its own processes only; PID 1 (our init) cannot be traced or
    # killed, its memory (a copy of the supervisor's, secrets included) cannot be
    # read; `kill -9 -1` only ends the cell.
    code = f"""
import signal, time
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["ptrace attach 1"] = sc({NR['ptrace']}, 16, 1, 0, 0)[1]
out["ptrace seize 1"] = sc({NR['ptrace']}, 0x4206, 1, 0, 0)[1]
out["mem"] = attempt(lambda: open("/proc/1/mem", "rb").read(1))
out["environ"] = attempt(lambda: open("/proc/1/environ", "rb").read())
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local, remote = iovec(ctypes.addressof(buf), 8), iovec(0x400000, 8)
out["process_vm_readv"] = sc({NR['process_vm_readv']}, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)[1]
os.kill(1, signal.SIGKILL)
os.kill(1, signal.SIGSTOP)
time.sleep(0.05)
state = [l for l in open("/proc/1/status") if l.startswith("State")][0]
out["init state"] = state.split()[1]
"""
    res, r = probe(code, ALL_MODES[mode])
    # Our init (PID 1) and this process, nothing of the host.
    assert res["pids"] == [1, 2], res["pids"]
    assert res["ptrace attach 1"] == "EPERM" and res["ptrace seize 1"] == "EPERM"
    assert res["mem"] == "EACCES" and res["environ"] == "EACCES"
    assert res["process_vm_readv"] == "EPERM"
    assert res["init state"] == "S"  # neither killed nor stopped
    assert r.event("lifecycle.v1.destroyed")["data"]["outcome"] == "succeeded"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_kill_everything_only_ends_the_cell(mode):
    r = run_cell(make_spec(sh("sleep 30 & sleep 0.1; kill -9 -1; wait; echo survived")), env=MODES[mode])
    assert r.rc == 0, r
    assert r.out.strip() == "survived"
    assert r.event("lifecycle.v1.destroyed")["data"]["outcome"] == "succeeded"


def _with_secret(env):
    return dict(env, CELLOS_SECRET_BB_ESC_SECRET="s3cr3t-value-xyz")


def test_secret_of_the_supervisor_is_not_readable_through_proc_1():
    code = """
out["env"] = os.environ.get("BB_ESC_SECRET")
data = b""
for p in ("/proc/1/environ", "/proc/1/cmdline", "/proc/1/mem"):
    try:
        data += open(p, "rb").read(4096)
    except OSError:
        pass
out["leak"] = b"s3cr3t-value-xyz" in data
"""
    spec = make_spec(py_argv(__import__("cellprobe").PRELUDE + code), secret_refs=["BB_ESC_SECRET"])
    r = run_cell(spec, env=_with_secret(FULL))
    assert r.rc == 0, r
    import json
    res = json.loads(r.out.splitlines()[-1])
    assert res["env"] == "s3cr3t-value-xyz"  # delivered as declared
    assert res["leak"] is False


@pytest.mark.parametrize("mode", sorted(MODES))
def test_setuid_and_file_capabilities_grant_nothing(mode, host_opt_dir):  # noqa: F811
    # Planted on the host where the cell can see them (/opt is bound read-only):
    # an `id` that is setuid to uid 4321, and a `cat` with file capabilities.
    suid = host_opt_dir / "id-suid"
    shutil.copy("/usr/bin/id", suid)
    os.chown(suid, 4321, 4321)
    os.chmod(suid, 0o6755)
    fcap = host_opt_dir / "cat-fcap"
    shutil.copy("/usr/bin/cat", fcap)
    subprocess.run(["/usr/sbin/setcap", "cap_dac_override,cap_sys_admin+eip", str(fcap)], check=True)
    # Control: on the host, the planted binaries do raise privileges.
    assert subprocess.run([str(suid), "-u"], capture_output=True, text=True).stdout.strip() == "4321"
    code = f"""
import subprocess
out["euid"] = subprocess.run(["{suid}", "-u"], capture_output=True, text=True).stdout.strip()
out["egid"] = subprocess.run(["{suid}", "-g"], capture_output=True, text=True).stdout.strip()
st = subprocess.run(["{fcap}", "/proc/self/status"], capture_output=True, text=True).stdout
out["fcap CapEff"] = [l.split()[1] for l in st.splitlines() if l.startswith("CapEff")]
su = subprocess.run(["/usr/bin/su", "-c", "id -u", "nobody"], capture_output=True, text=True)
out["su"] = su.returncode
"""
    res, r = probe(code, MODES[mode])
    me = str(cell_uid(r))
    assert res["euid"] == me and res["egid"] == me, res  # the setuid bit changed nothing
    assert res["fcap CapEff"] and int(res["fcap CapEff"][0], 16) == 0, res
    assert res["su"] != 0  # root without CAP_SETUID cannot become anyone


@pytest.mark.parametrize("mode", sorted(MODES))
def test_host_loopback_is_unreachable(mode):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        res, _ = probe(f"""
import socket
s = socket.socket(); s.settimeout(2)
out["connect"] = ename(s.connect_ex(("127.0.0.1", {port})))
out["ifaces"] = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else None
""", MODES[mode])
        assert res["connect"] == "ECONNREFUSED", res
    finally:
        listener.close()


def test_hostname_is_the_cell_id_and_ipc_is_private():
    cid = unique_id("bbhost")
    res, _ = probe("""
import socket
out["hostname"] = socket.gethostname()
out["sysvipc"] = open("/proc/sysvipc/shm").read().count("\\n")
""", FULL, id=cid)
    assert res["hostname"] == cid
    assert res["sysvipc"] == 1  # the header line only


@pytest.mark.parametrize("mode", sorted(MODES))
def test_cgroup_namespace_hides_the_host_hierarchy(mode):
    res, r = probe('out["cgroup"] = open("/proc/self/cgroup").read().split()', MODES[mode])
    # Every hierarchy is rooted at the cell's own leaf: no host path shows.
    assert res["cgroup"] and all(line.endswith(":/") for line in res["cgroup"]), res["cgroup"]
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["cgroup"]
