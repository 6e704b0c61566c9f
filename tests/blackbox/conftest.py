"""Black-box test helpers for cellos-supervisor.

Every test runs the real binary, with real namespaces, cgroups and nftables; nothing
is mocked and nothing is skipped (a test that cannot work fails and says why).

Markers and residue
-------------------
Each pytest session picks a unique MARK string. Every document `run_cell` writes
lives in a directory whose name contains it, so the supervisor's command line (and
that of the cell's init, which is a clone of the supervisor) carries MARK; tests that
start workloads which could outlive the cell put MARK (or a per-test marker) in the
workload's argv too. "No process survived" then means: no live process whose
cmdline contains the marker. Host-side objects are compared before/after with
`host_snapshot()` / `assert_no_residue()`, restricted to objects attributable to
this session, because other people run supervisors (and this suite) on the same host
at the same time:
* host objects named `cellos-<cellId>-<runId8>` (cgroup leaves in every hierarchy,
  run registrations, /tmp, /run/netns, /run/cellos/<kind>) count when the cell id is
  one this session ran and no live run holds the registration lock of that name;
* mounts count when they are on a system mount point or carry MARK or one of our
  cells' names;
* any nft table with "cellos" in its name appearing in the host netns counts;
* the fds of the test process must be exactly the same.
test_harness.py checks that these checks do catch what they are meant to.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPERVISOR = Path(os.environ.get("CELLOS_SUPERVISOR") or (REPO_ROOT / "build" / "cellos-supervisor"))

# The interpreter the workloads use (inside cells); the seed calls it by this path.
PY = "/usr/bin/python3"
TYPE_PREFIX = "dev.cellos.events.cell."
DEFAULT_CELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# PATH given to the supervisor itself (the runner's PATH is not leaked).
SUPERVISOR_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

MARK = "cellbb" + uuid.uuid4().hex[:12]
_BASE = Path(tempfile.mkdtemp(prefix=MARK + "-"))
# Workloads run as the run's own unprivileged uid (never root), so a host-mode cell
# must be able to traverse _BASE to reach a directory made writable for it; 0711
# lets it through without letting it list or write _BASE itself.
os.chmod(_BASE, 0o711)

# Explicit host mode: the workload shares the host's namespaces (it still runs as
# the run's own uid). For tests about the host's view: markers written into the
# test's directories, host paths as argv[0] or PATH, /proc/self/cgroup, host namespaces.
HOST_MODE = {"CELLOS_SUBPROCESS_UNSHARE": "0"}
_counter = iter(range(1, 10**9))
_counter_lock = threading.Lock()

# Cell ids this session ran: host-side objects are named cellos-<cellId>-<runId8>.
CELL_IDS: set[str] = set()

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_BASE, ignore_errors=True)


def new_dir(tag: str = "run", *, cell_writable: bool = False) -> Path:
    """A fresh directory under the session's base (0700 unless `cell_writable`)."""
    with _counter_lock:
        n = next(_counter)
    d = _BASE / f"{tag}-{n}"
    d.mkdir()
    if cell_writable:
        make_cell_writable(d)
    return d


def make_cell_writable(d: Path) -> Path:
    """Let a workload write into `d` on the host although it runs as an unprivileged
    uid (host mode, or namespaces without mnt): mode 0777. Only for directories a
    test gives to the workload; everything else keeps its restrictive mode."""
    os.chmod(d, 0o777)
    return d


def unique_id(prefix: str = "bb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- specs


def make_spec(argv=None, *, id=None, ttl=60, secret_refs=(), egress=None, run_extra=None, spec_extra=None,
              run=True):
    """A valid document; `run_extra` merges into spec.run, `spec_extra` into spec."""
    spec = {
        "id": id or unique_id(),
        "authority": {"secretRefs": list(secret_refs)},
        "lifetime": {"ttlSeconds": ttl},
    }
    if egress is not None:
        spec["authority"]["egressRules"] = egress
    if run:
        spec["run"] = {"argv": list(argv or ["/usr/bin/true"])}
        spec["run"].update(run_extra or {})
    spec.update(spec_extra or {})
    return {"apiVersion": "cellos.io/v1", "kind": "ExecutionCell", "spec": spec}


def py_argv(code: str, *extra: str) -> list[str]:
    return [PY, "-c", code, *extra]


# --------------------------------------------------------------------------- running


class Result:
    """Outcome of one supervisor invocation. Unpacks as (rc, stdout, stderr, events)."""

    def __init__(self, rc, out: bytes, err: bytes, jsonl: Path | None, spec_path: Path, elapsed: float):
        self.rc = rc
        self.out_bytes = out
        self.err_bytes = err
        self.out = out.decode("utf-8", "replace")
        self.err = err.decode("utf-8", "replace")
        self.jsonl = jsonl
        self.spec_path = spec_path
        self.elapsed = elapsed
        # A sanitizer build (make SANITIZE=1, CELLOS_SUPERVISOR=...) reports on stderr.
        for needle in ("runtime error:", "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer"):
            assert needle not in self.err, f"sanitizer report from the supervisor:\n{self.err}"
        self.raw = jsonl.read_bytes() if jsonl is not None and jsonl.is_file() else b""
        self.lines = [l for l in self.raw.split(b"\n") if l]
        self.events = [json.loads(l) for l in self.lines]
        for ev in self.events:
            cid = ev.get("data", {}).get("cellId")
            if cid:
                CELL_IDS.add(cid)

    def __iter__(self):
        return iter((self.rc, self.out, self.err, self.events))

    @property
    def types(self) -> list[str]:
        return [short_type(e) for e in self.events]

    def event(self, short: str) -> dict:
        found = [e for e in self.events if short_type(e) == short]
        assert found, f"no {short} event; got {self.types}\nstderr:\n{self.err}"
        assert len(found) == 1, f"{len(found)} {short} events; got {self.types}"
        return found[0]

    def has(self, short: str) -> bool:
        return any(short_type(e) == short for e in self.events)

    def __repr__(self):
        return f"Result(rc={self.rc}, types={self.types}, stderr={self.err!r})"


def short_type(ev: dict) -> str:
    t = ev.get("type", "")
    return t[len(TYPE_PREFIX):] if t.startswith(TYPE_PREFIX) else t


def _spec_bytes(spec) -> bytes:
    if isinstance(spec, (dict, list)):
        return json.dumps(spec).encode()
    if isinstance(spec, str):
        return spec.encode()
    return bytes(spec)


def _register(spec):
    if isinstance(spec, dict):
        cid = spec.get("spec", {}).get("id") if isinstance(spec.get("spec"), dict) else None
        if isinstance(cid, str):
            CELL_IDS.add(cid)


def supervisor_env(env: dict | None, jsonl: Path | None) -> dict:
    full = {"PATH": SUPERVISOR_PATH}
    if jsonl is not None:
        full["CELL_OS_JSONL_EVENTS"] = str(jsonl)
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = str(v)
    return full


def prepare(spec, *, jsonl=True, spec_name="spec.json"):
    d = new_dir()
    spec_path = d / spec_name
    spec_path.write_bytes(_spec_bytes(spec))
    _register(spec)
    jpath = d / "events.jsonl" if jsonl is True else (Path(jsonl) if jsonl else None)
    return d, spec_path, jpath


def run_cell(spec, env: dict | None = None, timeout: float = 30, *, jsonl=True, args=None, input=None,
             cwd=None, pass_fds=(), stdin=None) -> Result:
    """Write `spec` (dict, str or bytes) to a file and run the supervisor on it.

    The supervisor gets PATH plus exactly `env` (a value None removes a key); the JSONL
    sink is set to a fresh file unless `jsonl=False` (or another path is given).
    `args` replaces the default argument list [spec_path]; "{spec}" in it is replaced.
    """
    d, spec_path, jpath = prepare(spec, jsonl=jsonl)
    argv = [str(SUPERVISOR)] + ([a.replace("{spec}", str(spec_path)) for a in args] if args is not None
                                else [str(spec_path)])
    t0 = time.monotonic()
    kw = {}
    if input is None:
        kw["stdin"] = stdin if stdin is not None else subprocess.DEVNULL
    p = subprocess.run(argv, env=supervisor_env(env, jpath), capture_output=True, timeout=timeout,
                       input=input, cwd=cwd or d, pass_fds=pass_fds, **kw)
    return Result(p.returncode, p.stdout, p.stderr, jpath, spec_path, time.monotonic() - t0)


def live_jsonl(path: Path) -> list[dict]:
    """The events of a JSONL file that supervisors may still be appending to.

    Each event is one write(2), atomic against other writers but not against
    a reader: the kernel copies a write page by page and moves the file's size
    as it goes, so a read can end inside a line that is being written. Only
    lines ended by a newline are complete; the tail is read again next time."""
    if not path.exists():
        return []
    data = path.read_bytes()
    data = data[:data.rfind(b"\n") + 1]
    return [json.loads(l) for l in data.split(b"\n") if l.strip()]


class Running:
    """A supervisor started in the background (for signal tests). `argv`, if
    given, makes the command line from the document's path (e.g. the supervisor
    inside a test network namespace: networld.WorldRunning)."""

    EVENT_TIMEOUT = 10
    FINISH_TIMEOUT = 20

    def __init__(self, spec, env=None, jsonl=True, argv=None):
        self.dir, self.spec_path, self.jsonl = prepare(spec, jsonl=jsonl)
        self.t0 = time.monotonic()
        cmd = argv(self.spec_path) if argv else [str(SUPERVISOR), str(self.spec_path)]
        self.proc = subprocess.Popen(cmd, env=supervisor_env(env, self.jsonl),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=self.dir)
        self._out = b""  # stdout read by wait_stdout, given back by finish

    def wait_stdout(self, token: bytes, timeout: float = 10):
        """Wait until the workload has written `token` on stdout (e.g. after it
        installed its signal handlers): an event says only that it was exec'd."""
        import select
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while token not in self._out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no {token!r} on stdout within {timeout}s: {self._out!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"stdout closed before {token!r}: {self._out!r}")
            self._out += chunk

    def events(self):
        return live_jsonl(self.jsonl)

    def wait_event(self, short: str, timeout: float | None = None) -> dict:
        timeout = timeout or self.EVENT_TIMEOUT
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events():
                if short_type(ev) == short:
                    return ev
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"no {short} event within {timeout}s; events: "
                             f"{[short_type(e) for e in self.events()]}; rc={self.proc.poll()} "
                             f"stderr={self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def finish(self, timeout: float | None = None) -> Result:
        timeout = timeout or self.FINISH_TIMEOUT
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"supervisor did not end within {timeout}s; stderr: {err!r}")
        return Result(self.proc.returncode, self._out + out, err, self.jsonl, self.spec_path,
                      time.monotonic() - self.t0)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def sigkill(self):
        """SIGKILL the supervisor whatever state it is in, and reap it."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()


# --------------------------------------------------------------------------- processes


def _read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def live_processes() -> dict[int, str]:
    """pid -> cmdline (NUL-separated args joined by spaces) of every live, non-zombie
    process; kernel threads and zombies have an empty cmdline and are left out."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        raw = _read(f"/proc/{name}/cmdline")
        if not raw:
            continue
        procs[int(name)] = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return procs


def marked_processes(marker: str = MARK) -> dict[int, str]:
    me = os.getpid()
    return {pid: cmd for pid, cmd in live_processes().items() if marker in cmd and pid != me}


def children_of_test_process() -> dict[int, str]:
    """Live direct children of this test process (the supervisors we started must all
    have been waited for)."""
    me = os.getpid()
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        if int(rest[1]) == me:
            kids[int(name)] = (rest[0].decode(), (_read(f"/proc/{name}/cmdline") or b"").replace(b"\0", b" "))
    return kids


def wait_no_marked(marker: str, timeout: float) -> tuple[dict, float]:
    """Poll until no live process carries `marker`; returns (leftovers, seconds waited)."""
    t0 = time.monotonic()
    while True:
        left = marked_processes(marker)
        waited = time.monotonic() - t0
        if not left or waited >= timeout:
            return left, waited
        time.sleep(0.01)


# --------------------------------------------------------------------------- host state


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy mounted under /sys/fs/cgroup (v2 at the top on a pure v2
    host, or the v1 controllers plus /sys/fs/cgroup/unified on a hybrid one)."""
    roots = []
    for line in (_read("/proc/self/mountinfo", "r") or "").splitlines():
        parts = line.split()
        sep = parts.index("-")
        fstype, mnt = parts[sep + 1], parts[4]
        if fstype in ("cgroup", "cgroup2") and mnt.startswith(str(CGROUP_ROOT)):
            roots.append(Path(mnt))
    return roots


def cellos_cgroups() -> set[str]:
    found = set()
    for root in _cgroup_mounts():
        base_depth = len(root.parts)
        for dirpath, dirnames, _ in os.walk(root):
            depth = len(Path(dirpath).parts) - base_depth
            for d in dirnames:
                if d.startswith("cellos-"):
                    found.add(os.path.join(dirpath, d))
            if depth >= 3:
                dirnames[:] = []
            else:
                dirnames[:] = [d for d in dirnames if not d.startswith("cellos-")]
    return found


def ours(cgroup_path: str, cell_ids=None) -> bool:
    name = os.path.basename(cgroup_path)
    ids = CELL_IDS if cell_ids is None else cell_ids
    for cid in ids:
        if name.startswith(f"cellos-{cid}-") and len(name) == len(f"cellos-{cid}-") + 8:
            return True
    return False


def nft_tables() -> list[str]:
    p = subprocess.run(["/usr/sbin/nft", "list", "tables"], capture_output=True, text=True)
    assert p.returncode == 0, f"nft list tables failed: {p.stderr}"
    return sorted(p.stdout.splitlines())


def _fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the directory fd of listdir itself, already closed
    return fds


# Where supervisors register live runs (so the next one can clean up after a dead one).
RUNREG_DIR = "/run/cellos/runs"


# Mount points whose change matters whoever made it; other mounts count only when they
# are attributable to this session (MARK or one of our cells' names in their path).
SYSTEM_MOUNTS = {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/tmp", "/run", "/var/tmp", "/mnt"}


def _run_cellos_entries() -> list[str]:
    """Per-run directories of backends under /run/cellos/<kind>/ (the registry aside)."""
    found = []
    if os.path.isdir("/run/cellos"):
        for kind in os.listdir("/run/cellos"):
            d = os.path.join("/run/cellos", kind)
            if kind != "runs" and os.path.isdir(d):
                found += [os.path.join(d, n) for n in os.listdir(d) if n.startswith("cellos-")]
    return sorted(found)


def host_snapshot() -> dict:
    return {
        "processes": marked_processes(),
        "children": children_of_test_process(),
        # without the mount ids, which a remount changes
        "mountinfo": sorted(re.sub(r"^\d+ \d+ ", "", l) for l in (_read("/proc/self/mountinfo", "r") or "").splitlines()),
        "cgroups": cellos_cgroups(),
        "nft": nft_tables(),
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        "tmp": sorted(p for p in os.listdir("/tmp") if p.startswith("cellos-")),
        "run_cellos": _run_cellos_entries(),
        "runreg": sorted(os.listdir(RUNREG_DIR)) if os.path.isdir(RUNREG_DIR) else [],
        "fds": _fds(),
    }


def _mount_is_ours(line: str) -> bool:
    mp = line.split()[2].replace("\\040", " ")
    if mp in SYSTEM_MOUNTS or mp.startswith("/sys/fs/cgroup"):
        return True
    if MARK in mp:
        return True
    return any(part.startswith("cellos-") and ours(part) for part in mp.split("/"))


def _strip_reg(name: str) -> str:
    name = name.lstrip(".")
    for suffix in (".lock", ".tmp"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def _flocked_inodes() -> set[tuple[int, int, int]]:
    """(major, minor, inode) of every file somebody holds an flock on (read-only look
    at /proc/locks: we never take a lock that could disturb another run)."""
    held = set()
    for line in (_read("/proc/locks", "r") or "").splitlines():
        parts = line.split()
        if "FLOCK" not in parts:
            continue
        for p in parts:
            if p.count(":") == 2:
                maj, mnr, ino = p.split(":")
                held.add((int(maj, 16), int(mnr, 16), int(ino)))
                break
    return held


def held_by_live_run(name: str) -> bool:
    """A run registers `<name>.lock` in RUNREG_DIR before it makes its host objects and
    holds an flock on it until they are gone: a locked registration is a live run
    (another session's, if all of ours have ended), not residue."""
    try:
        st = os.stat(os.path.join(RUNREG_DIR, name + ".lock"))
    except OSError:
        return False
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in _flocked_inodes()


def _orphaned(path: str, run_name: str) -> bool:
    """`path` (an object of run `run_name`) exists and no live run owns it. The lock
    is looked at first: a run removes its objects before it releases its lock, so an
    object still there after its lock was found free has been left behind."""
    if held_by_live_run(run_name):
        return False
    return os.path.exists(path)


def residue(before: dict, after: dict) -> list[str]:
    """What `after` has that `before` had not, restricted to what this session could
    have left: see the module docstring."""
    problems = []
    if after["processes"]:
        problems.append(f"processes carrying the session marker: {after['processes']}")
    if after["children"]:
        problems.append(f"children of the test process still alive: {after['children']}")
    new = {l for l in set(after["mountinfo"]) - set(before["mountinfo"]) if _mount_is_ours(l)}
    gone = {l for l in set(before["mountinfo"]) - set(after["mountinfo"]) if _mount_is_ours(l)}
    if gone or new:
        problems.append(f"host mounts changed: new={sorted(new)} gone={sorted(gone)}")
    left = {c for c in after["cgroups"] - before["cgroups"] if ours(c) and _orphaned(c, os.path.basename(c))}
    if left:
        problems.append(f"cgroup leaves left behind: {sorted(left)}")
    tables = [t for t in set(after["nft"]) - set(before["nft"]) if "cellos" in t]
    if tables:
        problems.append(f"nft tables appeared in the host netns: {tables}")
    for key, where in (("netns", "/run/netns"), ("tmp", "/tmp")):
        new_entries = {os.path.join(where, n) for n in set(after[key]) - set(before[key])}
        left = {p for p in new_entries if ours(p) and _orphaned(p, os.path.basename(p))}
        if left:
            problems.append(f"left behind in {where}: {sorted(left)}")
    left = {p for p in set(after["run_cellos"]) - set(before["run_cellos"])
            if ours(p) and _orphaned(p, os.path.basename(p))}
    if left:
        problems.append(f"left behind in /run/cellos: {sorted(left)}")
    reg = {n for n in set(after["runreg"]) - set(before["runreg"])
           if ours(_strip_reg(n)) and _orphaned(os.path.join(RUNREG_DIR, n), _strip_reg(n))}
    if reg:
        problems.append(f"run registrations left in {RUNREG_DIR}: {sorted(reg)}")
    if after["fds"] != before["fds"]:
        problems.append(f"test process fds changed: before={before['fds']} after={after['fds']}")
    return problems


def assert_no_residue(before: dict, after: dict | None = None):
    after = after if after is not None else host_snapshot()
    problems = residue(before, after)
    assert not problems, "host residue:\n  " + "\n  ".join(problems)


@pytest.fixture
def no_residue():
    """Snapshot the host before the test and assert it is unchanged afterwards."""
    before = host_snapshot()
    yield before
    assert_no_residue(before)


# --------------------------------------------------------------------------- events


def canonical(v) -> bytes:
    """RFC 8785 (JCS) for the value types our events contain (no floats)."""
    return _canon(v).encode("utf-8")


def _canon(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        raise AssertionError(f"unexpected floating-point number {v!r} in an event")
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            o = ord(ch)
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch in "\b\t\n\f\r":
                out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
            elif o < 0x20:
                out.append(f"\\u{o:04x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(v, list):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_canon(k) + ":" + _canon(v[k]) for k in keys) + "}"
    raise AssertionError(f"unexpected JSON value {v!r}")


def verify_chain(lines: list[bytes]) -> None:
    """One run's lines: sequence "1".."n", prevdigest = sha256(previous line), first = zeros."""
    prev = "0" * 64
    for i, line in enumerate(lines, 1):
        ev = json.loads(line)
        assert ev["sequence"] == str(i), f"line {i}: sequence {ev['sequence']!r}"
        assert ev["cellosprevdigest"] == prev, f"line {i}: cellosprevdigest {ev['cellosprevdigest']} != {prev}"
        prev = hashlib.sha256(line).hexdigest()


def runs_in(lines: list[bytes]) -> dict[str, list[bytes]]:
    runs: dict[str, list[bytes]] = {}
    for line in lines:
        runs.setdefault(json.loads(line)["data"]["runId"], []).append(line)
    return runs


@pytest.fixture(scope="session", autouse=True)
def supervisor_binary():
    assert SUPERVISOR.is_file() and os.access(SUPERVISOR, os.X_OK), (
        f"supervisor binary missing at {SUPERVISOR}: run `make` in {REPO_ROOT} (or set CELLOS_SUPERVISOR)")
    return SUPERVISOR
