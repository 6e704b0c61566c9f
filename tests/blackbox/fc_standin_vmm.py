"""STAND-IN for the Firecracker VMM, for the test suite only.

Why a stand-in: Firecracker needs /dev/kvm and no Debian package ships it; this
host (and CI) have neither, so the real VMM cannot run here. The backend's host
side (config file, listeners bound before boot, one connection per channel, the
exit frame's tag, the VMM's identity, cgroup leaf and netns, kills, clean-up) is
what these tests check, and this program plays Firecracker's part of it as
Firecracker v1.16.1 does, without a guest kernel:

* command line: `--api-sock PATH --config-file PATH [--no-seccomp]` (anything
  else is refused, as Firecracker refuses unknown arguments);
* the config file is validated against Firecracker's API schema with
  additionalProperties: false (fcschema.py); a config Firecracker would refuse
  makes this exit 1 with the problems on stderr;
* it opens every file the config names (kernel, initrd, drives) as Firecracker
  does, binds the API socket (and answers GET / and PUT /actions minimally);
* unless --no-seccomp, it installs a system-call filter on itself (Firecracker
  installs its own per thread), so /proc/<pid>/status says "Seccomp: 2";
* then it acts as the guest: the job is read from the initrd (the archive
  appended to the image's initramfs, cellos/job.json: run id and per-boot key),
  the "workload" is the argv of the job (cellos.argv= on the kernel command line
  or the job file), whose words are directives for this stand-in:

    out=<base64>     bytes for the stdout channel (port 9001)
    err=<base64>     bytes for the stderr channel (port 9002)
    outfile=<path>   stdout bytes read from a file (for large outputs)
    facts            stdout: a JSON line of facts about this process (uid, gid,
                     groups, CapEff, NoNewPrivs, Seccomp, netns inode, cgroup,
                     interfaces of its netns)
    exit=<n>         the status in the exit frame (port 9000)
    frame=good|forged|none|short|twice
                     good: tagged with the job's key; forged: a wrong key;
                     none: no frame; short: 3 bytes only; twice: a forged frame,
                     then a good one (only the first counts)
    job              stdout: a JSON line of the job as the guest sees it (without
                     the key): files (file secrets), mounts, artifacts, env
    drives           stdout: a JSON line per drive: id, size, and whether it
                     is an ext4 file system (its superblock magic)
    art<i>=<base64>  the content of the job's artifact i, sent on the artifacts
                     channel (port 9003) after the report; an artifact without
                     one is sent as "not found" (ENOENT), as the guest would
    sleep=<seconds>  before reporting (timeouts)
    stop=<n>         wait (up to 10 minutes) for the host's stop request, a byte
                     on the exit connection (opened first, as cellos-init does),
                     then report status n on it, as cellos-init reports a
                     workload that SIGTERM ended (ignored: stop=ignore, never
                     report)
    hang             never reset after reporting (the host must kill us)

  It connects to <uds_path>_9000.._9003 as the guest would (a connect that is
  refused is what Firecracker turns into a reset of the guest's connection) and
  finally exits 0, as Firecracker does on the guest's reset.
"""
from __future__ import annotations

import base64
import ctypes
import hashlib
import hmac
import json
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True


def _inherited_fds() -> dict[int, str]:
    out = {}
    for n in os.listdir("/proc/self/fd"):
        try:
            out[int(n)] = os.readlink(f"/proc/self/fd/{n}")
        except OSError:
            pass  # the directory listing's own fd, gone already
    return out


# What this process got from the supervisor, before it opens anything itself.
INHERITED_FDS = _inherited_fds()


def die(msg: str, code: int = 1):
    sys.stderr.write(f"stand-in firecracker: {msg}\n")
    sys.stderr.flush()
    os._exit(code)


def parse_args(argv: list[str]) -> dict:
    opts = {"no_seccomp": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--api-sock", "--config-file") and i + 1 < len(argv):
            opts[a[2:].replace("-", "_")] = argv[i + 1]
            i += 2
        elif a == "--no-seccomp":
            opts["no_seccomp"] = True
            i += 1
        else:
            die(f"unknown argument {a!r}")
    if "api_sock" not in opts or "config_file" not in opts:
        die("--api-sock and --config-file are required")
    return opts


def install_seccomp():
    """An allow-everything filter: what matters to the tests is that the VMM
    runs under one (Firecracker's are far stricter)."""
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    BPF_RET_K = 0x06
    SECCOMP_RET_ALLOW = 0x7FFF0000
    prog_filter = (SockFilter * 1)(SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog = SockFprog(1, prog_filter)
    PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        die(f"seccomp: {os.strerror(ctypes.get_errno())}")


def cpio_entries(data: bytes) -> dict[str, bytes]:
    """Every regular file of the concatenated newc archives in `data` (later
    archives override earlier ones, as the kernel unpacks them)."""
    files, off = {}, 0
    while off + 110 <= len(data):
        if data[off:off + 6] != b"070701":
            if data[off] == 0:       # padding between archives
                off += 1
                continue
            die(f"initrd: not a newc archive at offset {off}")
        fields = [int(data[off + 6 + 8 * k: off + 14 + 8 * k], 16) for k in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[off + 110: off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        body = data[off: off + size]
        off += size
        off += -off % 4
        if name != "TRAILER!!!" and mode & 0o170000 == 0o100000:
            files[name] = body
    return files


def serve_api(path: str, stop: threading.Event):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        with c:
            c.settimeout(1)
            try:
                req = c.recv(65536).decode("latin-1")
            except OSError:
                continue
            if req.startswith("GET / "):
                body = json.dumps({"id": "anonymous-instance", "state": "Running", "vmm_version": "1.16.1-standin",
                                   "app_name": "Firecracker"}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")


def facts() -> dict:
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    return {
        "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
        "CapEff": status.get("CapEff"), "NoNewPrivs": status.get("NoNewPrivs"), "Seccomp": status.get("Seccomp"),
        "Seccomp_filters": status.get("Seccomp_filters"),
        "netns": os.stat("/proc/self/ns/net").st_ino,
        "cgroup": open("/proc/self/cgroup").read().strip(),
        "ifaces": sorted(name for _, name in socket.if_nameindex()),  # of its netns
        "fds": {str(k): v for k, v in sorted(INHERITED_FDS.items())},
    }


def connect(uds: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(f"{uds}_{port}")
    except OSError as e:
        die(f"guest connect to port {port}: {e} (the host must listen before boot)")
    return s


def main():
    opts = parse_args(sys.argv[1:])
    try:
        with open(opts["config_file"]) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        die(f"config file: {e}")
    sys.path.insert(0, os.environ.get("FC_STANDIN_DIR") or os.path.dirname(os.path.abspath(__file__)))
    from fcschema import problems  # noqa: E402  (the schema module lives next to this file)
    bad = problems(cfg)
    if bad:
        die("config file rejected: " + "; ".join(bad))
    bs = cfg["boot-source"]
    for p in [bs["kernel_image_path"], bs.get("initrd_path")] + [d["path_on_host"] for d in cfg["drives"]]:
        if p is None:
            continue
        try:
            with open(p, "rb") as f:
                f.read(1)
        except OSError as e:
            die(f"cannot open {p}: {e}")
    if not opts["no_seccomp"]:
        install_seccomp()
    stop = threading.Event()
    threading.Thread(target=serve_api, args=(opts["api_sock"], stop), daemon=True).start()

    # The guest's side: the job from the initrd.
    initrd = open(bs["initrd_path"], "rb").read()
    job = json.loads(cpio_entries(initrd)["cellos/job.json"])
    key = base64.b64decode(job["key"])
    run_id = job["runId"]
    argv = job.get("argv")
    for a in bs.get("boot_args", "").split():
        if a.startswith("cellos.argv="):
            argv = json.loads(base64.b64decode(a[len("cellos.argv="):]))
    d = {"exit": "0", "frame": "good"}
    out, err = b"", b""
    for w in argv[1:]:
        k, _, v = w.partition("=")
        if k == "out":
            out += base64.b64decode(v)
        elif k == "err":
            err += base64.b64decode(v)
        elif k == "outfile":
            out += open(v, "rb").read()
        elif k == "facts":
            out += json.dumps(facts()).encode() + b"\n"
        elif k == "job":
            shown = {k2: v2 for k2, v2 in job.items() if k2 != "key"}
            out += json.dumps(shown).encode() + b"\n"
        elif k == "drives":
            for drv in cfg["drives"]:
                with open(drv["path_on_host"], "rb") as f:
                    f.seek(1080)
                    magic = f.read(2)
                    size = os.fstat(f.fileno()).st_size
                out += json.dumps({"id": drv["drive_id"], "size": size, "ext4": magic == b"\x53\xef"}).encode() + b"\n"
        else:
            d[k] = v
    uds = cfg["vsock"]["uds_path"]
    # The guest opens every channel before the workload starts.
    sx = connect(uds, 9000) if "stop" in d else None
    so, se, sa = connect(uds, 9001), connect(uds, 9002), connect(uds, 9003)
    so.sendall(out)
    se.sendall(err)
    so.close()
    se.close()
    time.sleep(float(d.get("sleep", "0")))
    if sx is not None:
        sx.settimeout(600)
        if not sx.recv(1) or d["stop"] == "ignore":
            while True:
                time.sleep(60)
        d["exit"] = d["stop"]
    status = struct.pack("<i", int(d["exit"]))
    good = status + hmac.new(key, status + run_id.encode(), hashlib.sha256).digest()
    forged = status + hmac.new(b"\0" * 32, status + run_id.encode(), hashlib.sha256).digest()
    for i, _path in enumerate(job.get("artifacts") or []):
        data = d.get(f"art{i}")
        body = base64.b64decode(data) if data is not None else b""
        err = 0 if data is not None else 2  # ENOENT
        sa.sendall(struct.pack("<IBQ", i, err, len(body)) + body)
    sa.close()
    if d["frame"] != "none":
        sx = sx or connect(uds, 9000)
        payload = {"good": good, "forged": forged, "short": status[:3], "twice": forged + good}[d["frame"]]
        sx.sendall(payload)
        sx.close()
    if "hang" in d:
        while True:
            time.sleep(60)
    stop.set()
    os._exit(0)


if __name__ == "__main__":
    main()
