"""Escape suite, filesystem (SPEC §6.1 "Mount namespace"): one hostile cell per
attack, each asserting containment inside the cell and, where it matters, on the
host. The cell's root is a read-only tmpfs scaffold with read-only host binds;
/tmp and run.workingDirectory are private tmpfs; secrets of the host are masked."""
import os
import uuid
from pathlib import Path

import pytest

from cellprobe import FULL, MODES, NO_FILTER, host_opt_dir, probe  # noqa: F401 (host_opt_dir is a fixture)
from conftest import assert_no_residue, host_snapshot, make_spec, run_cell


@pytest.mark.parametrize("mode", sorted(MODES))
def test_writes_outside_the_workspace_fail_and_reach_nothing_on_the_host(mode):
    name = f"cellbb-{uuid.uuid4().hex[:12]}"
    targets = [f"/{name}", f"/usr/{name}", f"/etc/{name}", f"/opt/{name}", f"/var/{name}", f"/dev/{name}",
               f"/proc/{name}", f"/run/{name}", f"/usr/lib/{name}", f"/bin/{name}"]
    res, _ = probe(f"""
for t in {targets!r}:
    out[t] = attempt(lambda p: open(p, "w").close(), t)
out["mkdir /usr/x"] = attempt(os.mkdir, "/usr/{name}")
out["chmod /usr/bin/env"] = attempt(os.chmod, "/usr/bin/env", 0o777)
out["unlink /etc/hostname"] = attempt(os.unlink, "/etc/hostname")
out["rename /etc/passwd"] = attempt(os.rename, "/etc/passwd", "/etc/passwd.x")
""", MODES[mode])
    for t in targets:
        assert res[t] in ("EROFS", "EACCES", "ENOENT"), (t, res[t])
    assert res["mkdir /usr/x"] == "EROFS"
    assert res["chmod /usr/bin/env"] == "EROFS"
    assert res["unlink /etc/hostname"] == "EROFS"
    assert res["rename /etc/passwd"] == "EROFS"
    for t in targets:
        assert not os.path.lexists(t), f"{t} appeared on the host"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_workspace_is_private_writable_and_gone_after_the_run(mode, no_residue):
    ws = f"/cellbb-ws-{uuid.uuid4().hex[:10]}/deep/work"
    code = f"""
out["cwd"] = os.getcwd()
out["empty"] = os.listdir(".") == []
with open("data.bin", "wb") as f:
    f.write(b"x" * 100000)
os.mkdir("sub")
open("sub/f", "w").write("hello")
out["read back"] = open("{ws}/sub/f").read()
st = os.statvfs("{ws}")
out["fs"] = [l.split()[2] for l in open("/proc/self/mounts") if l.split()[1] == "{ws}"]
"""
    res, _ = probe(code, MODES[mode], run_extra={"workingDirectory": ws})
    assert res["cwd"] == ws
    assert res["empty"] is True
    assert res["read back"] == "hello"
    assert res["fs"] == ["tmpfs"]
    # Parents were made in the scaffold, never on the host; nothing survives.
    assert not os.path.lexists(ws.split("/deep")[0])
    # A second run with the same workspace starts empty.
    res, _ = probe('out["listing"] = os.listdir(".")', MODES[mode], run_extra={"workingDirectory": ws})
    assert res["listing"] == []


def test_workspace_under_tmp_and_under_an_existing_host_directory():
    # Under the cell's /tmp: both are private tmpfs.
    res, _ = probe('out["ok"] = attempt(lambda: open("f", "w").write("x"))', FULL,
                   run_extra={"workingDirectory": "/tmp/build/out"})
    assert res["ok"] == "OK"
    # Over an existing directory of a read-only host tree: covered by a tmpfs
    # inside the cell; the host directory is untouched.
    host = Path("/usr/share")
    before = sorted(os.listdir(host))[:5]
    res, _ = probe('out["listing"] = os.listdir("."); out["w"] = attempt(lambda: open("f", "w").write("x"))', FULL,
                   run_extra={"workingDirectory": "/usr/share"})
    assert res == {"listing": [], "w": "OK"}
    assert sorted(os.listdir(host))[:5] == before and not (host / "f").exists()


def test_workspace_that_would_need_a_directory_on_the_host_is_a_create_failure():
    name = f"cellbb-{uuid.uuid4().hex[:10]}"
    before = host_snapshot()
    r = run_cell(make_spec(["/usr/bin/true"], run_extra={"workingDirectory": f"/usr/{name}/work"}), env=FULL)
    assert r.rc == 125, r
    assert "run.workingDirectory" in r.err and "read-only host directory" in r.err, r.err
    failed = r.event("lifecycle.v1.failed")["data"]
    assert failed["phase"] == "create" and "run.workingDirectory" in failed["message"]
    assert not r.has("lifecycle.v1.started")
    assert not os.path.lexists(f"/usr/{name}")
    assert_no_residue(before)


def test_workspace_cannot_be_the_root():
    r = run_cell(make_spec(["/usr/bin/true"], run_extra={"workingDirectory": "/"}), env=FULL)
    assert r.rc == 125, r
    assert "run.workingDirectory" in r.err


@pytest.mark.parametrize("mode", sorted(MODES))
def test_tmp_is_private_to_each_cell(mode):
    name = f"cellbb-{uuid.uuid4().hex[:12]}"
    res, _ = probe(f'open("/tmp/{name}", "w").write("x"); out["mine"] = os.listdir("/tmp")', MODES[mode])
    assert res["mine"] == [name]
    assert not os.path.exists(f"/tmp/{name}")
    res, _ = probe('out["seen"] = os.listdir("/tmp")', MODES[mode])
    assert res["seen"] == []


@pytest.mark.parametrize("mode", sorted(MODES) + ["no-filter"])
def test_host_secrets_are_masked(mode):
    env = NO_FILTER if mode == "no-filter" else MODES[mode]
    paths = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/root", "/home", "/root/.bashrc", "/var/log",
             "/run/cellos", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/kpageflags",
             "/sys/firmware", "/etc/ssl/private", "/proc/acpi"]
    res, _ = probe(f"""
for p in {paths!r}:
    if os.path.isdir(p) and not os.path.islink(p):
        out[p] = attempt(os.listdir, p)
    else:
        out[p] = attempt(lambda q: open(q, "rb").read(1), p)
out["/etc/passwd"] = attempt(lambda: open("/etc/passwd").read())
""", env)
    for p in paths:
        if not os.path.lexists(p):
            continue  # nothing to hide on this host
        assert res[p] in ("EACCES", "ENOENT", "EPERM"), (p, res[p])
    # /proc/keys and /proc/acpi are open to others on the host's kernel: masked
    # (the closed entries are left as they are: the cell cannot open them).
    for p in ("/etc/shadow", "/etc/gshadow", "/root", "/home", "/proc/keys", "/proc/acpi", "/sys/firmware"):
        if os.path.lexists(p):
            assert res[p] != "OK", p
    # Ordinary configuration stays readable.
    assert res["/etc/passwd"] == "OK"


def test_supervisor_files_inside_a_visible_directory_are_masked(host_opt_dir):  # noqa: F811
    jsonl = host_opt_dir / "events.jsonl"
    spec = make_spec(["/usr/bin/python3", "-c",
                      f"import os\ntry:\n open('{jsonl}').read(); print('READ')\nexcept OSError as e:\n print(e.errno)"])
    r = run_cell(spec, env=FULL, jsonl=jsonl)
    assert r.rc == 0, r
    assert r.out.strip() == "13", f"the cell could read the supervisor's event log: {r.out!r}"
    assert r.has("lifecycle.v1.destroyed")  # the supervisor itself still writes it


@pytest.mark.parametrize("mode", sorted(MODES))
def test_proc_and_sys_cannot_change_the_host(mode):
    res, _ = probe("""
out["drop_caches"] = attempt(lambda: open("/proc/sys/vm/drop_caches", "w").write("3"))
out["hostname sysctl"] = attempt(lambda: open("/proc/sys/kernel/hostname", "w").write("x"))
out["sysrq"] = attempt(lambda: open("/proc/sysrq-trigger", "w").write("h"))
out["irq"] = attempt(lambda: open("/proc/irq/default_smp_affinity", "w").write("1"))
out["sys write"] = attempt(lambda: open("/sys/kernel/mm/transparent_hugepage/enabled", "w").write("never"))
out["net"] = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else None
""", MODES[mode])
    assert res["drop_caches"] in ("EROFS", "EACCES")
    assert res["hostname sysctl"] in ("EROFS", "EACCES")
    assert res["sysrq"] in ("EACCES", "ENOENT", "EROFS")
    assert res["irq"] in ("EROFS", "EACCES", "ENOENT")
    assert res["sys write"] in ("EROFS", "EACCES", "ENOENT")
    # /sys, where the cell has one, is its own: only its loopback interface.
    assert res["net"] in (["lo"], None)
    if mode == "full":
        assert res["net"] == ["lo"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_dev_is_minimal(mode):
    res, _ = probe("""
out["dev"] = sorted(os.listdir("/dev"))
out["null"] = attempt(lambda: open("/dev/null", "w").write("x"))
out["zero"] = len(open("/dev/zero", "rb").read(16))
out["urandom"] = len(open("/dev/urandom", "rb").read(16))
out["full"] = attempt(lambda: open("/dev/full", "wb", buffering=0).write(b"x"))
out["create"] = attempt(lambda: open("/dev/cellbb", "w"))
out["mknod"] = attempt(os.mknod, "/tmp/sda", 0o600 | 0o060000, os.makedev(8, 0))
out["shm"] = attempt(lambda: open("/dev/shm/x", "w").write("x"))
""", MODES[mode])
    assert set(res["dev"]) <= {"null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
                               "stderr", "ptmx", "pts", "shm"}, res["dev"]
    assert {"null", "zero", "urandom", "shm"} <= set(res["dev"])
    assert res["null"] == "OK" and res["zero"] == 16 and res["urandom"] == 16
    assert res["full"] == "ENOSPC"
    assert res["create"] == "EROFS"
    assert res["mknod"] == "EPERM"
    assert res["shm"] == "OK"


def test_root_is_the_scaffold_and_the_host_root_is_detached():
    res, _ = probe("""
out["root"] = sorted(os.listdir("/"))
out["mounts"] = [l.split()[1] for l in open("/proc/self/mounts")]
""", FULL, run_extra={"workingDirectory": "/work"})
    assert set(res["root"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "run", "sbin",
                                "sys", "tmp", "usr", "var", "work"}, res["root"]
    assert "home" not in res["root"] and "root" not in res["root"]
    # Nothing of the host's mount table beyond what we bound: no /work of the
    # supervisor's tree, no host /tmp, no cgroupfs.
    mounts = res["mounts"]
    assert mounts[0] == "/"
    assert not any(m.startswith(("/sys/fs/cgroup", "/mnt", "/old")) for m in mounts), mounts
    assert "/work" in mounts and "/tmp" in mounts


def test_without_a_mount_namespace_the_host_filesystem_is_visible_as_documented():
    # DESIGN.md: no scaffold without `mnt`; capabilities and the filter still apply.
    res, _ = probe('out["root"] = os.path.isdir("/root"); '
                   'out["cap"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]',
                   {"CELLOS_SUBPROCESS_UNSHARE": "net", "CELLOS_SECCOMP": "baseline"})
    assert res["root"] is True
    assert int(res["cap"], 16) == 0
