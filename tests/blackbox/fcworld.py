"""What the Firecracker tests share: a guest image directory as `cellctl image
build` lays it out (manifest.json with the SHA-256 of every file), and the paths
of the stand-in VMM.

No Firecracker can run on this host (no /dev/kvm, not packaged), so the image's
files need not boot: the stand-in VMM (fc_standin_vmm.py) never runs the kernel.
Their bytes are what the supervisor verifies against the manifest and copies into
the cell, which is what these tests look at.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from conftest import new_dir

HERE = Path(__file__).resolve().parent
STANDIN_VMM = HERE / "fc_standin_vmm.py"


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio newc archive of (name, mode, data) entries, with its trailer."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], start=1):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += hdr.encode() + nb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def fake_image(rootfs: bool = False) -> Path:
    """An image directory: vmlinux, initramfs (a real cpio archive) and, with
    `rootfs`, a root disk; manifest.json names each with its SHA-256."""
    d = new_dir("fcimg")
    os.chmod(d, 0o755)
    files = {
        "vmlinux": b"\x7fELF stand-in kernel for the Firecracker tests (never booted)\n",
        "initramfs": _cpio_newc([("init", 0o100755, b"#!/bin/sh\n# stand-in: never run\n")]),
    }
    if rootfs:
        files["rootfs"] = b"stand-in ext4 root disk\n" * 64
    names = {"vmlinux": "vmlinux", "initramfs": "initramfs.cpio", "rootfs": "rootfs.ext4"}
    manifest = {"version": 1, "kernelRelease": "6.1.0-standin-cloud-amd64", "files": {}}
    for part, data in files.items():
        (d / names[part]).write_bytes(data)
        manifest["files"][part] = {"path": names[part], "sha256": hashlib.sha256(data).hexdigest()}
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return d
