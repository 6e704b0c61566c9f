"""The residue checks of conftest.py must catch what they are meant to: a check that
cannot fail would make every "nothing left behind" test meaningless. (The nft check is
not exercised here: a table named cellos in the host netns, even for a moment, would
trip concurrent sessions on the same host.)"""
import os
import subprocess
import time

from conftest import (CELL_IDS, MARK, assert_no_residue, host_snapshot, marked_processes, new_dir, residue,
                      unique_id)


def v2_root():
    for line in open("/proc/self/mountinfo"):
        parts = line.split()
        if parts[parts.index("-") + 1] == "cgroup2":
            return parts[4]
    raise AssertionError("no cgroup2 mount")


def test_a_left_cgroup_leaf_is_detected():
    cid = unique_id("harness")
    CELL_IDS.add(cid)
    before = host_snapshot()
    leaf = os.path.join(v2_root(), f"cellos-{cid}-0123abcd")
    os.mkdir(leaf)
    try:
        problems = residue(before, host_snapshot())
        assert any(leaf in p for p in problems), problems
    finally:
        os.rmdir(leaf)
    assert_no_residue(before)


def test_a_surviving_marked_process_is_detected():
    before = host_snapshot()
    p = subprocess.Popen(["/bin/sh", "-c", "sleep 30", MARK], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not marked_processes() and time.monotonic() < deadline:
            time.sleep(0.01)
        problems = residue(before, host_snapshot())
        assert any("marker" in x for x in problems), problems
    finally:
        p.kill()
        p.wait()
    assert_no_residue(before)


def test_a_leaked_mount_and_fd_are_detected():
    before = host_snapshot()
    d = new_dir("mnt")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        problems = residue(before, host_snapshot())
        assert any("mounts changed" in x and str(d) in x for x in problems), problems
        assert any("fds changed" in x for x in problems), problems
    finally:
        os.close(fd)
        subprocess.run(["umount", str(d)], check=True)
    assert_no_residue(before)
