"""Warm cells of cellos-agent (SPEC §11, CELLOS_AGENT_WARM; docs/DESIGN.md "Warm
cells") against a real nats-server on a free loopback port: the cell's namespaces,
cgroup leaf and base root are built before any job exists, a job hands its
document to one, each serves exactly one job, a document that does not fit starts
cold in the same supervisor, and a drain or a killed agent leaves nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import (CELL_IDS, cellos_cgroups, make_spec, new_dir, no_residue, run_cell, short_type,  # noqa: F401
                      unique_id)
from natshelper import free_port, nats_server  # noqa: F401
from test_agent import (NS, Agent, event_time, finished, metric, queue_init, runs_by_job,  # noqa: F401
                        server_and_queue, submit, wait_for, warm_cells)

RUNREG_DIR = "/run/cellos/runs"


def ready_cells(agent: Agent, port: int, n: int) -> dict[int, dict]:
    """Wait until `n` warm cells are ready (the agent says so, and each has its init)."""
    wait_for(lambda: metric(port, "cellos_agent_warm_cells_ready") == n and len(warm_cells(agent)) == n
             and all(c["init"] for c in warm_cells(agent).values()), 30, f"{n} warm cell(s)")
    return warm_cells(agent)


def leaf_paths(run_id: str) -> list[str]:
    """The warm cell's cgroup leaves on this host (v2 and, on hybrid hosts, v1)."""
    return sorted(p for p in cellos_cgroups() if os.path.basename(p) == f"cellos-warm-{run_id[:8]}")


def one_run(jsonl, job: str) -> tuple[str, list[dict]]:
    runs = runs_by_job(jsonl)[job]
    assert len(runs) == 1, runs.keys()
    return next(iter(runs.items()))


def test_a_warm_cells_namespaces_exist_before_its_job_and_it_serves_exactly_one(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    CELL_IDS.add("warm")
    try:
        ((pid1, w1),) = ready_cells(a, mport, 1).items()
        # Before any job: the init exists in its own namespaces and cgroup leaf.
        host_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in NS}
        assert all(w1["ns"][n] != host_ns[n] for n in NS if n != "user" or w1["ns"]["user"] != host_ns["user"])
        assert w1["ns"]["net"] != host_ns["net"] and w1["ns"]["mnt"] != host_ns["mnt"]
        leaves = leaf_paths(w1["run"])
        assert leaves and all(os.path.isdir(p) for p in leaves)
        # Its base root is built and it lives in it already: /proc, /dev, /sys of
        # its own, the host's root detached.
        mounts = [l.split()[4] for l in open(f"/proc/{w1['init']}/mountinfo").read().splitlines()]
        assert {"/", "/proc", "/dev", "/sys", "/usr", "/tmp"} <= set(mounts), mounts
        assert not os.path.exists(f"/proc/{w1['init']}/root/home"), "the host's root is still reachable"

        cell_id = unique_id("warm")
        doc = make_spec(["/bin/sh", "-c",
                         f'test "$(cat /proc/sys/kernel/hostname)" = {cell_id} && test "$(pwd)" = /work/job '
                         '&& test "$GREETING" = hi && ! touch /x 2>/dev/null && ! touch /dev/x 2>/dev/null '
                         '&& touch /work/job/x /tmp/x && test ! -e /home && sleep 3'],
                        id=cell_id, run_extra={"workingDirectory": "/work/job", "env": {"GREETING": "hi"},
                                               "limits": {"memoryMaxBytes": 64 * 1024 * 1024}})
        with srv.client() as c:
            j1 = submit(c, doc)
            # While it runs: the workload is a child of the very init that was
            # waiting before the job was submitted, in the same namespaces.
            def spawned():
                r = runs_by_job(jsonl).get(j1, {})
                return [e for evs in r.values() for e in evs if short_type(e) == "observability.v1.process_spawned"]
            wait_for(spawned, 30, "process_spawned")
            wpid = spawned()[0]["data"]["pid"]
            assert int(open(f"/proc/{wpid}/stat").read().rsplit(")", 1)[1].split()[1]) == w1["init"]
            assert {n: os.readlink(f"/proc/{wpid}/ns/{n}") for n in NS} == w1["ns"]
            assert open(f"/proc/{wpid}/status").read().split("Uid:")[1].split()[0] != "0"
            wait_for(lambda: finished(one_run(jsonl, j1)[1]), 30, "the first job")
            run1, evs1 = one_run(jsonl, j1)
            assert run1 == w1["run"]
            assert finished(evs1)["data"]["outcome"] == "succeeded", finished(evs1)
            started = [e for e in evs1 if short_type(e) == "lifecycle.v1.started"][0]["data"]
            assert started["isolation"]["cgroup"].endswith(f"/cellos-warm-{run1[:8]}")
            assert started["isolation"]["limits"]["applied"] is True, started

            # It served one job: its supervisor and init are gone, and a new warm
            # cell (other run id, other init) takes the next job.
            wait_for(lambda: pid1 not in warm_cells(a), 20, "the used warm cell to end")
            assert not os.path.exists(f"/proc/{w1['init']}")
            ((pid2, w2),) = ready_cells(a, mport, 1).items()
            assert w2["run"] != run1 and w2["init"] != w1["init"]
            j2 = submit(c, make_spec(["/bin/sh", "-c", "exit 4"]))
            wait_for(lambda: j2 in runs_by_job(jsonl) and finished(one_run(jsonl, j2)[1]), 30, "the second job")
            run2, evs2 = one_run(jsonl, j2)
            assert run2 == w2["run"] and finished(evs2)["data"]["reason"] == "nonzero_exit"
        # Each warm run id served exactly one job.
        by_run = {}
        for job, runs in runs_by_job(jsonl).items():
            for run in runs:
                by_run.setdefault(run, set()).add(job)
        assert by_run[run1] == {j1} and by_run[run2] == {j2}
        # The same lifecycle as a cold run of the same document.
        cold = run_cell(make_spec(["/bin/sh", "-c", "exit 4"]))
        assert [short_type(e) for e in evs2] == cold.types, (evs2, cold.types)
        assert sum("(warm cell)" in l for l in a.job_lines()) == 2
    finally:
        assert a.stop() == 0
    assert not leaf_paths(run1) and not leaf_paths(run2)


def started_at(pid: int) -> float:
    """When process `pid` started, wall clock (10 ms resolution: clock ticks since boot)."""
    ticks = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + ticks / os.sysconf("SC_CLK_TCK")


def test_the_pool_is_refilled_only_once_no_job_waits(server_and_queue):
    """Warm cells are spare capacity: while jobs wait in the queue the agent runs them
    (in the warm cells it has, then cold) and builds no new warm cell, which would
    take the CPU those jobs need; once JetStream says no job waits, it refills."""
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    n = 2
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM=str(n), CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        ready_cells(a, mport, n)
        with srv.client() as c:
            # A first job holds the one slot while the others are queued behind
            # it; nothing waited when it was taken, so its warm cell is replaced
            # (once it has run for a second: the idle rule).
            j0 = submit(c, make_spec(["/bin/sleep", "3"]))
            wait_for(lambda: j0 in runs_by_job(jsonl), 30, "the first job to start")
            (run0,) = runs_by_job(jsonl)[j0]
            # Short jobs: one that took 1 s would let the idle rule refill.
            jobs = [submit(c, make_spec(["/bin/sleep", "0.1"])) for _ in range(n + 2)]
            # The pool is full again while the first job runs (its warm
            # supervisor is still one of the agent's --warm processes).
            wait_for(lambda: metric(mport, "cellos_agent_warm_cells_ready") == n, 30, "the pool to refill")
            assert j0 not in {j for j in runs_by_job(jsonl) if finished(one_run(jsonl, j)[1])}
            before = {p: w for p, w in warm_cells(a).items() if w["run"] != run0}
            assert len(before) == n, before
            wait_for(lambda: all(j in runs_by_job(jsonl) and finished(one_run(jsonl, j)[1]) for j in jobs), 60,
                     "the queued jobs")
        runs = [one_run(jsonl, j) for j in jobs]
        # The first n took the warm cells that were ready, the rest started cold.
        warm_runs = {w["run"] for w in before.values()}
        assert [run in warm_runs for run, _ in runs] == [True] * n + [False] * 2, (warm_runs, runs)
        assert all(finished(evs)["data"]["outcome"] == "succeeded" for _, evs in runs)
        assert sum("(warm cell)" in l for l in a.job_lines()) == n + 1
        # No warm cell was started while a job still waited: the new ones began
        # after the last-but-one job had ended (the last was then delivered with
        # nothing behind it). Started at once, they would be a second older.
        after = ready_cells(a, mport, n)
        assert not set(after) & set(before)
        penultimate_end = event_time(finished(runs[-2][1]))
        assert all(started_at(pid) >= penultimate_end - 0.02 for pid in after), \
            ([started_at(pid) for pid in after], penultimate_end)
    finally:
        assert a.stop() == 0


def test_the_pool_is_built_a_few_at_a_time_and_not_while_a_job_runs(server_and_queue):
    """A pool is built as many cells at once as there are CPUs, the next as one
    gets ready (a whole pool at once is a storm of forks and builds), and a cell
    a job took is replaced only once no job of the agent runs: a build, niced,
    still holds the kernel's cgroup, mount and rtnl locks that the running
    cells' start and teardown take (bench/README.md, the agent's burst)."""
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    n = cpus + 3
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM=str(n), CELLOS_AGENT_MAX_CELLS="2", CELLOS_LOG="debug",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        # Seen from outside while the pool is built: supervisors started but
        # not yet ready (counted first, so the figure can only be too low).
        peak = 0
        deadline = time.monotonic() + 60
        while metric(mport, "cellos_agent_warm_cells_ready") < n:
            assert time.monotonic() < deadline, "the pool did not fill"
            started = len(warm_cells(a))
            peak = max(peak, started - metric(mport, "cellos_agent_warm_cells_ready"))
        assert peak <= cpus, peak
        # The agent's own account, in order: never more building than CPUs.
        building, most = set(), 0
        for line in a.text().splitlines():
            if line.startswith("cellos-agent: debug: warm cell ") and line.endswith((": building", ": ready")):
                pid = line.split()[4].rstrip(":")
                (building.add if line.endswith("building") else building.discard)(pid)
                most = max(most, len(building))
        assert 1 <= most <= cpus, (most, a.text())
        before = ready_cells(a, mport, n)

        # A job shorter than the idle rule's second takes a warm cell; its
        # replacement is started only after it ended.
        with srv.client() as c:
            j = submit(c, make_spec(["/bin/sleep", "0.6"]))
            wait_for(lambda: j in runs_by_job(jsonl) and finished(one_run(jsonl, j)[1]), 30, "the job")
        run, evs = one_run(jsonl, j)
        assert run in {w["run"] for w in before.values()}
        after = ready_cells(a, mport, n)
        (new,) = set(after) - set(before)
        assert started_at(new) >= event_time(finished(evs)) - 0.02, (started_at(new), event_time(finished(evs)))
    finally:
        assert a.stop() == 0


def test_a_document_the_warm_cell_does_not_fit_starts_cold_in_the_same_supervisor(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    data = new_dir("warm-mount")
    (data / "marker").write_text("x")
    os.chmod(data, 0o755)
    os.chmod(data / "marker", 0o644)
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}", CELLOS_HOST_MOUNT_ALLOW_PREFIXES=str(data))
    try:
        ((pid1, w1),) = ready_cells(a, mport, 1).items()
        doc = make_spec(["/bin/sh", "-c", "test -e /data/marker"],
                        run_extra={"mounts": [{"source": str(data), "target": "/data", "readOnly": True}]})
        with srv.client() as c:
            j = submit(c, doc)
            wait_for(lambda: j in runs_by_job(jsonl) and finished(one_run(jsonl, j)[1]), 30, "the job")
        run, evs = one_run(jsonl, j)
        assert run == w1["run"] and finished(evs)["data"]["outcome"] == "succeeded", finished(evs)
        started = [e for e in evs if short_type(e) == "lifecycle.v1.started"][0]["data"]
        assert started["isolation"]["cgroup"].endswith(f"/cellos-{doc['spec']['id']}-{run[:8]}")
        a.wait_log("warm cell not used (run.mounts)", 10)
        # The warm cell's own leaf and init went before the cold one was built.
        assert not leaf_paths(run)
        assert not os.path.exists(f"/proc/{w1['init']}")
    finally:
        assert a.stop() == 0


def test_drain_destroys_unused_warm_cells_and_leaves_nothing(no_residue, server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="2", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        cells = ready_cells(a, mport, 2)
        runs = [w["run"] for w in cells.values()]
        assert all(leaf_paths(r) for r in runs)
        assert all(os.path.exists(f"{RUNREG_DIR}/cellos-warm-{r[:8]}.lock") for r in runs)
    finally:
        assert a.stop() == 0
    for pid, w in cells.items():
        assert not os.path.exists(f"/proc/{pid}") and not os.path.exists(f"/proc/{w['init']}")
    for r in runs:
        assert not leaf_paths(r)
        assert not os.path.exists(f"{RUNREG_DIR}/cellos-warm-{r[:8]}.lock")
    # A warm cell that never got a job reports no run.
    assert not jsonl.exists() or not jsonl.read_text().strip()


def test_a_killed_agent_takes_its_warm_cells_with_it(no_residue, server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        ((pid, w),) = ready_cells(a, mport, 1).items()
    finally:
        a.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (os.path.exists(f"/proc/{pid}") or os.path.exists(f"/proc/{w['init']}") or leaf_paths(w["run"])) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{w['init']}")
    assert not leaf_paths(w["run"])
    assert not os.path.exists(f"{RUNREG_DIR}/cellos-warm-{w['run'][:8]}.lock")


def test_a_warm_cell_gets_the_documents_egress_rules_in_place_of_its_base_ruleset(server_and_queue):
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        ((pid, w),) = ready_cells(a, mport, 1).items()
        # The warm cell's netns already holds the ruleset of a cell without rules.
        base = subprocess.run(["nsenter", f"--net=/proc/{w['init']}/ns/net", "/usr/sbin/nft", "list", "ruleset"],
                              capture_output=True, text=True, check=True).stdout
        assert "table inet cellos" in base and "policy drop" in base and "192.0.2.7" not in base, base
        with srv.client() as c:
            j = submit(c, make_spec(["/bin/sleep", "2"], egress=[{"host": "192.0.2.7", "port": 8443}]))

            def spawned():
                r = runs_by_job(jsonl).get(j, {})
                return [e for evs in r.values() for e in evs if short_type(e) == "observability.v1.process_spawned"]
            wait_for(spawned, 30, "process_spawned")
            wpid = spawned()[0]["data"]["pid"]
            rules = subprocess.run(["nsenter", f"--net=/proc/{wpid}/ns/net", "/usr/sbin/nft", "list", "ruleset"],
                                   capture_output=True, text=True, check=True).stdout
            assert rules.count("table inet cellos") == 1 and "192.0.2.7" in rules and "8443" in rules, rules
            wait_for(lambda: finished(one_run(jsonl, j)[1]), 30, "the job")
        run, evs = one_run(jsonl, j)
        assert run == w["run"]
        enf = [e for e in evs if short_type(e) == "observability.v1.network_enforcement"][0]["data"]
        assert enf["nftRulesApplied"] is True and len(enf["ruleCounters"]) == 2, enf
    finally:
        assert a.stop() == 0


def test_a_sigkilled_warm_cell_is_cleaned_up_by_the_next_one(no_residue, server_and_queue):
    """kill -9 of a warm supervisor: its init dies with it (PID 1 of its namespace,
    death signal); its registered leaf is removed by the sweep of the next warm
    cell the agent starts in its place; that one still serves a job."""
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1",
              CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        ((pid, w),) = ready_cells(a, mport, 1).items()
        assert leaf_paths(w["run"])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{w['init']}"), 10, "the killed warm cell's init to die")
        wait_for(lambda: not leaf_paths(w["run"]), 20, "the next warm cell's sweep")
        assert not os.path.exists(f"{RUNREG_DIR}/cellos-warm-{w['run'][:8]}.lock")
        ((pid2, w2),) = ready_cells(a, mport, 1).items()
        assert pid2 != pid
        with srv.client() as c:
            j = submit(c, make_spec(["/bin/true"]))
            wait_for(lambda: j in runs_by_job(jsonl) and finished(one_run(jsonl, j)[1]), 30, "the job")
        run, evs = one_run(jsonl, j)
        assert run == w2["run"] and finished(evs)["data"]["outcome"] == "succeeded"
    finally:
        assert a.stop() == 0


def test_env_secrets_reach_a_warm_cells_workload_and_file_delivery_starts_cold(server_and_queue):
    """Env delivery goes through the claim record to the warm cell's init; the
    secrets directory of file delivery is built cold (docs/DESIGN.md)."""
    srv = server_and_queue
    jsonl = new_dir("warm-events") / "events.jsonl"
    mport = free_port()
    a = Agent(srv.url, jsonl, CELLOS_AGENT_WARM="1", CELLOS_AGENT_MAX_CELLS="1", CELLOS_AGENT_SECRETS="TOKEN",
              CELLOS_SECRET_TOKEN="s3cr3t-warm", CELLOS_AGENT_METRICS_ADDR=f"127.0.0.1:{mport}")
    try:
        ((_, w1),) = ready_cells(a, mport, 1).items()
        env_doc = make_spec(["/bin/sh", "-c", 'test "${TOKEN#s3cr3t-}" = warm'], secret_refs=["TOKEN"],
                            run_extra={"secretDelivery": "env"})
        with srv.client() as c:
            j1 = submit(c, env_doc)
            wait_for(lambda: j1 in runs_by_job(jsonl) and finished(one_run(jsonl, j1)[1]), 30, "the env job")
            run1, evs1 = one_run(jsonl, j1)
            assert run1 == w1["run"] and finished(evs1)["data"]["outcome"] == "succeeded", finished(evs1)
            started = [e for e in evs1 if short_type(e) == "lifecycle.v1.started"][0]["data"]
            assert started["isolation"]["cgroup"].endswith(f"/cellos-warm-{run1[:8]}")

            ((_, w2),) = ready_cells(a, mport, 1).items()
            file_doc = make_spec(["/bin/sh", "-c", 'v=$(cat /run/cellos/secrets/TOKEN); test "${v#s3cr3t-}" = warm'],
                                 secret_refs=["TOKEN"], run_extra={"secretDelivery": "file"})
            j2 = submit(c, file_doc)
            wait_for(lambda: j2 in runs_by_job(jsonl) and finished(one_run(jsonl, j2)[1]), 30, "the file job")
        run2, evs2 = one_run(jsonl, j2)
        assert run2 == w2["run"] and finished(evs2)["data"]["outcome"] == "succeeded", finished(evs2)
        a.wait_log("warm cell not used (secretDelivery file)", 10)
        assert "s3cr3t-warm" not in jsonl.read_text()
    finally:
        assert a.stop() == 0
