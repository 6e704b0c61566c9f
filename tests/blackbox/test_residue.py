"""SPEC §4 destroy: nothing survives a run. Many runs of every outcome, compared with a
host snapshot taken before them."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import MARK, assert_no_residue, host_snapshot, make_spec, py_argv, run_cell

DAEMON = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"

# name -> (document, extra supervisor env, expected status)
KINDS = {
    "success": (lambda: make_spec(["/usr/bin/true", MARK]), {}, 0),
    "failure": (lambda: make_spec(["/bin/sh", "-c", "exit 9", MARK]), {}, 9),
    "timeout": (lambda: make_spec(["/bin/sh", "-c", "sleep 30", MARK], run_extra={"timeoutMs": 150}), {}, 124),
    "spawn-failure": (lambda: make_spec(["/nonexistent/prog", MARK]), {}, 127),
    "signal": (lambda: make_spec(["/bin/sh", "-c", "kill -KILL $$", MARK]), {}, 137),
    "daemon-left-behind": (lambda: make_spec(py_argv(DAEMON, MARK)), {}, 0),
    "egress-rules": (lambda: make_spec(["/usr/bin/true", MARK], egress=[{"host": "192.0.2.7", "port": 443},
                                                                         {"host": "2001:db8::/32", "port": 53,
                                                                          "protocol": "udp"}]), {}, 0),
    "missing-secret": (lambda: make_spec(["/usr/bin/true", MARK], secret_refs=["BB_NOPE"]), {}, 125),
    "invalid-document": (lambda: make_spec(["/usr/bin/true", MARK], ttl=0), {}, 125),
    "no-run": (lambda: make_spec(run=False), {}, 0),
}


@pytest.mark.parametrize("unshare", ["all", ""], ids=["unshare-all", "no-namespaces"])
def test_many_runs_leave_nothing_behind(unshare):
    before = host_snapshot()
    plan = [k for _ in range(4) for k in sorted(KINDS)]  # 40 runs

    def one(kind):
        make, env, expected = KINDS[kind]
        r = run_cell(make(), env=dict(env, CELLOS_SUBPROCESS_UNSHARE=unshare))
        return kind, expected, r

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, plan))
    wrong = [(kind, expected, r) for kind, expected, r in results if r.rc != expected]
    assert not wrong, f"unexpected exit statuses: {wrong[:3]}"
    for kind, _, r in results:
        if r.has("lifecycle.v1.started"):
            assert r.types[-1] == "lifecycle.v1.destroyed", (kind, r.types)
    assert_no_residue(before)
