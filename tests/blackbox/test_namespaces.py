"""SPEC §3/§6.1: what the workload sees with CELLOS_SUBPROCESS_UNSHARE."""
import json
import os
import socket
import subprocess

import pytest

from conftest import HOST_MODE, make_spec, new_dir, py_argv, run_cell

NAMESPACES = ("net", "mnt", "pid", "ipc", "uts", "cgroup", "user")

pytestmark = pytest.mark.usefixtures("no_residue")

PROBE = r"""
import json, os, socket
procs = [p for p in os.listdir("/proc") if p.isdigit()]
with open("/proc/1/cmdline", "rb") as f:
    pid1 = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
devs = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
try:
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
    c = socket.create_connection(srv.getsockname(), timeout=1); c.sendall(b"ping")
    conn, _ = srv.accept(); lo_ok = conn.recv(4) == b"ping"
except OSError as e:
    lo_ok = False
print(json.dumps({"hostname": socket.gethostname(), "pid": os.getpid(), "nprocs": len(procs), "pid1": pid1,
                  "devs": devs, "lo_ok": lo_ok, "ns": {n: os.readlink("/proc/self/ns/" + n)
                  for n in ("net", "mnt", "pid", "ipc", "uts", "cgroup", "user")}}))
"""


def probe(unshare, cell_id=None):
    # unshare None: the variable is not set (the default).
    r = run_cell(make_spec(py_argv(PROBE), id=cell_id), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 0, r
    return json.loads(r.out)


def host_ns():
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}


@pytest.mark.parametrize("unshare", [None, "all"], ids=["default", "all"])
def test_unshare_all_isolates_everything(unshare):
    # `all` (= the default) includes the user namespace now.
    got = probe(unshare, "ns-all-cell")
    mine = host_ns()
    for n in NAMESPACES:
        assert got["ns"][n] != mine[n], f"{n} namespace not private"
    assert got["hostname"] == "ns-all-cell"
    # Own PID namespace with a private /proc: the workload sees its init and itself.
    assert got["pid"] <= 3, got
    assert got["nprocs"] <= 3, got
    assert "process_api" not in got["pid1"] and got["pid1"], got["pid1"]
    assert got["devs"] == ["lo"], got["devs"]
    assert got["lo_ok"] is True


def test_hostname_is_cell_id_cut_to_64_bytes():
    cell_id = "h" + "x" * 100
    got = probe("uts", cell_id)
    assert got["hostname"] == cell_id[:64]
    assert socket.gethostname() != got["hostname"]


def test_no_unshare_shares_the_host_namespaces():
    # Explicit host mode ("" now means the default, `all`).
    got = probe("0")
    assert got["ns"] == host_ns()
    assert got["hostname"] == socket.gethostname()


def test_unshare_1_means_pid_ipc_mnt_net():
    got = probe("1")
    mine = host_ns()
    for n in ("net", "mnt", "pid", "ipc"):
        assert got["ns"][n] != mine[n], n
    for n in ("uts", "cgroup", "user"):
        assert got["ns"][n] == mine[n], n


def test_pid_implies_mnt_and_remounts_proc():
    got = probe("pid")
    mine = host_ns()
    assert got["ns"]["pid"] != mine["pid"]
    assert got["ns"]["mnt"] != mine["mnt"], "pid must imply mnt (a private /proc needs it)"
    assert got["nprocs"] <= 3, got
    # The host's /proc was not touched.
    with open("/proc/1/cmdline", "rb") as f:
        host_pid1 = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    assert host_pid1 != got["pid1"], "the cell's /proc shows the host's PID 1"


def test_net_only_has_loopback_up_and_nothing_else():
    got = probe("net")
    assert got["devs"] == ["lo"], got
    assert got["lo_ok"] is True


def test_net_only_cannot_reach_a_host_loopback_listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    code = ("import socket, sys\ns = socket.socket(); s.settimeout(1)\n"
            f"sys.exit(3 if s.connect_ex(('127.0.0.1', {port})) == 0 else 0)\n")
    try:
        r = run_cell(make_spec(py_argv(code)), env={"CELLOS_SUBPROCESS_UNSHARE": "net"})
        assert r.rc == 0, f"the cell reached the host's loopback listener: {r}"
        # Sanity: without a private netns (explicit host mode) the same workload does reach it.
        r = run_cell(make_spec(py_argv(code)), env=HOST_MODE)
        assert r.rc == 3, r
    finally:
        srv.close()


def test_private_netns_cannot_reach_external_addresses():
    code = ("import socket, sys\nbad = []\n"
            "for host, port in [('192.0.2.7', 8443), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
            "    s = socket.socket(); s.settimeout(1)\n"
            "    if s.connect_ex((host, port)) == 0: bad.append(host)\n"
            "sys.exit(1 if bad else 0)\n")
    # Declared or not, nothing routes out of a private netns without a gateway.
    r = run_cell(make_spec(py_argv(code), egress=[{"host": "192.0.2.7", "port": 8443}]),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "net"})
    assert r.rc == 0, r
    assert r.event("observability.v1.network_enforcement")["data"]["nftRulesApplied"] is True


def nft_ruleset():
    p = subprocess.run(["/usr/sbin/nft", "list", "ruleset"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_host_nft_ruleset_is_untouched():
    # The cell's table lives in the cell's netns only (the host's ruleset may be
    # changed by others meanwhile: only our table's absence is checked).
    assert "table inet cellos" not in nft_ruleset()
    r = run_cell(make_spec(["/usr/bin/true"], egress=[{"host": "192.0.2.7", "port": 8443}]),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "net"})
    assert r.rc == 0, r
    assert r.event("observability.v1.network_enforcement")["data"]["nftRulesApplied"] is True
    after = nft_ruleset()
    assert "cellos" not in after and "192.0.2.7" not in after, after


def test_working_directory_is_a_private_empty_tmpfs_with_mnt():
    d = new_dir("workdir")
    (d / "host-file").write_text("host")
    code = ("import os, sys\nprint(os.getcwd()); print(sorted(os.listdir('.')))\n"
            "open('cell-file', 'w').write('cell')\n")
    r = run_cell(make_spec(py_argv(code), run_extra={"workingDirectory": str(d)}),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r
    cwd, listing = r.out.splitlines()
    assert cwd == str(d)
    assert listing == "[]", "the working directory was not empty at start"
    assert sorted(os.listdir(d)) == ["host-file"], "the cell's files reached the host"


def test_working_directory_without_mnt_is_the_host_directory():
    # Host mode: no mount namespace. The workload is the run's unprivileged uid, so
    # the directory must be writable for it.
    d = new_dir("workdir", cell_writable=True)
    r = run_cell(make_spec(["/bin/sh", "-c", "pwd; touch made-here"], run_extra={"workingDirectory": str(d)}),
                 env=HOST_MODE)
    assert r.rc == 0, r
    assert r.out.strip() == str(d)
    assert (d / "made-here").exists()


def test_user_namespace_is_in_all_and_only_in_lists_that_name_it():
    got = probe("user,net,uts", "ns-user-cell")
    assert got["hostname"] == "ns-user-cell"
    assert got["ns"]["user"] != os.readlink("/proc/self/ns/user"), "no private user namespace"
    r = run_cell(make_spec(["/bin/readlink", "/proc/self/ns/user"]), env={"CELLOS_SUBPROCESS_UNSHARE": "user"})
    assert r.rc == 0, r
    assert r.out.strip() != os.readlink("/proc/self/ns/user"), "no private user namespace"
    # "all" (and the default) include it now; a list without "user" leaves it alone.
    for unshare in ("all", None):
        r = run_cell(make_spec(["/bin/readlink", "/proc/self/ns/user"]), env={"CELLOS_SUBPROCESS_UNSHARE": unshare})
        assert r.rc == 0, r
        assert r.out.strip() != os.readlink("/proc/self/ns/user"), (unshare, "no private user namespace")
    r = run_cell(make_spec(["/bin/readlink", "/proc/self/ns/user"]),
                 env={"CELLOS_SUBPROCESS_UNSHARE": "net,mnt,pid,ipc,uts,cgroup"})
    assert r.rc == 0, r
    assert r.out.strip() == os.readlink("/proc/self/ns/user")
