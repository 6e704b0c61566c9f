"""SPEC §6.1: the terminal is never shared.

The supervisor runs with its stdout and stderr on a pseudo-terminal (os.openpty(); a
thread reads the master side, as a terminal emulator would). The workload must get
pipes instead: it cannot see a terminal, change its settings, stop its output, read
what is typed on it, or make the supervisor block; its output still reaches the
terminal (the supervisor relays it). A stdout or stderr that is not a terminal keeps
passing through unchanged, byte for byte.

Each test runs with CELLOS_SUBPROCESS_UNSHARE=all and =0 (host mode: no namespaces,
the most exposed); one test covers the gvisor and oci backends. No process of the
cell (the stub's init, runsc, runc) may hold the terminal at all.
"""
import hashlib
import json
import os
import pty
import subprocess
import termios
import threading
import time

import pytest

from conftest import SUPERVISOR, make_spec, prepare, py_argv, supervisor_env, unique_id, wait_no_marked

MODES = pytest.mark.parametrize("unshare", ["all", "0"], ids=["unshare-all", "host-mode"])
RESULT = "TTYPROBE "  # prefix of the workload's result line


class Reader:
    """Reads one fd (a pty's master side, or a pipe's read end) in a thread until
    its other side is closed everywhere (EOF, or EIO for a pty)."""

    def __init__(self, fd):
        self.fd = fd
        self.chunks = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                b = os.read(self.fd, 1 << 20)
            except OSError:  # EIO: no slave fd open any more
                return
            if not b:
                return
            self.chunks.append(b)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def close(self):
        self.thread.join(10)
        os.close(self.fd)


class PtyRun:
    """The supervisor with its stdout and stderr on a fresh pty (a terminal), or
    stdout on a pipe (`stdout="pipe"`), or stderr on a second pty (`stderr="pty2"`);
    each master side or pipe is read by a thread. `typed` is written to the master
    (what the operator types) before the supervisor starts: it waits in the input
    queue."""

    def __init__(self, spec, env, *, stdout="pty", stderr="pty", typed=b""):
        self.dir, self.spec_path, self.jsonl = prepare(spec)
        master, self.slave = pty.openpty()
        self.termios_before = termios.tcgetattr(self.slave)
        if typed:
            os.write(master, typed)
        ours = [self.slave]  # our copies of what the supervisor gets, closed once it runs
        out = err = self.slave
        if stdout == "pipe":
            pipe_r, out = os.pipe()
            ours.append(out)
        if stderr == "pty2":
            master2, err = pty.openpty()
            ours.append(err)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([str(SUPERVISOR), str(self.spec_path)], env=supervisor_env(env, self.jsonl),
                                     cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        for fd in ours[1:]:
            os.close(fd)
        self.tty = Reader(master)
        self.pipe = Reader(pipe_r) if stdout == "pipe" else None
        self.tty2 = Reader(master2) if stderr == "pty2" else None

    @property
    def tty_output(self) -> bytes:
        return self.tty.data

    @property
    def stdout(self) -> bytes:
        return self.pipe.data

    def wait(self, timeout):
        """(rc, elapsed seconds); on timeout the supervisor is killed (the cell dies
        with it) and the test fails, saying what the terminal showed."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Restart the terminal's output first, so nothing stays blocked on it.
            termios.tcflow(self.slave, termios.TCOON)
            self.proc.kill()
            self.proc.wait()
            self.close()
            raise AssertionError(f"the supervisor did not end within {timeout}s; the terminal showed:\n"
                                 f"{self.tty_output.decode('utf-8', 'replace')}")
        elapsed = time.monotonic() - self.t0
        self.termios_after = termios.tcgetattr(self.slave)
        self.close()
        return rc, elapsed

    def close(self):
        if self.slave is not None:
            os.close(self.slave)
            self.slave = None
        for r in (self.tty, self.pipe, self.tty2):
            if r is not None and r.fd is not None:
                r.close()
                r.fd = None

    def result(self, data=None) -> dict:
        data = self.tty_output if data is None else data
        for line in data.replace(b"\r\n", b"\n").split(b"\n"):
            if line.startswith(RESULT.encode()):
                return json.loads(line[len(RESULT):])
        raise AssertionError("no result line from the workload; the terminal showed:\n"
                             + data.decode("utf-8", "replace"))


PRELUDE = r"""
import errno, fcntl, json, os, signal, struct, sys, termios, time
def ename(e):
    n = e.errno if isinstance(e, OSError) else e.args[0]  # termios.error: (errno, text)
    return errno.errorcode.get(n, str(n))
def attempt(fn, *args):
    try:
        r = fn(*args)
        return ["OK", r.decode("latin-1") if isinstance(r, bytes) else r]
    except (OSError, termios.error) as e:
        return ename(e)
def report(res):
    # On a line of its own: with stdout and stderr on one terminal, they share a pipe.
    os.write(2, ("\n%s%s\n" % (sys.argv[1], json.dumps(res, default=repr))).encode())
"""

# The probes: each fills `res`; the workload reports it on fd 2 (a line starting with
# RESULT, then JSON).
# (1) what the workload's fds 1 and 2 are
WHAT = r"""
for fd in (1, 2):
    res[f"isatty{fd}"] = os.isatty(fd)
    res[f"tcgetattr{fd}"] = attempt(termios.tcgetattr, fd)
    res[f"link{fd}"] = os.readlink(f"/proc/self/fd/{fd}")
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
res["fds"] = [fd for fd in range(1024) if is_open(fd)]
"""

# (2) take the terminal over: no signals, no flow control, raw mode, another line
# discipline, another size, output stopped
TAKEOVER = r"""
def clear(fd):
    a = termios.tcgetattr(fd)
    a[0] &= ~(termios.IXON | termios.ICRNL)
    a[3] &= ~(termios.ISIG | termios.ICANON | termios.ECHO)
    termios.tcsetattr(fd, termios.TCSANOW, a)
for fd in (1, 2):
    res[f"tcsetattr{fd}"] = attempt(clear, fd)
    res[f"tiocsetd{fd}"] = attempt(fcntl.ioctl, fd, termios.TIOCSETD, struct.pack("i", 0))
    res[f"winsz{fd}"] = attempt(fcntl.ioctl, fd, termios.TIOCSWINSZ, struct.pack("HHHH", 1, 1, 0, 0))
for fd in (1, 2):
    res[f"tcflow{fd}"] = attempt(termios.tcflow, fd, termios.TCOOFF)
"""

# (4) read what the operator types, from fds 1 and 2
READ = r"""
def on_alarm(*_):
    raise OSError(errno.ETIMEDOUT, "read timed out")
signal.signal(signal.SIGALRM, on_alarm)
for fd in (1, 2):
    signal.alarm(2)
    res[f"read{fd}"] = attempt(os.read, fd, 4096)
    signal.alarm(0)
"""

SLEEP = "time.sleep(60)\n"


def probe(*bodies, then="", mark=None):
    code = PRELUDE + "res = {}\n" + "".join(bodies) + "report(res)\n" + then
    return py_argv(code, RESULT, mark or unique_id("tty"))


def stub_env(unshare):
    return {"CELLOS_SUBPROCESS_UNSHARE": unshare}


def wait_result(run, timeout=10) -> dict:
    """The workload's result line, as soon as it reaches the terminal."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return run.result()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def terminal_holders(run) -> dict:
    """pid -> command line of every process holding the run's terminal (its slave
    side), but the supervisor and this test process."""
    path = os.ttyname(run.slave)
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (os.getpid(), run.proc.pid):
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{name}/fd/{fd}") == path:
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        found[int(name)] = f.read().replace(b"\0", b" ")[:200]
                    break
            except OSError:
                continue
    return found


def check_not_a_terminal(res):
    for fd in (1, 2):
        assert res[f"isatty{fd}"] is False, res
        assert res[f"tcgetattr{fd}"] in ("ENOTTY", "EBADF", "EINVAL"), res
        assert res[f"link{fd}"].startswith("pipe:"), res


@MODES
def test_the_workload_sees_pipes_not_the_terminal(unshare, no_residue):
    run = PtyRun(make_spec(probe(WHAT)), stub_env(unshare))
    rc, _ = run.wait(30)
    assert rc == 0, run.tty_output
    res = run.result()
    check_not_a_terminal(res)
    # Nothing else of the supervisor's reaches the workload.
    assert res["fds"] == [0, 1, 2], res


@MODES
def test_the_workload_cannot_stop_the_terminal_and_the_ttl_still_fires(unshare, no_residue):
    mark = unique_id("ttyttl")
    run = PtyRun(make_spec(probe(TAKEOVER, then=SLEEP, mark=mark), ttl=2), stub_env(unshare))
    rc, elapsed = run.wait(20)
    assert rc == 124, run.tty_output
    assert elapsed < 10, elapsed
    res = run.result()
    for fd in (1, 2):
        for what in ("tcsetattr", "tiocsetd", "winsz", "tcflow"):
            assert res[f"{what}{fd}"] != "OK" and res[f"{what}{fd}"][0] != "OK", res
    # The terminal is as it was, and its output was never stopped: the end-of-run
    # line reached it.
    assert run.termios_after == run.termios_before
    assert b"lifetime.ttlSeconds" in run.tty_output, run.tty_output
    left, _ = wait_no_marked(mark, 5)
    assert not left, left


@MODES
def test_output_is_relayed_to_the_terminal(unshare, no_residue):
    # More than a pipe holds (64 KiB), on both streams, and a last line without a newline.
    code = r"""
for i in range(3000):
    sys.stdout.write(f"out line {i:05d} " + "o" * 40 + "\n")
    sys.stderr.write(f"err line {i:05d} " + "e" * 40 + "\n")
sys.stdout.write("the end")
sys.stdout.flush()
res.update(isatty1=os.isatty(1), isatty2=os.isatty(2))
"""
    run = PtyRun(make_spec(probe(code)), stub_env(unshare))
    rc, _ = run.wait(30)
    assert rc == 0, run.tty_output[-2000:]
    text = run.tty_output.replace(b"\r\n", b"\n").decode()
    lines = set(text.split("\n"))
    for i in range(3000):
        assert f"out line {i:05d} " + "o" * 40 in lines, i
        assert f"err line {i:05d} " + "e" * 40 in lines, i
    assert "the end" in text, text[-200:]
    # It came through the relay, not straight from the workload.
    res = run.result()
    assert res == {"isatty1": False, "isatty2": False}, res


@MODES
def test_two_terminals_get_a_pipe_each(unshare, no_residue):
    # stdout and stderr on different terminals: each stream reaches its own.
    code = r"""
os.write(1, b"to the first terminal\n")
os.write(2, b"to the second terminal\n")
res.update(ino1=os.fstat(1).st_ino, ino2=os.fstat(2).st_ino, isatty1=os.isatty(1), isatty2=os.isatty(2))
"""
    run = PtyRun(make_spec(probe(code)), stub_env(unshare), stderr="pty2")
    rc, _ = run.wait(30)
    assert rc == 0, (run.tty_output, run.tty2.data)
    first, second = run.tty_output, run.tty2.data
    assert b"to the first terminal" in first and b"to the second terminal" not in first, first
    assert b"to the second terminal" in second and b"to the first terminal" not in second, second
    res = run.result(second)
    assert res["isatty1"] is False and res["isatty2"] is False, res
    assert res["ino1"] != res["ino2"], res


@MODES
def test_a_terminal_the_operator_stopped_never_delays_the_kill(unshare, no_residue):
    # The operator stops the terminal's output (^S) while the workload floods it: the
    # workload is held back, the supervisor is not; the TTL kills the cell on time.
    # Only the supervisor's own last lines wait for the operator (^Q).
    mark = unique_id("ttystop")
    code = r"""
os.write(1, b"flooding\n")
time.sleep(0.5)
while True:
    os.write(1, b"x" * 4096)
"""
    run = PtyRun(make_spec(probe(code, mark=mark), ttl=2), stub_env(unshare))
    try:
        deadline = time.monotonic() + 10
        while b"flooding" not in run.tty_output and time.monotonic() < deadline:
            time.sleep(0.01)
        termios.tcflow(run.slave, termios.TCOOFF)
        # TTL 2 s, then SIGTERM ends the workload (its grace is not needed).
        left, waited = wait_no_marked(mark, 8)
        assert not left, f"the cell was not killed while the terminal was stopped: {left}"
    finally:
        if run.slave is not None:
            termios.tcflow(run.slave, termios.TCOON)
    rc, elapsed = run.wait(20)
    assert rc == 124, run.tty_output[-500:]
    assert b"lifetime.ttlSeconds" in run.tty_output, run.tty_output[-500:]


@MODES
def test_a_pipe_on_stdout_still_passes_through_byte_exact(unshare, no_residue):
    # stdout a pipe, stderr the terminal: stdout is the supervisor's very pipe (the
    # fast path), 1 MiB of binary data arrives unchanged; stderr is relayed.
    code = r"""
import hashlib
data = bytes((i * 7 + (i >> 8)) & 0xff for i in range(1 << 20))
os.write(2, b"stderr still reaches the terminal\n")
n = 0
while n < len(data):
    n += os.write(1, data[n:])
res.update(ino1=os.fstat(1).st_ino, isatty2=os.isatty(2), sha=hashlib.sha256(data).hexdigest())
"""
    run = PtyRun(make_spec(probe(code)), stub_env(unshare), stdout="pipe")
    pipe_ino = os.fstat(run.pipe.fd).st_ino
    rc, _ = run.wait(30)
    assert rc == 0, run.tty_output
    res = run.result()
    assert res["ino1"] == pipe_ino, res
    assert res["isatty2"] is False, res
    assert len(run.stdout) == 1 << 20
    assert hashlib.sha256(run.stdout).hexdigest() == res["sha"]
    assert b"stderr still reaches the terminal" in run.tty_output


@MODES
def test_the_workload_cannot_read_keystrokes(unshare, no_residue):
    typed = b"operator-typed-secret\n"
    run = PtyRun(make_spec(probe(READ)), stub_env(unshare), typed=typed)
    rc, _ = run.wait(30)
    assert rc == 0, run.tty_output
    res = run.result()
    for fd in (1, 2):
        got = res[f"read{fd}"]
        assert got == "EBADF" or got == ["OK", ""], res
    assert "operator-typed-secret" not in json.dumps(res)


@MODES
def test_only_the_supervisor_holds_the_terminal_and_only_the_read_end(unshare, no_residue):
    # While the workload runs, no process of the cell (its init included) holds the
    # terminal; the supervisor holds the read end of the relay pipe and no write
    # end (or the relay would never see EOF).
    code = r"""
res.update(ino1=os.fstat(1).st_ino, ino2=os.fstat(2).st_ino)
"""
    run = PtyRun(make_spec(probe(code, then="time.sleep(3)\n")), stub_env(unshare))
    res = wait_result(run)
    holders = terminal_holders(run)
    held = {}
    pid = run.proc.pid
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            flags = int(open(f"/proc/{pid}/fdinfo/{fd}").read().split("flags:")[1].split()[0], 8)
        except OSError:
            continue
        if link.startswith("pipe:"):
            held.setdefault(int(link[6:-1]), []).append(flags & 3)
    rc, _ = run.wait(30)
    assert rc == 0, run.tty_output
    assert not holders, f"processes of the cell hold the terminal: {holders}"
    # One terminal: one pipe for both, so their interleaving is the workload's own.
    assert res["ino1"] == res["ino2"], res
    assert held.get(res["ino1"]) == [os.O_RDONLY], (res, held)


@pytest.mark.parametrize("backend", ["gvisor", "oci"])
def test_runtime_backends_never_share_the_terminal(backend, no_residue):
    # The runtime gets the relay pipes, never the terminal: runsc forwards terminal
    # ioctls to the host fd; runc, without a terminal in config.json, makes pipes of
    # its own for the container but still held the operator's terminal itself.
    # (1) pipes, not the terminal, and no process of the cell holds it; (2) take-over
    # attempts fail and the TTL fires; (3) the output is relayed; (4) no keystrokes.
    gv = {"CELLOS_CELL_BACKEND": backend}
    mark = unique_id("gvtty")
    cid = unique_id("gv")
    stdout_line = 'os.write(1, b"relayed from stdout\\n")\n'
    run = PtyRun(make_spec(probe(WHAT, READ, stdout_line, TAKEOVER, then=SLEEP, mark=mark), id=cid, ttl=3), gv,
                 typed=b"operator-typed-secret\n")
    try:
        wait_result(run)
        holders = terminal_holders(run)
    except AssertionError:
        holders = None  # told by the assertions below
    rc, elapsed = run.wait(30)
    assert rc == 124, run.tty_output
    assert elapsed < 15, elapsed
    res = run.result()
    for fd in (1, 2):
        assert res[f"isatty{fd}"] is False, res
        assert res[f"tcgetattr{fd}"] in ("ENOTTY", "EBADF", "EINVAL"), res
        assert res[f"read{fd}"] == "EBADF" or res[f"read{fd}"] == ["OK", ""], res
        for what in ("tcsetattr", "tiocsetd", "winsz", "tcflow"):
            assert res[f"{what}{fd}"] != "OK" and res[f"{what}{fd}"][0] != "OK", res
    assert run.termios_after == run.termios_before
    assert b"lifetime.ttlSeconds" in run.tty_output, run.tty_output
    assert b"relayed from stdout" in run.tty_output, run.tty_output
    assert holders == {}, f"processes of the cell hold the terminal: {holders}"
    left, _ = wait_no_marked(cid, 5)
    assert not left, left
