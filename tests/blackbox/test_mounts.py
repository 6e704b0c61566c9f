"""SPEC §2 run.mounts, §3 CELLOS_HOST_MOUNT_ALLOW_PREFIXES / CELLOS_HOST_MOUNT_ALLOW_RW,
§7 hardened: host directories and files shown in the cell.

Sources live in per-test directories of this session (under /tmp, see conftest), each
test naming its own directory as the allowed prefix. A workload is a small Python
program printing one JSON object as its last line. Every cell that runs is checked for
host residue (no host mount left, the run's objects gone) and, where it matters, that
the source on the host is exactly as it was.
"""
import base64
import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Running, make_spec, new_dir, py_argv, run_cell, unique_id

ALLOW = "CELLOS_HOST_MOUNT_ALLOW_PREFIXES"
ALLOW_RW = "CELLOS_HOST_MOUNT_ALLOW_RW"
GV = {"CELLOS_CELL_BACKEND": "gvisor"}
OCI = {"CELLOS_CELL_BACKEND": "oci", "CELLOS_OCI_RUNTIME": "runc"}

# The stub with its default (every namespace, a user namespace owned by the run's
# uid), and without a user namespace (the workload then runs as the run's uid itself).
STUB_MODES = {"default": {}, "no-userns": {"CELLOS_SUBPROCESS_UNSHARE": "net,mnt,pid,ipc,uts,cgroup"}}

# Runs in the cell: reports what it can read, write and see of the mounts.
PROBE = r'''
import errno, json, os, sys
out = {}
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))
def read(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError as e:
        return "ERR:" + name(e)
def write(p):
    try:
        with open(p, "w") as f:
            f.write("from the cell\n")
        return "OK"
    except OSError as e:
        return name(e)
def mkdir(p):
    try:
        os.mkdir(p)
        return "OK"
    except OSError as e:
        return name(e)
def opts(target):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == target:
            return f[5].split(",")
    return None
args = json.loads(sys.argv[1])
for p in args.get("read", []):
    out["read " + p] = read(p)
for p in args.get("write", []):
    out["write " + p] = write(p)
for p in args.get("mkdir", []):
    out["mkdir " + p] = mkdir(p)
for p in args.get("list", []):
    try:
        out["list " + p] = sorted(os.listdir(p))
    except OSError as e:
        out["list " + p] = "ERR:" + name(e)
for t in args.get("opts", []):
    out["opts " + t] = opts(t)
print(json.dumps(out))
'''


def probe_spec(what, mounts, **run_extra):
    run_extra = dict(run_extra)
    run_extra["mounts"] = mounts
    return make_spec(py_argv(PROBE, json.dumps(what)), run_extra=run_extra)


def result(r):
    lines = [l for l in r.out.splitlines() if l.startswith("{")]
    assert lines, f"the workload printed no result: {r}"
    return json.loads(lines[-1])


def tree(base: Path, files: dict) -> Path:
    """Files (relative path -> text) under base, directories 0755, files 0644."""
    base.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return base


def fingerprint(root: Path) -> dict:
    """Everything about a host tree a cell could have changed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                digest = hashlib.sha256(open(p, "rb").read()).hexdigest()
            found[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, digest)
    return found


def admission_refusal(r, *needles):
    """125 at admission: one line naming the field (and variable), no cell events."""
    assert r.rc == 125, r
    for n in needles:
        assert n in r.err, (n, r.err)
    assert not r.events, r.types


def create_refusal(r, *needles):
    """125 at create: lifecycle.v1.failed naming the field, nothing ran."""
    assert r.rc == 125, r
    failed = r.event("lifecycle.v1.failed")["data"]
    assert failed["phase"] == "create", failed
    for n in needles:
        assert n in failed["message"] and n in r.err, (n, failed["message"], r.err)
    assert not r.has("lifecycle.v1.started") and not r.has("observability.v1.process_spawned")


@pytest.fixture
def host_tmpfs():
    """mount(8) a small tmpfs on a host directory (a submount inside a source), and
    unmount it afterwards: request it after `no_residue`, whose check comes last."""
    made = []

    def mount(where: Path, files: dict):
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["/usr/bin/mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "cellbb-sub", str(where)],
                       check=True)
        made.append(where)
        tree(where, files)
        return where

    yield mount
    for w in reversed(made):
        subprocess.run(["/usr/bin/umount", str(w)], check=True)


# ---------------------------------------------------------------- read-only mounts


@pytest.mark.parametrize("mode", list(STUB_MODES))
def test_read_only_checkout_is_visible_and_not_writable_submounts_included(mode, no_residue, host_tmpfs):
    base = new_dir("mounts")
    src = tree(base / "checkout", {"README": "hello\n", "pkg/mod.py": "x = 1\n"})
    host_tmpfs(src / "cache", {"blob": "cached\n"})
    os.chmod(src / "cache", 0o777)  # writable on the host, even for the cell's uid
    before = fingerprint(src)
    what = {"read": ["/src/README", "/src/pkg/mod.py", "/src/cache/blob"],
            "write": ["/src/new", "/src/README", "/src/cache/new", "/src/cache/blob"],
            "mkdir": ["/src/d", "/src/cache/d"], "list": ["/src"], "opts": ["/src", "/src/cache"]}
    doc = probe_spec(what, [{"source": str(src), "target": "/src"}])
    r = run_cell(doc, env={**STUB_MODES[mode], ALLOW: str(base)})
    assert r.rc == 0, r
    got = result(r)
    assert got["read /src/README"] == "hello\n"
    assert got["read /src/pkg/mod.py"] == "x = 1\n"
    assert got["read /src/cache/blob"] == "cached\n"
    assert got["list /src"] == ["README", "cache", "pkg"]
    # Read-only all the way down: the writable host tmpfs below is read-only here too.
    for p in ("/src/new", "/src/README", "/src/cache/new", "/src/cache/blob"):
        assert got["write " + p] == "EROFS", (p, got)
    assert got["mkdir /src/d"] == "EROFS" and got["mkdir /src/cache/d"] == "EROFS", got
    for t in ("/src", "/src/cache"):
        assert {"ro", "nosuid", "nodev"} <= set(got["opts " + t]), (t, got)
    started = r.event("lifecycle.v1.started")["data"]
    assert started["isolation"]["mounts"] == [{"source": str(src), "target": "/src", "readOnly": True}]
    assert fingerprint(src) == before


def test_a_file_can_be_mounted_and_mounts_nest_outermost_first(no_residue):
    base = new_dir("mounts")
    outer = tree(base / "outer", {"top.txt": "outer\n", "sub/placeholder": "hidden\n"})
    inner = tree(base / "inner", {"in.txt": "inner\n"})
    conf = base / "app.conf"
    conf.write_text("key=value\n")
    what = {"read": ["/src/top.txt", "/src/sub/in.txt", "/tmp/deep/er/app.conf"],
            "write": ["/tmp/deep/er/app.conf"], "list": ["/src/sub"]}
    # Listed inner first: the supervisor applies the outer one first anyway.
    mounts = [{"source": str(inner), "target": "/src/sub"}, {"source": str(outer), "target": "/src"},
              {"source": str(conf), "target": "/tmp/deep/er/app.conf"}]
    r = run_cell(probe_spec(what, mounts), env={ALLOW: str(base)})
    assert r.rc == 0, r
    got = result(r)
    assert got["read /src/top.txt"] == "outer\n"
    assert got["read /src/sub/in.txt"] == "inner\n"
    assert got["list /src/sub"] == ["in.txt"]  # the inner mount covers the outer's sub/
    assert got["read /tmp/deep/er/app.conf"] == "key=value\n"
    assert got["write /tmp/deep/er/app.conf"] == "EROFS"
    assert conf.read_text() == "key=value\n"
    assert set(os.listdir(base)) == {"outer", "inner", "app.conf"}  # nothing made on the host
    assert sorted(os.listdir(outer / "sub")) == ["placeholder"]


def test_a_nested_target_must_exist_in_the_outer_source(no_residue):
    base = new_dir("mounts")
    outer = tree(base / "outer", {"top.txt": "outer\n"})
    inner = tree(base / "inner", {"in.txt": "inner\n"})
    mounts = [{"source": str(outer), "target": "/src", "readOnly": False},
              {"source": str(inner), "target": "/src/missing"}]
    r = run_cell(probe_spec({}, mounts), env={ALLOW: str(base), ALLOW_RW: "1"})
    create_refusal(r, "spec.run.mounts[1].target", "must already exist")
    assert sorted(os.listdir(outer)) == ["top.txt"]  # never created on the host


@pytest.mark.parametrize("mode", list(STUB_MODES))
def test_mounts_inside_the_working_directory_come_after_its_tmpfs(mode, no_residue):
    base = new_dir("mounts")
    src = tree(base / "input", {"data.csv": "a,b\n"})
    what = {"read": ["/work/input/data.csv"], "write": ["/work/result.txt", "/work/input/x"],
            "list": ["/work"]}
    doc = probe_spec(what, [{"source": str(src), "target": "/work/input"}], workingDirectory="/work")
    r = run_cell(doc, env={**STUB_MODES[mode], ALLOW: str(base)})
    assert r.rc == 0, r
    got = result(r)
    assert got["read /work/input/data.csv"] == "a,b\n"
    assert got["write /work/result.txt"] == "OK"  # the workspace is still the cell's own
    assert got["write /work/input/x"] == "EROFS"
    assert got["list /work"] == ["input", "result.txt"]


def test_the_supervisors_event_file_inside_a_source_is_masked(no_residue):
    base = new_dir("mounts")
    src = tree(base / "shared", {"ok.txt": "fine\n"})
    events = src / "events.jsonl"
    r = run_cell(probe_spec({"read": ["/s/ok.txt", "/s/events.jsonl"]}, [{"source": str(src), "target": "/s"}]),
                 env={ALLOW: str(base)}, jsonl=events)
    assert r.rc == 0, r
    got = result(r)
    assert got["read /s/ok.txt"] == "fine\n"
    assert got["read /s/events.jsonl"] == "ERR:EACCES", got
    assert r.event("lifecycle.v1.started")


# ---------------------------------------------------------------- writable mounts


@pytest.mark.parametrize("mode", list(STUB_MODES))
def test_a_writable_mount_needs_allow_rw(mode, no_residue):
    base = new_dir("mounts")
    out = tree(base / "out", {})
    os.chmod(out, 0o777)  # the run's uid writes through the "other" bits
    doc = probe_spec({"write": ["/out/result.txt"], "opts": ["/out"]},
                     [{"source": str(out), "target": "/out", "readOnly": False}])
    env = {**STUB_MODES[mode], ALLOW: str(base)}

    refused = run_cell(doc, env=env)
    admission_refusal(refused, "spec.run.mounts[0].readOnly", ALLOW_RW)
    assert os.listdir(out) == []
    admission_refusal(run_cell(doc, env={**env, ALLOW_RW: "0"}), "spec.run.mounts[0].readOnly", ALLOW_RW)
    admission_refusal(run_cell(doc, env={**env, ALLOW_RW: "yes"}), ALLOW_RW)

    r = run_cell(doc, env={**env, ALLOW_RW: "1"})
    assert r.rc == 0, r
    got = result(r)
    assert got["write /out/result.txt"] == "OK"
    assert "rw" in got["opts /out"] and {"nosuid", "nodev"} <= set(got["opts /out"]), got
    made = out / "result.txt"
    assert made.read_text() == "from the cell\n"
    # Written as the run's own host uid (never root, never a uid of the host's).
    started = r.event("lifecycle.v1.started")["data"]
    assert os.stat(made).st_uid == started["isolation"]["hostUid"] != 0
    assert started["isolation"]["mounts"] == [{"source": str(out), "target": "/out", "readOnly": False}]


# ---------------------------------------------------------------- what the host allows


def test_no_allow_prefixes_means_no_mounts(no_residue):
    base = new_dir("mounts")
    src = tree(base / "src", {"f": "x\n"})
    doc = probe_spec({"read": ["/src/f"]}, [{"source": str(src), "target": "/src"}])
    admission_refusal(run_cell(doc), "spec.run.mounts[0].source", ALLOW, "unset")
    # --validate applies the same rules.
    v = run_cell(doc, args=["--validate", "{spec}"], jsonl=False)
    assert v.rc == 125 and ALLOW in v.err and "spec.run.mounts[0].source" in v.err, v
    ok = run_cell(doc, args=["--validate", "{spec}"], jsonl=False, env={ALLOW: str(base)})
    assert ok.rc == 0 and f"{src} -> /src (read-only)" in ok.out, ok


def test_allow_prefixes_match_whole_components(no_residue):
    base = new_dir("mounts")
    tree(base / "ci" / "repo", {"f": "good\n"})
    evil = tree(base / "ci-evil", {"f": "evil\n"})
    env = {ALLOW: f"/nonexistent-{unique_id()},{base}/ci/"}
    r = run_cell(probe_spec({}, [{"source": str(evil), "target": "/src"}]), env=env)
    admission_refusal(r, "spec.run.mounts[0].source", str(evil), ALLOW)
    r = run_cell(probe_spec({}, [{"source": f"{base}/ci/../ci-evil", "target": "/src"}]), env=env)
    assert r.rc == 125 and "spec.run.mounts[0].source" in r.err, r  # '..' is a document error
    r = run_cell(probe_spec({"read": ["/src/f"]}, [{"source": f"{base}//ci/./repo", "target": "/src"}]), env=env)
    assert r.rc == 0, r
    assert result(r)["read /src/f"] == "good\n"
    admission_refusal(run_cell(probe_spec({}, []), env={ALLOW: "relative/path"}), ALLOW)


# ---------------------------------------------------------------- symlinks and swaps


def test_a_symlink_anywhere_in_the_source_path_is_refused(no_residue):
    base = new_dir("mounts")
    real = tree(base / "real", {"f": "real\n"})
    secret = tree(base.parent / f"{base.name}-secret", {"f": "SECRET\n"})
    (base / "last").symlink_to(real)            # the last component
    (base / "mid").symlink_to(real)              # a middle one
    (base / "out").symlink_to(secret)            # pointing outside the allowed prefix
    env = {ALLOW: str(base)}
    for source, shown in ((base / "last", "last"), (base / "mid" / "f", "mid/f"), (base / "out", "out")):
        r = run_cell(probe_spec({"read": ["/src/f", "/src"]}, [{"source": str(source), "target": "/src"}]), env=env)
        create_refusal(r, "spec.run.mounts[0].source", "symbolic link")
        assert "SECRET" not in r.out
    # A prefix that is itself reached through a symlink admits nothing beneath it.
    r = run_cell(probe_spec({}, [{"source": str(base / "last" / "f"), "target": "/f"}]),
                 env={ALLOW: str(base / "last")})
    create_refusal(r, "spec.run.mounts[0].source", "symbolic link")


def test_a_source_swapped_for_a_symlink_cannot_redirect_the_mount(no_residue):
    """The source is opened once, without following symlinks, and bound from that
    descriptor: while another thread keeps replacing it with a symlink to a secret
    directory (outside the allowed prefix), every cell either mounts the real
    directory or fails at create; none ever sees the secret."""
    base = new_dir("mounts")
    src = tree(base / "src", {"marker": "good\n"})
    hold = base / "src.hold"
    secret = tree(base.parent / f"{base.name}-secret", {"marker": "SECRET\n"})
    stop = threading.Event()
    swaps = 0

    def swap():
        nonlocal swaps
        while not stop.is_set():
            os.rename(src, hold)
            os.symlink(secret, src)
            time.sleep(0.0005)
            os.unlink(src)
            os.rename(hold, src)
            swaps += 1
            time.sleep(0.001)

    doc = probe_spec({"read": ["/src/marker"]}, [{"source": str(src), "target": "/src"}])
    t = threading.Thread(target=swap)
    t.start()
    seen = {"good": 0, "refused": 0}
    try:
        for _ in range(30):
            r = run_cell(doc, env={ALLOW: str(base)})
            assert "SECRET" not in r.out and "SECRET" not in r.err, r
            if r.rc == 0:
                assert result(r)["read /src/marker"] == "good\n", r
                seen["good"] += 1
            else:
                create_refusal(r, "spec.run.mounts[0].source")
                seen["refused"] += 1
    finally:
        stop.set()
        t.join()
    assert swaps > 30 and seen["good"] > 0, (swaps, seen)
    # While a cell runs, the host path can change at will: the cell keeps what was
    # opened (nothing is resolved by name again).
    slow = make_spec(py_argv("import sys,time; time.sleep(1.5); print(open('/src/marker').read().strip())"),
                     run_extra={"mounts": [{"source": str(src), "target": "/src"}]})
    run = Running(slow, env={ALLOW: str(base)})
    run.wait_event("observability.v1.process_spawned")
    os.rename(src, hold)
    os.symlink(secret, src)
    try:
        done = run.finish()
    finally:
        os.unlink(src)
        os.rename(hold, src)
    assert done.rc == 0 and done.out.strip() == "good", done


# ---------------------------------------------------------------- target rules


@pytest.mark.parametrize("target,message", [
    ("/", "must not be / (the cell's root)"),
    ("/proc", "must not be /proc"),
    ("/proc/sys/kernel", "must not be /proc"),
    ("/sys/fs", "must not be /sys"),
    ("/dev", "must not be /dev"),
    ("/dev/shm/x", "must not be /dev"),
    ("/run/cellos", "must not be /run/cellos"),
    ("/run/cellos/secrets", "must not be /run/cellos"),
    ("/run", "must not be /run: the cell's /run/cellos lies beneath it"),
    ("/etc/resolv.conf", "must not be /etc/resolv.conf"),
    ("relative", "must be an absolute path without '..'"),
    ("/a/../etc", "must be an absolute path without '..'"),
    ("/work", "is run.workingDirectory"),
])
def test_forbidden_targets_are_refused_naming_the_field(target, message, no_residue):
    base = new_dir("mounts")
    src = tree(base / "src", {})
    doc = probe_spec({}, [{"source": str(src), "target": "/fine"}, {"source": str(src), "target": target}],
                     workingDirectory="/work")
    r = run_cell(doc, env={ALLOW: str(base)})
    admission_refusal(r, "spec.run.mounts[1].target", message)


def test_two_mounts_on_one_target_and_every_problem_at_once(no_residue):
    base = new_dir("mounts")
    src = tree(base / "src", {})
    doc = probe_spec({}, [{"source": str(src), "target": "/x"}, {"source": str(src), "target": "/x/"},
                          {"source": "rel", "target": "/proc/1"}, {"source": str(src), "target": "/y",
                                                                    "readOnly": "no"}])
    r = run_cell(doc, env={ALLOW: str(base)})
    admission_refusal(r, "spec.run.mounts[1].target: /x/ is already the target of spec.run.mounts[0]",
                      "spec.run.mounts[2].source", "spec.run.mounts[2].target", "spec.run.mounts[3].readOnly")


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("unshare", ["net", "0"])
def test_a_cell_without_a_mount_namespace_cannot_have_mounts(unshare, no_residue):
    base = new_dir("mounts")
    src = tree(base / "src", {"f": "x\n"})
    r = run_cell(probe_spec({"read": ["/src/f"]}, [{"source": str(src), "target": "/src"}]),
                 env={ALLOW: str(base), "CELLOS_SUBPROCESS_UNSHARE": unshare})
    admission_refusal(r, "spec.run.mounts", "mount namespace")


def hardened_env(**over):
    key = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
    env = {"CELLOS_DEPLOYMENT_PROFILE": "hardened", "CELLOS_EVENT_SIGNING": "hmac",
           "CELLOS_EVENT_SIGNING_KID": "cellbb-test", "CELLOS_EVENT_SIGNING_KEY_BASE64": key}
    env.update(over)
    return env


def test_hardened_refuses_writable_mounts_and_runs_read_only_ones(no_residue):
    base = new_dir("mounts")
    src = tree(base / "src", {"f": "ro\n"})
    rw = probe_spec({}, [{"source": str(src), "target": "/src", "readOnly": False}])
    r = run_cell(rw, env=hardened_env(**{ALLOW: str(base), ALLOW_RW: "1"}))
    admission_refusal(r, "spec.run.mounts[0].readOnly", "hardened")
    ro = probe_spec({"read": ["/src/f"], "write": ["/src/f"]}, [{"source": str(src), "target": "/src"}])
    r = run_cell(ro, env=hardened_env(**{ALLOW: str(base)}))
    assert r.rc == 0, r
    got = result(r)
    assert got["read /src/f"] == "ro\n" and got["write /src/f"] == "EROFS", got


# ---------------------------------------------------------------- gvisor and oci


@pytest.mark.parametrize("backend", ["gvisor", "oci"])
def test_mounts_on_the_oci_runtimes(backend, no_residue):
    env = dict(GV if backend == "gvisor" else OCI)
    base = new_dir("mounts")
    src = tree(base / "checkout", {"README": "hello\n", "sub/placeholder": "outer\n"})
    inner = tree(base / "inner", {"in.txt": "inner\n"})
    out = tree(base / "out", {})
    os.chmod(out, 0o777)
    conf = base / "app.conf"
    conf.write_text("key=value\n")
    before = fingerprint(src)
    what = {"read": ["/src/README", "/src/sub/in.txt", "/cellbb-app.conf", "/ws/in/README"],
            "write": ["/src/new", "/ws/out/result.txt", "/ws/mine"], "list": ["/src/sub"]}
    mounts = [{"source": str(inner), "target": "/src/sub"}, {"source": str(src), "target": "/src"},
              {"source": str(conf), "target": "/cellbb-app.conf"},
              {"source": str(out), "target": "/ws/out", "readOnly": False},
              {"source": str(src), "target": "/ws/in"}]
    doc = probe_spec(what, mounts, workingDirectory="/ws")
    r = run_cell(doc, env={**env, ALLOW: str(base), ALLOW_RW: "1"}, timeout=60)
    assert r.rc == 0, r
    got = result(r)
    assert got["read /src/README"] == "hello\n"
    assert got["read /src/sub/in.txt"] == "inner\n"
    assert got["list /src/sub"] == ["in.txt"]
    assert got["read /cellbb-app.conf"] == "key=value\n"
    assert got["read /ws/in/README"] == "hello\n"
    assert got["write /src/new"] == "EROFS", got
    assert got["write /ws/out/result.txt"] == "OK" and got["write /ws/mine"] == "OK", got
    assert (out / "result.txt").read_text() == "from the cell\n"
    assert fingerprint(src) == before
    assert not (base / "checkout" / "new").exists()
    iso = r.event("lifecycle.v1.started")["data"]["isolation"]
    assert iso["mounts"][1] == {"source": str(src), "target": "/src", "readOnly": True}
    assert iso["mounts"][3]["readOnly"] is False


@pytest.mark.parametrize("backend", ["gvisor", "oci"])
def test_oci_runtimes_refuse_what_the_stub_refuses(backend, no_residue):
    env = dict(GV if backend == "gvisor" else OCI)
    base = new_dir("mounts")
    real = tree(base / "real", {"f": "real\n"})
    (base / "link").symlink_to(real)
    r = run_cell(probe_spec({}, [{"source": str(base / "link"), "target": "/src"}]), env={**env, ALLOW: str(base)})
    create_refusal(r, "spec.run.mounts[0].source", "symbolic link")
    r = run_cell(probe_spec({}, [{"source": str(real), "target": "/src", "readOnly": False}]),
                 env={**env, ALLOW: str(base)})
    admission_refusal(r, "spec.run.mounts[0].readOnly", ALLOW_RW)
    r = run_cell(probe_spec({}, [{"source": str(real), "target": "/src"}, {"source": str(real), "target": "/src/no"}]),
                 env={**env, ALLOW: str(base)})
    create_refusal(r, "spec.run.mounts[1].target", "must already exist")
