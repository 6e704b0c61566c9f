"""SPEC §6.3 `firecracker`: the host side of a Firecracker cell, run against the
stand-in VMM (fc_standin_vmm.py says why it is a stand-in: this host has no
/dev/kvm and no Firecracker). The supervisor under test is the real one; the
stand-in plays Firecracker and the guest: it validates the config file against
Firecracker's schema, binds the API socket, reads the job (run id, per-boot key)
from the initramfs and reports on <uds>_9000..9002 as the guest would.

CELLOS_FIRECRACKER_KVM_DEVICE=/dev/null stands for /dev/kvm in the admission
check (the only thing that variable changes; the real Firecracker opens
/dev/kvm itself).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import (MARK, Running, assert_no_residue, host_snapshot, make_spec, marked_processes, new_dir,
                      run_cell, wait_no_marked)
from fcworld import STANDIN_VMM, fake_image
from kvmdev import kvm_device_usable
from signed_events import cellctl

SOCKET_DIR = f"/run/cellos/fc-{MARK}"
HERE = Path(__file__).resolve().parent


def problem_lines_of(err: str) -> list[str]:
    return [l for l in err.splitlines() if l.strip()]


@pytest.fixture(scope="module")
def vmm() -> Path:
    """The stand-in as an executable whose path carries the session marker (so a
    VMM left running is found), importing its helpers from this directory."""
    d = new_dir("fcvmm")
    os.chmod(d, 0o755)
    exe = d / "firecracker"
    exe.write_text("#!/usr/bin/python3\n"
                   "# Stand-in VMM for the tests (fc_standin_vmm.py says why).\n"
                   "import runpy, sys\n"
                   f"sys.path.insert(0, {str(HERE)!r})\n"
                   f"runpy.run_path({str(STANDIN_VMM)!r}, run_name='__main__')\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture(scope="module")
def image() -> Path:
    return fake_image()


def fc_env(vmm, image, **extra):
    env = {"CELLOS_CELL_BACKEND": "firecracker", "CELLOS_FIRECRACKER_BINARY": str(vmm),
           "CELLOS_VM_IMAGE_DIR": str(image), "CELLOS_FIRECRACKER_KVM_DEVICE": "/dev/null",
           "CELLOS_FIRECRACKER_SOCKET_DIR": SOCKET_DIR}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def guest(*directives, **spec_kw):
    """A document whose workload is the stand-in guest's directives."""
    return make_spec(["/standin", *directives], **spec_kw)


def socket_dir_entries() -> list[str]:
    return sorted(os.listdir(SOCKET_DIR)) if os.path.isdir(SOCKET_DIR) else []


@pytest.fixture
def clean(no_residue):
    """No residue of the usual kinds, and nothing left in our socket directory."""
    yield
    assert socket_dir_entries() == [], f"left in {SOCKET_DIR}: {socket_dir_entries()}"
    assert not marked_processes(), marked_processes()


def run_fc(spec, vmm, image, timeout=60, **env):
    return run_cell(spec, env=fc_env(vmm, image, **env), timeout=timeout)


# ------------------------------------------------------------------ exit status


@pytest.mark.parametrize("code", [0, 3, 42])
def test_the_guests_exit_status_is_the_supervisors(vmm, image, clean, code):
    r = run_fc(guest(f"exit={code}"), vmm, image)
    assert r.rc == code, r
    cc = r.event("command.v1.completed")
    assert cc["data"]["exitCode"] == code and "spawnError" not in cc["data"], cc
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["terminalState"] == "clean", d
    assert d["outcome"] == ("succeeded" if code == 0 else "failed"), d
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.started",
                       "observability.v1.process_spawned", "command.v1.completed",
                       "observability.v1.network_enforcement", "compliance.v1.summary",
                       "lifecycle.v1.destroyed"], r.types


def test_stdout_and_stderr_come_back_byte_exact_and_separate(vmm, image, clean):
    d = new_dir("fcout")
    os.chmod(d, 0o755)
    big = os.urandom(3 * 1024 * 1024) + b"\0\r\n\x1b[2J end"
    (d / "out.bin").write_bytes(big)
    os.chmod(d / "out.bin", 0o644)
    err = b"only on stderr \x00\xff\n" * 100
    r = run_fc(guest(f"outfile={d / 'out.bin'}", f"err={b64(err)}", "exit=0"), vmm, image)
    assert r.rc == 0, r
    assert r.out_bytes == big, (len(r.out_bytes), len(big))
    assert r.err_bytes == err, r.err_bytes[:200]


# ------------------------------------------------------------------ the exit report


@pytest.mark.parametrize("frame", ["forged", "twice", "short", "none"])
def test_a_guest_without_a_valid_report_fails_the_backend_whatever_it_claims(vmm, image, clean, frame):
    # "twice": a forged frame then a good one: only the first frame counts.
    r = run_fc(guest("exit=0", f"frame={frame}", f"out={b64(b'claims success')}"), vmm, image)
    assert r.rc == 125, r
    cc = r.event("command.v1.completed")["data"]
    assert cc["exitCode"] == 125 and "no exit report" in cc["spawnError"], cc
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["reason"] == "backend_failed" and d["terminalState"] == "forced", d
    assert "no exit report" in r.err.splitlines()[-1], r.err
    if frame in ("forged", "twice"):
        assert "does not verify" in r.err, r.err


def test_a_timeout_kills_the_vmm_and_exits_124(vmm, image, clean):
    t0 = time.monotonic()
    r = run_fc(guest("sleep=60", "exit=0", run_extra={"timeoutMs": 1500}), vmm, image)
    assert r.rc == 124, r
    assert time.monotonic() - t0 < 20
    cc = r.event("command.v1.completed")["data"]
    assert cc["exitCode"] == 124 and cc["timedOut"] is True, cc
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["reason"] == "timeout" and d["terminalState"] == "forced", d


def test_a_timeout_asks_the_guest_to_stop_and_a_guest_that_does_ends_clean(vmm, image, clean):
    # SPEC §4: SIGTERM, then the grace. The stop request reaches the guest on the
    # exit connection; this guest reports (as cellos-init reports a workload
    # that SIGTERM ended) and resets within the grace.
    r = run_fc(guest("stop=143", run_extra={"timeoutMs": 1500, "limits": {"gracefulShutdownSeconds": 30}}),
               vmm, image)
    assert r.rc == 124, r
    assert r.elapsed < 20, r.elapsed
    cc = r.event("command.v1.completed")["data"]
    assert cc["exitCode"] == 124 and cc["timedOut"] is True and "no exit report" not in cc["spawnError"], cc
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["reason"] == "timeout" and d["terminalState"] == "clean", d


def test_a_guest_that_ignores_the_stop_request_is_killed_after_the_grace(vmm, image, clean):
    t0 = time.monotonic()
    r = run_fc(guest("stop=ignore", run_extra={"timeoutMs": 1000, "limits": {"gracefulShutdownSeconds": 2}}),
               vmm, image)
    assert r.rc == 124, r
    assert 3 <= time.monotonic() - t0 < 20
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["reason"] == "timeout" and d["terminalState"] == "forced", d


def test_a_vmm_that_does_not_end_after_the_report_is_killed_but_the_report_stands(vmm, image, clean):
    r = run_fc(guest("exit=7", "hang"), vmm, image)
    assert r.rc == 7, r
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["terminalState"] == "forced" and d["reason"] == "nonzero_exit", d


# ------------------------------------------------------------------ the VMM's process


def facts_of(r) -> dict:
    lines = [l for l in r.out.splitlines() if l.startswith("{")]
    assert lines, r
    return json.loads(lines[-1])


def test_the_vmm_runs_as_the_runs_uid_without_privileges_in_the_cells_leaf_and_netns(vmm, image, clean):
    r = run_fc(guest("facts"), vmm, image)
    assert r.rc == 0, r
    f = facts_of(r)
    iso = r.event("lifecycle.v1.started")["data"]["isolation"]
    assert f["uid"] == iso["hostUid"] != 0 and f["gid"] == iso["hostUid"], (f, iso)
    assert f["groups"] == [], f  # /dev/null is world-writable: no kvm group needed
    assert f["CapEff"] == "0000000000000000" and f["NoNewPrivs"] == "1", f
    # CELLOS_SECCOMP's baseline, installed before exec, and Firecracker's own
    # filter (here: the stand-in's) on top.
    assert f["Seccomp"] == "2" and f["Seccomp_filters"] == "2", f
    assert iso["seccomp"] == "baseline", iso
    assert f["netns"] != os.stat("/proc/self/ns/net").st_ino, f
    assert f["ifaces"] == ["lo"], f  # no egress declared: no TAP
    leaf = iso["cgroup"]
    assert leaf and f["cgroup"].endswith(leaf.split("/sys/fs/cgroup", 1)[-1].split("/unified", 1)[-1]), (f, leaf)
    # Only stdio (its log), its binary (fd 3: the file that was hashed) and the
    # verified kernel (fd 10, which the config's vmlinux symlink names).
    fds = f["fds"]
    assert sorted(fds, key=int) == ["0", "1", "2", "3", "10"], fds
    assert fds["0"] == "/dev/null" and fds["1"] == fds["2"] and fds["1"].startswith("/memfd:"), fds
    assert fds["3"] == str(vmm) and fds["10"] == str(image / "vmlinux"), fds


def test_declared_egress_gives_the_vmm_a_tap_and_an_nft_ruleset(vmm, image, clean):
    spec = guest("facts", egress=[{"host": "192.0.2.7", "port": 443, "protocol": "tcp"}])
    r = run_fc(spec, vmm, image)
    assert r.rc == 0, r
    assert facts_of(r)["ifaces"] == ["lo", "tap0"], facts_of(r)
    ne = r.event("observability.v1.network_enforcement")["data"]
    assert ne["isolationMode"] == "microvm" and ne["nftRulesApplied"] is True, ne
    assert [c["rule"] for c in ne["ruleCounters"]][-1] == "drop", ne


def test_the_gateway_gives_the_vmms_netns_a_veth_and_the_guest_its_dns_proxy(vmm, image, clean):
    # CELLOS_NETWORK=gateway (SPEC §6.4): the cell's netns gets the gateway's veth
    # beside the TAP (whose traffic is routed out through it: the qemu backend's
    # real-boot test shows the packets go); the job names the gateway's DNS proxy
    # as the guest's resolver. In a test world: nothing leaves the machine.
    from networld import NetWorld, gw_allocations
    world = NetWorld()
    try:
        spec = guest("facts", "job", egress=[{"host": world.world_addr, "port": 8080}])
        r = world.run(spec, env=fc_env(vmm, image), timeout=60)
        assert r.rc == 0, r
        lines = [json.loads(l) for l in r.out.splitlines() if l.startswith("{")]
        facts = [l for l in lines if "ifaces" in l][0]
        job = [l for l in lines if "runId" in l][0]
        assert facts["ifaces"] == ["eth0", "lo", "tap0"], facts
        net = r.event("lifecycle.v1.started")["data"]["isolation"]["network"]
        assert net["mode"] == "gateway", net
        assert job["network"]["dns"] == net["gatewayAddress"], (job, net)
        ne = r.event("observability.v1.network_enforcement")["data"]
        assert ne["nftRulesApplied"] is True, ne
        deadline = time.monotonic() + 5
        while [l for l in world.links() if l.startswith("cellos")] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [l for l in world.links() if l.startswith("cellos")], world.links()
        assert not [t for t in world.tables() if "cellos" in t], world.tables()
        assert gw_allocations(spec["spec"]["id"]) == []
    finally:
        world.close()


def test_seccomp_off_starts_firecracker_without_any_filter(vmm, image, clean):
    r = run_fc(guest("facts"), vmm, image, CELLOS_SECCOMP="off")
    assert r.rc == 0, r
    assert facts_of(r)["Seccomp"] == "0", facts_of(r)  # no filter of ours, and --no-seccomp
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["seccomp"] == "off"


def test_a_filter_file_filters_the_vmm(vmm, image, clean):
    sc = new_dir("fcsc") / "vmm.sc"
    sc.write_text("# the VMM may not use these\n@baseline\nptrace\n")
    r = run_fc(guest("facts"), vmm, image, CELLOS_SECCOMP=sc)
    assert r.rc == 0, r
    assert facts_of(r)["Seccomp_filters"] == "2", facts_of(r)
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["seccomp"] == "file"


# ------------------------------------------------------------------ what the guest is given


def job_of(r) -> dict:
    lines = [l for l in r.out.splitlines() if l.startswith('{"version"')]
    assert lines, r
    return json.loads(lines[-1])


def test_file_secrets_reach_the_guest_as_files_of_the_job(vmm, image, clean):
    value = b"s3cr\x00t\nvalue"
    spec = guest("job", secret_refs=["db-pass"], run_extra={"secretDelivery": "file"})
    r = run_fc(spec, vmm, image, CELLOS_BROKER="file", CELLOS_SECRET_FILE_DB_PASS=secret_file(value))
    assert r.rc == 0, r
    files = job_of(r)["files"]
    assert [f["path"] for f in files] == ["/run/cellos/secrets/db-pass"], files
    assert base64.b64decode(files[0]["data"]) == value, files
    assert b"s3cr" not in r.raw  # never in an event


def secret_file(value: bytes) -> Path:
    d = new_dir("fcsecret")
    p = d / "value"
    p.write_bytes(value)
    return p


def test_mounts_become_read_only_ext4_disks_mounted_where_the_document_says(vmm, image, clean):
    src = new_dir("fcmnt")
    (src / "hello.txt").write_text("from the host\n")
    spec = guest("job", "drives", run_extra={"mounts": [{"source": str(src), "target": "/data"}]})
    r = run_fc(spec, vmm, image, CELLOS_HOST_MOUNT_ALLOW_PREFIXES=src.parent)
    assert r.rc == 0, r
    assert job_of(r)["mounts"] == [{"device": "/dev/vda", "target": "/data"}], job_of(r)
    drives = [json.loads(l) for l in r.out.splitlines() if l.startswith('{"id"')]
    assert drives == [{"id": "mount0", "size": drives[0]["size"], "ext4": True}], drives
    # A writable mount cannot be given to a VM.
    spec = guest("exit=0", run_extra={"mounts": [{"source": str(src), "target": "/data", "readOnly": False}]})
    r = run_fc(spec, vmm, image, CELLOS_HOST_MOUNT_ALLOW_PREFIXES=src.parent, CELLOS_HOST_MOUNT_ALLOW_RW=1)
    assert r.rc == 125 and "readOnly" in r.err, r


def test_artifacts_come_back_on_their_channel_and_are_exported(vmm, image, clean):
    root = new_dir("fcexp")
    data = os.urandom(100000)
    spec = guest("exit=0", f"art0={b64(data)}", spec_extra={"export": {"artifacts": [
        {"name": "out.bin", "path": "/workspace/out.bin"}, {"name": "missing", "path": "/workspace/nope"}]}})
    r = run_fc(spec, vmm, image, CELLOS_EXPORT_DIR=root)
    assert r.rc == 125, r  # one artifact failed to export
    done = r.event("export.v2.completed")["data"]
    assert done["artifactName"] == "out.bin" and done["sha256"] == hashlib.sha256(data).hexdigest(), done
    assert (root / spec["spec"]["id"] / "out.bin").read_bytes() == data
    failed = r.event("export.v2.failed")["data"]
    assert failed["artifactName"] == "missing" and "No such file" in failed["reason"], failed


# ------------------------------------------------------------------ events


def test_events_say_microvm_and_carry_the_digests_of_what_booted(vmm, clean):
    image = fake_image(rootfs=True)
    r = run_fc(guest("exit=0"), vmm, image)
    assert r.rc == 0, r
    assert r.event("observability.v1.network_policy")["data"]["isolationMode"] == "microvm"
    s = r.event("lifecycle.v1.started")["data"]
    assert s["backend"] == "firecracker", s
    sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    assert s["kernelDigestSha256"] == sha(image / "vmlinux"), s
    assert s["rootfsDigestSha256"] == sha(image / "rootfs.ext4"), s
    assert s["firecrackerDigestSha256"] == sha(vmm), s
    assert r.event("compliance.v1.summary")["data"]["backend"] == "firecracker"


def test_the_config_firecracker_got_is_what_vm_config_prints(vmm, image, clean):
    run_id = str(uuid.uuid4())
    spec = guest("exit=0")
    env = fc_env(vmm, image, CELLOS_RUN_ID=run_id)
    r = run_cell(spec, env=env)
    assert r.rc == 0, r
    rc, out, err = cellctl("vm-config", r.spec_path, env=env)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["vsock"]["uds_path"] == f"{SOCKET_DIR}/{run_id}/vsock.sock"
    # The stand-in validated exactly this file (it refuses what the schema refuses).


def test_a_tampered_image_is_refused_before_boot(vmm, clean):
    image = fake_image()
    with open(image / "vmlinux", "ab") as f:
        f.write(b"x")
    r = run_fc(guest("exit=0"), vmm, image)
    assert r.rc == 125, r
    failed = r.event("lifecycle.v1.failed")["data"]
    assert failed["phase"] == "create" and failed["reason"] == "backend_failed", failed
    assert "vmlinux" in failed["message"], failed
    assert not r.has("lifecycle.v1.started")


# ------------------------------------------------------------------ admission


def test_no_kvm_is_refused_at_admission_naming_it(vmm, image):
    marker = new_dir("fckvm") / "ran"
    r = run_fc(guest("exit=0"), vmm, image, CELLOS_FIRECRACKER_KVM_DEVICE="/nonexistent/kvm")
    assert r.rc == 125 and r.events == [], r
    lines = problem_lines_of(r.err)
    assert len(lines) == 1 and "/nonexistent/kvm" in lines[0] and "KVM" in lines[0], r.err
    assert not marker.exists()
    # A regular file is no device.
    f = new_dir("fckvm") / "kvm"
    f.write_text("")
    r = run_fc(guest("exit=0"), vmm, image, CELLOS_FIRECRACKER_KVM_DEVICE=f)
    assert r.rc == 125 and "not a character device" in r.err, r


def test_the_real_kvm_device_is_checked_by_default(vmm, image):
    """Hosts of this kind differ: some have no /dev/kvm, some have a usable one.
    Without the test variable the check is on /dev/kvm either way."""
    env = fc_env(vmm, image)
    del env["CELLOS_FIRECRACKER_KVM_DEVICE"]
    r = run_cell(guest("exit=0"), env=env)
    if kvm_device_usable():
        # The check passes, and the stand-in (which needs no KVM) runs the job.
        assert r.rc == 0 and r.has("lifecycle.v1.destroyed"), r
    else:
        assert r.rc == 125 and "/dev/kvm" in r.err and r.events == [], r


def test_no_binary_and_no_kvm_are_named_in_one_line(image):
    # No KVM device: the host's own where it has none, else one named for the test.
    kvm = "/dev/kvm" if not kvm_device_usable() else "/nonexistent/kvm"
    r = run_cell(guest("exit=0"), env={"CELLOS_CELL_BACKEND": "firecracker", "CELLOS_VM_IMAGE_DIR": str(image),
                                        "CELLOS_FIRECRACKER_BINARY": "/nonexistent/firecracker",
                                        **({"CELLOS_FIRECRACKER_KVM_DEVICE": kvm} if kvm != "/dev/kvm" else {})})
    assert r.rc == 125, r
    lines = problem_lines_of(r.err)
    assert len(lines) == 1, r.err
    assert "CELLOS_FIRECRACKER_BINARY" in lines[0] and kvm in lines[0], lines


def test_an_explicit_filter_cannot_be_put_on_the_jailer(vmm, image):
    r = run_fc(guest("exit=0"), vmm, image, CELLOS_FIRECRACKER_JAILER_BINARY="/usr/bin/jailer",
               CELLOS_SECCOMP="baseline")
    assert r.rc == 125 and r.events == [], r
    assert "CELLOS_SECCOMP" in problem_lines_of(r.err)[0], r.err


def test_validate_describes_a_firecracker_cell(vmm, image):
    r = run_cell(guest("exit=0"), args=["--validate", "{spec}"], env=fc_env(vmm, image), jsonl=False)
    assert r.rc == 0, r
    assert "backend:   firecracker (Firecracker: the workload runs on a guest kernel in a microVM)" in r.out, r.out
    assert "seccomp:   the VMM under the baseline, and Firecracker's own filters" in r.out, r.out


def test_validate_reports_what_this_host_lacks(image):
    r = run_cell(guest("exit=0"), args=["--validate", "{spec}"],
                 env={"CELLOS_CELL_BACKEND": "firecracker", "CELLOS_VM_IMAGE_DIR": str(image)})
    # Debian has no Firecracker: the binary is missing on every host of this kind;
    # /dev/kvm on those that have none.
    assert shutil.which("firecracker") is None
    assert r.rc == 125 and "CELLOS_FIRECRACKER_BINARY" in r.err, r
    assert ("/dev/kvm" in r.err) == (not kvm_device_usable()), r.err


def test_a_run_base_others_cannot_traverse_is_opened_for_the_vmm(vmm, image, clean):
    """/run/cellos made 0700 (by an earlier version, or by hand): the VMM runs as
    the run's uid and must reach its directory beneath it. The backend opens it up
    to 0711 (traverse, never list) rather than fail every VM cell on the host."""
    before = os.stat("/run/cellos").st_mode & 0o7777
    os.chmod("/run/cellos", 0o700)
    try:
        r = run_fc(guest("exit=0"), vmm, image)
        assert r.rc == 0, r
        assert os.stat("/run/cellos").st_mode & 0o7777 == 0o711
    finally:
        os.chmod("/run/cellos", before)


@pytest.mark.parametrize("var,value", [
    ("CELLOS_FIRECRACKER_KVM_DEVICE", "dev/kvm"),
    ("CELLOS_FIRECRACKER_JAILER_BINARY", "jail/er"),
    ("CELLOS_FIRECRACKER_SOCKET_DIR", "relative"),
    ("CELLOS_VM_VCPUS", "33"),
    ("CELLOS_VM_MEMORY_MIB", "lots"),
    ("CELLOS_FIRECRACKER_CHROOT_BASE", "/srv/jail"),  # without the jailer
])
def test_bad_variables_are_refused_in_one_line_naming_them(vmm, image, var, value):
    r = run_fc(guest("exit=0"), vmm, image, **{var: value})
    assert r.rc == 125 and r.events == [], r
    lines = problem_lines_of(r.err)
    assert len(lines) == 1 and var in lines[0], r.err


# ------------------------------------------------------------------ residue


def test_a_terminated_supervisor_ends_the_vm_and_reports_it(vmm, image, clean):
    run = Running(guest("sleep=60"), env=fc_env(vmm, image))
    try:
        run.wait_event("observability.v1.process_spawned")
        run.proc.send_signal(signal.SIGTERM)
        r = run.finish(timeout=20)
    finally:
        run.kill()
    assert r.rc == 128 + signal.SIGTERM, r
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["reason"] == "supervisor_terminated" and d["terminalState"] == "forced", d


def test_a_terminated_supervisor_lets_a_guest_that_stops_end_clean(vmm, image, clean):
    run = Running(guest("stop=143", run_extra={"limits": {"gracefulShutdownSeconds": 30}}), env=fc_env(vmm, image))
    try:
        run.wait_event("observability.v1.process_spawned")
        run.proc.send_signal(signal.SIGTERM)
        r = run.finish(timeout=20)
    finally:
        run.kill()
    assert r.rc == 128 + signal.SIGTERM, r
    assert r.event("command.v1.completed")["data"]["exitCode"] == 143
    d = r.event("lifecycle.v1.destroyed")["data"]
    assert d["reason"] == "supervisor_terminated" and d["terminalState"] == "clean", d


def test_a_sigkilled_supervisor_takes_the_vmm_along_and_the_next_run_sweeps_its_directory(vmm, image):
    before = host_snapshot()
    run = Running(guest("sleep=60"), env=fc_env(vmm, image))
    try:
        run.wait_event("observability.v1.process_spawned")
        assert socket_dir_entries(), "the cell's directory should exist while it runs"
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=10)
    finally:
        run.kill()
    left, _ = wait_no_marked(MARK, 10)
    assert not left, f"the VMM outlived its supervisor: {left}"
    # The next run sweeps what the dead one left (its directory, its cgroup leaf).
    r = run_fc(guest("exit=0"), vmm, image)
    assert r.rc == 0, r
    assert socket_dir_entries() == [], socket_dir_entries()
    assert_no_residue(before)
