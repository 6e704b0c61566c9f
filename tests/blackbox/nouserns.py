"""Run a command where the kernel refuses new user namespaces, without touching the
host: in a user namespace of its own that maps every uid and gid to itself (so root
stays root, with every capability over what it owns) and whose
user.max_user_namespaces is 0 (a per-namespace limit: the host's is untouched),
and in a network namespace of that user namespace (the supervisor must be able to
return to its own network namespace after making the cell's).

    nouserns.py PROGRAM [ARGS...]   exit status: the program's (128+N for signal N)
"""
import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def main() -> int:
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.close(ready_r)
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            os.write(2, b"nouserns: unshare(CLONE_NEWUSER|CLONE_NEWNET): %s\n" % os.strerror(ctypes.get_errno()).encode())
            os._exit(90)
        os.write(ready_w, b"u")
        os.close(ready_w)
        if os.read(go_r, 1) != b"g":
            os._exit(91)
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
        os.execvp(sys.argv[1], sys.argv[1:])
    os.close(go_r)
    os.close(ready_w)
    if os.read(ready_r, 1) != b"u":
        _, st = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(st)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("0 0 4294967295\n")
    os.write(go_w, b"g")
    os.close(go_w)
    _, st = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(st)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
