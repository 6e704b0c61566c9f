"""Includes point down the layers only (docs/DESIGN.md, "Module map"): the check
passes on this tree, and it does fail on a tree that breaks the rule."""
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT

CHECK = REPO_ROOT / "scripts" / "check-includes.sh"


def check(root):
    return subprocess.run([str(CHECK), str(root)], capture_output=True, text=True, timeout=60)


def test_this_tree_includes_point_down_only():
    r = check(REPO_ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


@pytest.fixture
def tree(tmp_path):
    """A copy of this tree's sources, to break."""
    for d in ("src", "tools", "bench"):
        shutil.copytree(REPO_ROOT / d, tmp_path / d)
    return tmp_path


def add_include(path, header):
    text = path.read_text()
    path.write_text(f'#include "{header}"\n' + text)


@pytest.mark.parametrize("file,header,words", [
    # util is the bottom layer: the supervisor is far above it.
    ("src/util/path.c", "supervisor.h", ["util (layer 0)", "supervisor.h", "point down only"]),
    # isolate reads the document only through what its callers hand it.
    ("src/isolate/mount.c", "spec/spec.h", ["isolate (layer 1)", "spec/spec.h", "point down only"]),
    # the dead-letter sink must not reach back into events (the old cycle).
    ("src/sink/dlq.c", "events/event.h", ["sink (layer 4)", "events/event.h", "point down only"]),
    # two ports of one layer never include each other.
    ("src/export/export.c", "backend/backend.h", ["export (layer 7)", "backend/backend.h",
                                                  "do not include each other"]),
])
def test_an_upward_include_fails(tree, file, header, words):
    add_include(tree / file, header)
    r = check(tree)
    assert r.returncode == 1, r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    assert lines[0].startswith(f"{file}:1: ")
    for w in words:
        assert w in lines[0]


def test_a_vocabulary_header_may_not_include_ours(tree):
    add_include(tree / "src/sink/fsync.h", "util/err.h")
    r = check(tree)
    assert r.returncode == 1
    assert "src/sink/fsync.h: a vocabulary header must not include headers of ours" in r.stdout


def test_a_module_on_no_layer_fails(tree):
    (tree / "src/gateway").mkdir()
    (tree / "src/gateway/gw.c").write_text('#include "util/err.h"\n')
    r = check(tree)
    assert r.returncode == 1
    assert "src/gateway/gw.c:1: module gateway is not on any layer" in r.stdout
