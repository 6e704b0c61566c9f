"""Helpers shared by the export tests (SPEC §10)."""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from conftest import MARK, TYPE_PREFIX, make_spec, py_argv, short_type

STARTED = TYPE_PREFIX + "lifecycle.v1.started"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_events(r) -> list[dict]:
    return [e for e in r.events if short_type(e).startswith("export.v2.")]


def by_artifact(r) -> dict[str, dict]:
    """artifactName -> the one export event of that artifact (asserted unique)."""
    out = {}
    for e in export_events(r):
        name = e["data"]["artifactName"]
        assert name not in out, f"two export events for {name}: {r.types}"
        out[name] = e
    return out


def check_provenance(r, ev):
    started = r.event("lifecycle.v1.started")
    assert ev["data"]["provenance"] == {"parent": started["id"], "parentType": STARTED}


def writer_spec(files: dict[str, bytes], artifacts, *, workdir="/work", exit_code=0, targets=None, id=None,
                extra_code="", spec_extra=None, run_extra=None, ttl=60):
    """A cell whose workload writes `files` (path -> bytes) then exits `exit_code`.
    `artifacts`: list of (name, path[, target])."""
    code = "import os, sys\n"
    for path, data in files.items():
        code += f"open({path!r}, 'wb').write({data!r})\n"
    code += extra_code + f"\nsys.exit({exit_code})\n"
    export = {"artifacts": [dict(zip(("name", "path", "target"), a)) for a in artifacts]}
    if targets is not None:
        export["targets"] = targets
    rx = dict(run_extra or {})
    if workdir:
        rx["workingDirectory"] = workdir
    sx = dict(spec_extra or {})
    sx["export"] = export
    return make_spec(py_argv(code), id=id, ttl=ttl, run_extra=rx, spec_extra=sx)


def tree(root) -> dict[str, bytes]:
    """Every regular file under root (relative path -> content)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


HOST_READ_VAR = "CELLOS_EXPORT_HOST_PATHS_ALLOW"


def host_dir(tag: str = "host") -> Path:
    """A host directory every uid can traverse, removed when the session ends.

    Export reads host paths as the run's unprivileged uid (SPEC §10): nothing under
    new_dir() is visible to it, since the session's directory is 0700 root."""
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-{tag}-", dir="/tmp"))
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d
