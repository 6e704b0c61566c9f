"""SPEC §6.3 `firecracker`: the VM of a cell is one --config-file that validates
against Firecracker's own API schema with `additionalProperties: false`
(fcschema.py builds it), and `cellctl vm-config SPEC` prints exactly that file
without booting anything (no KVM, no Firecracker needed: this host has neither).
"""
from __future__ import annotations

import base64
import json
import uuid

import pytest

from conftest import make_spec, new_dir, prepare
from fcschema import problems
from fcworld import fake_image
from signed_events import cellctl

MIB = 1024 * 1024


def vm_config(spec, env: dict | None = None, image=None):
    _, spec_path, _ = prepare(spec, jsonl=False)
    full = {"CELLOS_VM_IMAGE_DIR": str(image or fake_image())}
    full.update(env or {})
    rc, out, err = cellctl("vm-config", spec_path, env=full)
    return rc, out, err


def config_of(spec, env=None, image=None) -> dict:
    rc, out, err = vm_config(spec, env, image)
    assert rc == 0, (rc, out, err)
    assert err == "", err
    doc = json.loads(out)
    assert problems(doc) == [], f"the config breaks Firecracker's schema: {problems(doc)}\n{out}"
    return doc


def argv_of(doc) -> list[str]:
    args = doc["boot-source"]["boot_args"].split()
    enc = [a for a in args if a.startswith("cellos.argv=")]
    assert len(enc) == 1, args
    return json.loads(base64.b64decode(enc[0][len("cellos.argv="):], validate=True))


def test_a_minimal_document_boots_from_kernel_and_initramfs_with_no_drive():
    run_id = str(uuid.uuid4())
    doc = config_of(make_spec(["/bin/echo", "hello", "wörld"]),
                    env={"CELLOS_RUN_ID": run_id, "CELLOS_FIRECRACKER_SOCKET_DIR": "/run/cellos/fc-test"})
    assert set(doc) == {"boot-source", "drives", "machine-config", "vsock"}, doc
    assert doc["drives"] == []
    cell = f"/run/cellos/fc-test/{run_id}"
    bs = doc["boot-source"]
    assert bs["kernel_image_path"] == f"{cell}/vmlinux"
    assert bs["initrd_path"] == f"{cell}/initrd.cpio"
    args = bs["boot_args"].split()
    # Firecracker has no power-off: the guest ends with a reset, on which it exits.
    assert "reboot=k" in args and "panic=1" in args, args
    assert argv_of(doc) == ["/bin/echo", "hello", "wörld"]
    assert doc["machine-config"] == {"vcpu_count": 1, "mem_size_mib": 256, "smt": False}
    assert doc["vsock"] == {"guest_cid": 3, "uds_path": f"{cell}/vsock.sock"}


def test_limits_size_the_vm_and_replace_the_defaults():
    spec = make_spec(["/bin/true"], run_extra={"limits": {
        "memoryMaxBytes": 300 * MIB + 1, "cpuMax": {"quotaMicros": 250000, "periodMicros": 100000}}})
    doc = config_of(spec, env={"CELLOS_VM_MEMORY_MIB": "512", "CELLOS_VM_VCPUS": "4"})
    # memoryMaxBytes rounded up to MiB; ceil(quota/period) vCPUs.
    assert doc["machine-config"]["mem_size_mib"] == 301, doc
    assert doc["machine-config"]["vcpu_count"] == 3, doc
    # Without limits the variables decide.
    doc = config_of(make_spec(["/bin/true"]), env={"CELLOS_VM_MEMORY_MIB": "512", "CELLOS_VM_VCPUS": "4"})
    assert doc["machine-config"]["mem_size_mib"] == 512 and doc["machine-config"]["vcpu_count"] == 4, doc


def test_mounts_and_the_root_disk_are_read_only_drives_never_the_root_device():
    src = new_dir("fcmnt")
    spec = make_spec(["/bin/true"], run_extra={"mounts": [
        {"source": str(src), "target": "/data", "readOnly": True},
        {"source": str(src), "target": "/more"}]})
    run_id = str(uuid.uuid4())
    doc = config_of(spec, image=fake_image(rootfs=True), env={
        "CELLOS_HOST_MOUNT_ALLOW_PREFIXES": str(src.parent), "CELLOS_RUN_ID": run_id,
        "CELLOS_FIRECRACKER_SOCKET_DIR": "/run/cellos/fc-test"})
    cell = f"/run/cellos/fc-test/{run_id}"
    assert doc["drives"] == [
        {"drive_id": "rootfs", "path_on_host": f"{cell}/rootfs.ext4", "is_root_device": False, "is_read_only": True},
        {"drive_id": "mount0", "path_on_host": f"{cell}/mount0.ext4", "is_root_device": False, "is_read_only": True},
        {"drive_id": "mount1", "path_on_host": f"{cell}/mount1.ext4", "is_root_device": False, "is_read_only": True},
    ], doc["drives"]


def test_declared_egress_gives_the_vm_a_tap_in_the_cells_netns():
    spec = make_spec(["/bin/true"], egress=[{"host": "192.0.2.7", "port": 443, "protocol": "tcp"}])
    doc = config_of(spec)
    nics = doc["network-interfaces"]
    assert len(nics) == 1 and nics[0]["host_dev_name"] == "tap0" and nics[0]["iface_id"] == "eth0", nics
    mac = nics[0]["guest_mac"]
    first = int(mac.split(":")[0], 16)
    assert len(mac) == 17 and first & 2 and not first & 1, mac  # locally administered, unicast
    assert "network-interfaces" not in config_of(make_spec(["/bin/true"]))


def test_with_the_jailer_paths_are_relative_to_its_chroot():
    run_id = str(uuid.uuid4())
    doc = config_of(make_spec(["/bin/true"]), image=fake_image(rootfs=True), env={
        "CELLOS_FIRECRACKER_JAILER_BINARY": "/usr/bin/jailer", "CELLOS_RUN_ID": run_id,
        "CELLOS_FIRECRACKER_BINARY": "/opt/fc/firecracker-v1.16.1"})
    assert doc["boot-source"]["kernel_image_path"] == "/vmlinux"
    assert doc["boot-source"]["initrd_path"] == "/initrd.cpio"
    assert doc["vsock"]["uds_path"] == "/vsock.sock"
    assert doc["drives"][0]["path_on_host"] == "/rootfs.ext4"


def test_vm_config_prints_the_same_bytes_for_the_same_run_id():
    spec = make_spec(["/bin/true"])
    image = fake_image()
    env = {"CELLOS_RUN_ID": str(uuid.uuid4())}
    a, b = vm_config(spec, env, image), vm_config(spec, env, image)
    assert a == b and a[0] == 0, (a, b)
    assert a[1].endswith("}\n") and a[1].count("\n{") == 0, a[1]


def test_the_schema_check_itself_catches_what_firecracker_refuses():
    doc = config_of(make_spec(["/bin/true"]))
    bad = json.loads(json.dumps(doc))
    bad["machine-config"]["memory_mib"] = 1           # unknown field: deny_unknown_fields
    bad["vsock"]["guest_cid"] = 2                     # CIDs below 3 are reserved
    del bad["drives"]                                 # required, may be empty
    found = "\n".join(problems(bad))
    assert "memory_mib" in found and "guest_cid" in found and "drives" in found, found


@pytest.mark.parametrize("env,needle", [
    ({"CELLOS_VM_MEMORY_MIB": "0"}, "CELLOS_VM_MEMORY_MIB"),
    ({"CELLOS_VM_VCPUS": "33"}, "CELLOS_VM_VCPUS"),
    ({"CELLOS_VM_IMAGE_DIR": "relative/dir"}, "CELLOS_VM_IMAGE_DIR"),
    ({"CELLOS_FIRECRACKER_SOCKET_DIR": "/run/" + "x" * 60}, "CELLOS_FIRECRACKER_SOCKET_DIR"),
    ({"CELLOS_FIRECRACKER_BINARY": "bin/firecracker"}, "CELLOS_FIRECRACKER_BINARY"),
    ({"CELLOS_FIRECRACKER_CHROOT_BASE": "/srv/jail"}, "CELLOS_FIRECRACKER_CHROOT_BASE"),
    ({"CELLOS_CELL_BACKEND": "gvisor"}, "CELLOS_CELL_BACKEND"),
])
def test_vm_config_refuses_a_bad_configuration_naming_the_variable(env, needle):
    rc, out, err = vm_config(make_spec(["/bin/true"]), env)
    assert rc in (1, 2) and out == "", (rc, out, err)
    assert needle in err.splitlines()[0], err


def test_vm_config_without_an_image_says_how_to_make_one():
    rc, out, err = vm_config(make_spec(["/bin/true"]), image=new_dir("noimage"))
    assert rc == 1 and out == "", (rc, out, err)
    assert "CELLOS_VM_IMAGE_DIR" in err and "cellctl image build" in err, err


def test_vm_config_needs_neither_kvm_nor_the_binary():
    # This host has no /dev/kvm; the binary named does not exist: still printed.
    doc = config_of(make_spec(["/bin/true"]), env={"CELLOS_FIRECRACKER_BINARY": "/nonexistent/firecracker"})
    assert doc["drives"] == []
