"""Escape suite, system-call filter (CELLOS_SECCOMP, docs/seccomp.md): the baseline
denies what changes the kernel, the namespaces or other processes, returns ENOSYS
for clone3 (so glibc falls back to clone and threads still work), kills any call
made through a foreign ABI (where the kernel does not refuse that ABI itself), and
leaves ordinary programs unchanged. A filter file is parsed at admission: a bad
one is a configuration error naming the variable."""
import signal
import subprocess

import pytest

from cellprobe import FULL, MODES, NR, probe, sh
from conftest import make_spec, new_dir, py_argv, run_cell

DENIED = ["bpf", "kexec_load", "init_module", "finit_module", "delete_module", "keyctl", "add_key", "request_key",
          "userfaultfd", "perf_event_open", "open_by_handle_at", "reboot", "swapon", "io_uring_setup", "ptrace"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_baseline_denies_dangerous_calls_with_eperm(mode):
    # Arguments are harmless junk: with the filter the call never reaches the kernel.
    calls = "\n".join(f'out["{name}"] = sc({NR[name]}, 0, 0, 0, 0, 0)[1]' for name in DENIED)
    res, r = probe(calls, MODES[mode])
    for name in DENIED:
        assert res[name] == "EPERM", (name, res[name])
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["seccomp"] == "baseline"


def test_bpf_is_denied_by_the_filter_not_only_by_capabilities():
    # Control: without the filter the same call fails differently (no capability
    # for a program, but bpf() itself runs in the kernel).
    code = f'out["bpf"] = sc({NR["bpf"]}, 0, 0, 0)[1]'
    res, _ = probe(code, FULL)
    assert res["bpf"] == "EPERM"
    res, _ = probe(code, dict(FULL, CELLOS_SECCOMP="off"))
    assert res["bpf"] != "OK"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_clone3_is_enosys_and_threads_processes_still_work(mode):
    res, _ = probe(f"""
import subprocess, threading, multiprocessing
args = (ctypes.c_uint64 * 11)(0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0)
out["clone3"] = sc({NR['clone3']}, ctypes.byref(args), 88)[1]
results = []
ts = [threading.Thread(target=lambda i=i: results.append(i * i)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
out["threads"] = sorted(results)
out["subprocess"] = subprocess.run(["/bin/sh", "-c", "echo $((6 * 7))"], capture_output=True, text=True).stdout.strip()
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
with multiprocessing.Pool(2) as p:
    out["pool"] = p.map(abs, [-1, -2, -3])
""", MODES[mode])
    assert res["clone3"] == "ENOSYS"
    assert res["threads"] == [i * i for i in range(8)]
    assert res["subprocess"] == "42"
    assert res["fork"] == 7
    assert res["pool"] == [1, 2, 3]


I386 = r"""
#include <stdio.h>
int main(void)
{
	long r;
	/* getpid through the i386 ABI (number 20 there) from a 64-bit program */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	printf("%ld\n", r);
	return 0;
}
"""


def _i386_probe():
    # Compiled inside the cell with the host's cc (which must itself work under
    # the filter), then run.
    return f"""
import subprocess
open("i386.c", "w").write({I386!r})
cc = subprocess.run(["cc", "-O0", "-o", "i386", "i386.c"], capture_output=True, text=True)
out["cc"] = [cc.returncode, cc.stderr[-300:]]
p = subprocess.run(["./i386"], capture_output=True, text=True)
out["rc"] = p.returncode
out["stdout"] = p.stdout.strip()
"""


@pytest.fixture(scope="module")
def kernel_runs_i386():
    """Whether this kernel runs i386 system calls (`int $0x80`) from a 64-bit
    program at all, learnt on the host, outside any cell. A kernel built without
    IA32 emulation, or booted with it off, refuses the whole ABI with SIGSEGV
    before any seccomp filter sees the call; most kernels run it."""
    d = new_dir("i386")
    (d / "i386.c").write_text(I386)
    subprocess.run(["cc", "-O0", "-o", str(d / "i386"), str(d / "i386.c")], check=True)
    p = subprocess.run([str(d / "i386")], capture_output=True, text=True, timeout=30)
    assert p.returncode in (0, -signal.SIGSEGV), p
    return p.returncode == 0


@pytest.mark.parametrize("mode", sorted(MODES))
def test_32bit_syscall_abi_kills_the_process(mode, kernel_runs_i386):
    # Where the kernel runs i386 calls, the filter must kill the caller (SIGSYS; a
    # SIGSEGV there would mean the call got past it); where the kernel refuses the
    # ABI, the call dies of that refusal (SIGSEGV) before the filter is asked.
    res, _ = probe(_i386_probe(), MODES[mode], run_extra={"workingDirectory": "/work"})
    assert res["cc"][0] == 0, res["cc"]
    want = -signal.SIGSYS if kernel_runs_i386 else -signal.SIGSEGV
    assert res["rc"] == want, (res, "kernel runs i386 calls" if kernel_runs_i386 else "kernel refuses i386 calls")
    assert res["stdout"] == ""


def test_32bit_syscall_abi_without_the_filter_is_up_to_the_kernel(kernel_runs_i386):
    # Control for the test above: without the filter a cell gets what the host
    # kernel does with the call, so the SIGSYS there is the filter's doing.
    res, _ = probe(_i386_probe(), dict(FULL, CELLOS_SECCOMP="off"), run_extra={"workingDirectory": "/work"})
    assert res["cc"][0] == 0, res["cc"]
    if kernel_runs_i386:
        assert res["rc"] == 0 and int(res["stdout"]) > 0, res
    else:
        assert res["rc"] == -signal.SIGSEGV and res["stdout"] == "", res


def test_terminal_injection_ioctl_is_denied():
    res, _ = probe("""
import fcntl, termios
for name, fd in (("stdin", 0), ("stdout", 1)):
    out[name] = attempt(fcntl.ioctl, fd, termios.TIOCSTI, b"x")
# The kernel looks at the low 32 bits of the request only; so does the filter.
out["high bits"] = sc(16, 1, 0x1234567800000000 | termios.TIOCSTI, ctypes.c_char_p(b"x"))[1]
""", FULL)
    assert res == {"stdin": "EPERM", "stdout": "EPERM", "high bits": "EPERM"}, res


VSOCK_AND_LDISC = """
import fcntl, socket, struct, termios
for name, fn, kind in (("socket", socket.socket, socket.SOCK_STREAM), ("dgram", socket.socket, socket.SOCK_DGRAM),
                       ("socketpair", socket.socketpair, socket.SOCK_STREAM)):
    out[name] = attempt(fn, socket.AF_VSOCK, kind)
# socket(2)'s family is an int: the kernel ignores the upper 32 bits; so does the filter.
out["high bits"] = sc(41, (0x1234 << 32) | socket.AF_VSOCK, socket.SOCK_STREAM, 0)[1]
out["inet"] = attempt(socket.socket, socket.AF_INET, socket.SOCK_STREAM)
# A pty of the workload's own: changing its line discipline (to N_TTY, the one it
# has) needs no privilege; reading it is harmless.
master, slave = os.openpty()
out["TIOCSETD"] = attempt(fcntl.ioctl, slave, termios.TIOCSETD, struct.pack("i", 0))
out["TIOCGETD"] = attempt(fcntl.ioctl, slave, termios.TIOCGETD, struct.pack("i", 0))
"""


def test_vsock_and_line_discipline_changes_are_denied():
    # SPEC §6.1: vsock ignores network namespaces, so a cell without any network
    # could still talk to the host (or a VM's host) through it.
    res, _ = probe(VSOCK_AND_LDISC, {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "baseline"})
    assert res == {"socket": "EAFNOSUPPORT", "dgram": "EAFNOSUPPORT", "socketpair": "EAFNOSUPPORT",
                   "high bits": "EAFNOSUPPORT", "inet": "OK", "TIOCSETD": "EPERM", "TIOCGETD": "OK"}, res


def test_vsock_and_line_discipline_work_without_the_filter():
    # Control for the test above: on this kernel (vsock loaded) a cell in its own
    # network namespace does get a vsock socket, and may change its pty's line
    # discipline; it is the filter that refuses them.
    res, _ = probe(VSOCK_AND_LDISC, {"CELLOS_SUBPROCESS_UNSHARE": "all", "CELLOS_SECCOMP": "off"})
    assert res["socket"] == "OK" and res["high bits"] == "OK", res
    assert res["socketpair"] not in ("OK", "EAFNOSUPPORT"), res  # vsock has no socketpair: EOPNOTSUPP
    assert res["TIOCSETD"] == "OK", res


def test_workload_has_its_own_session():
    # No controlling terminal of the operator's can be reached (TIOCSTI needs it).
    res, _ = probe('out["sid"] = os.getsid(0); out["pgid"] = os.getpgid(0); out["tty"] = attempt(os.open, "/dev/tty", os.O_RDWR)',
                   dict(FULL, CELLOS_SECCOMP="off"))
    assert res["sid"] == 1 and res["tty"] == "ENXIO", res


def test_ordinary_programs_run_unchanged_under_the_baseline():
    script = ("set -e; cd /work; echo 'int main(void){return 0;}' > t.c; cc -o t t.c; ./t; "
              "ls -la / >/dev/null; cat /etc/os-release >/dev/null; sort /etc/passwd | head -1 >/dev/null; "
              "tar -czf a.tgz t.c; tar -tzf a.tgz >/dev/null; sha256sum t.c >/dev/null; date >/dev/null; "
              "/usr/bin/python3 -c 'import ssl, sqlite3, json, hashlib; print(\"py ok\")'; "
              "find /usr/share -maxdepth 1 >/dev/null; ps -e >/dev/null; echo done")
    r = run_cell(make_spec(sh(script), run_extra={"workingDirectory": "/work"}), env=FULL)
    assert r.rc == 0, r
    assert r.out.split() == ["py", "ok", "done"], r.out


# ---- CELLOS_SECCOMP=<file> ----


def _filter(text: str) -> str:
    p = new_dir("seccomp") / "filter.sc"
    p.write_text(text)
    return str(p)


def test_filter_file_is_applied_and_reported():
    path = _filter("# deny uname with a made-up errno, kill personality, keep the baseline\n"
                   "@baseline\n"
                   "uname errno EACCES\n"
                   "personality kill\n")
    res, r = probe(f"""
out["uname"] = attempt(os.uname)
out["bpf"] = sc({NR['bpf']}, 0, 0, 0)[1]
out["clone3"] = sc({NR['clone3']}, 0, 0)[1]
""", dict(FULL, CELLOS_SECCOMP=path))
    assert res == {"uname": "EACCES", "bpf": "EPERM", "clone3": "ENOSYS"}, res
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["seccomp"] == "file"
    r = run_cell(make_spec(py_argv("import ctypes; ctypes.CDLL(None).personality(0xffffffff)")),
                 env=dict(FULL, CELLOS_SECCOMP=path))
    assert r.rc == 128 + signal.SIGSYS, r
    assert r.event("command.v1.completed")["data"]["termSignal"] == signal.SIGSYS


def test_allow_list_filter_file():
    # Default kill: only what is listed runs. Enough for /bin/true via the
    # dynamic loader, plus what our own process needs between filter and exec.
    calls = ["execve", "brk", "arch_prctl", "mmap", "munmap", "mprotect", "openat", "read", "close", "fstat",
             "newfstatat", "pread64", "access", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
             "getrandom", "exit_group", "sendto", "sendmsg", "write"]
    path = _filter("@default kill\n" + "".join(f"{c} allow\n" for c in calls))
    r = run_cell(make_spec(["/bin/true"]), env=dict(FULL, CELLOS_SECCOMP=path))
    assert r.rc == 0, r
    r = run_cell(make_spec(["/bin/sh", "-c", "true"]), env=dict(FULL, CELLOS_SECCOMP=path))
    assert r.rc == 128 + signal.SIGSYS, r


@pytest.mark.parametrize("value,needle", [
    ("/nonexistent/cellbb.sc", "No such file or directory"),
    ("bogus", "neither off, baseline nor a path"),
])
def test_missing_or_invalid_filter_is_refused_at_admission(value, needle):
    r = run_cell(make_spec(["/usr/bin/true"]), env=dict(FULL, CELLOS_SECCOMP=value))
    assert r.rc == 125, r
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1 and "CELLOS_SECCOMP" in lines[0] and needle in lines[0], r.err
    assert r.events == []  # admission: no cell events


def test_filter_file_that_does_not_parse_names_the_line():
    path = _filter("bpf\nptrace errno EPERM\nfrobnicate\n")
    r = run_cell(make_spec(["/usr/bin/true"]), env=dict(FULL, CELLOS_SECCOMP=path))
    assert r.rc == 125, r
    assert f"CELLOS_SECCOMP: {path} line 3: unknown system call 'frobnicate'" in r.err, r.err
    assert r.events == []
