"""Containment configuration: CELLOS_RUN_ARGV0_ALLOW_PREFIXES (SPEC §3), the
hardened profile (SPEC §7) and what lifecycle.v1.started says about the cell's
isolation (SPEC §8.1)."""
import base64

import pytest

from cellprobe import ALL_NS, FULL, FULL_USER
from conftest import assert_no_residue, host_snapshot, make_spec, run_cell, unique_id

PREFIX_VAR = "CELLOS_RUN_ARGV0_ALLOW_PREFIXES"


def refused_by_prefixes(r, program):
    assert r.rc == 125, r
    # One line (besides host mode's own warning).
    lines = [l for l in r.err.splitlines() if l.strip() and "host mode" not in l]
    assert len(lines) == 1, r.err
    assert PREFIX_VAR in lines[0] and program in lines[0], r.err
    failed = r.event("lifecycle.v1.failed")["data"]
    assert failed["phase"] == "create" and failed["reason"] == "policy_denied"
    assert PREFIX_VAR in failed["message"]
    assert not r.has("lifecycle.v1.started") and not r.has("observability.v1.process_spawned")


# "0": explicit host mode (no namespaces; "" would now mean `all`); "all": the default.
@pytest.mark.parametrize("unshare", ["0", "all"])
def test_argv0_under_an_allowed_prefix_runs(unshare):
    env = {"CELLOS_SUBPROCESS_UNSHARE": unshare, PREFIX_VAR: "/usr/local/bin,/usr/bin"}
    assert run_cell(make_spec(["/usr/bin/true"]), env=env).rc == 0
    # A bare name is checked after the PATH lookup, in the cell's view.
    r = run_cell(make_spec(["true"]), env=env)
    assert r.rc == 0, r
    assert r.event("observability.v1.process_spawned")["data"]["program"] == "/usr/bin/true"


@pytest.mark.parametrize("unshare", ["0", "all"])
def test_argv0_outside_the_prefixes_is_refused_before_anything_runs(unshare):
    before = host_snapshot()
    env = {"CELLOS_SUBPROCESS_UNSHARE": unshare, PREFIX_VAR: "/usr/local/bin"}
    refused_by_prefixes(run_cell(make_spec(["/usr/bin/true"]), env=env), "/usr/bin/true")
    refused_by_prefixes(run_cell(make_spec(["true"]), env=env), "/usr/bin/true")
    assert_no_residue(before)


def test_argv0_prefix_check_is_by_whole_normalised_components():
    env = dict(FULL, **{PREFIX_VAR: "/usr/bin"})
    # ".." cannot climb out of an allowed directory.
    refused_by_prefixes(run_cell(make_spec(["/usr/bin/../../bin/true"]), env=env), "/usr/bin/../../bin/true")
    # /usr/bin does not allow /usr/bin2/...
    refused_by_prefixes(run_cell(make_spec(["/usr/bin2/x"]), env=env), "/usr/bin2/x")
    # Relative programs are never under an absolute prefix.
    refused_by_prefixes(run_cell(make_spec(["./true"]), env=env), "./true")
    assert run_cell(make_spec(["/usr//bin/./true"]), env=env).rc == 0


def test_bare_name_that_is_not_found_is_still_127():
    env = dict(FULL, **{PREFIX_VAR: "/usr/bin"})
    r = run_cell(make_spec([f"no-such-program-{unique_id()}"]), env=env)
    assert r.rc == 127, r


# ---- the hardened profile ----


def hardened_env(**over):
    key = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
    env = dict(FULL, CELLOS_DEPLOYMENT_PROFILE="hardened", CELLOS_EVENT_SIGNING="hmac",
               CELLOS_EVENT_SIGNING_KID="cellbb-test", CELLOS_EVENT_SIGNING_KEY_BASE64=key)
    env.update(over)
    return env


def test_hardened_profile_starts_when_everything_is_in_place():
    r = run_cell(make_spec(["/usr/bin/true"], egress=[{"host": "192.0.2.10", "port": 443}]), env=hardened_env())
    assert r.rc == 0, r


@pytest.mark.parametrize("over,names,not_names", [
    ({"CELLOS_SECCOMP": "off"}, ["CELLOS_SECCOMP"], ["CELLOS_SUBPROCESS_UNSHARE", "durable sink"]),
    ({"CELLOS_SUBPROCESS_UNSHARE": "net,mnt,pid"}, ["CELLOS_SUBPROCESS_UNSHARE"], ["CELLOS_SECCOMP"]),
    ({"CELLOS_SUBPROCESS_UNSHARE": "0", "CELLOS_SECCOMP": "off"}, ["CELLOS_SUBPROCESS_UNSHARE", "CELLOS_SECCOMP"], []),
])
def test_hardened_profile_names_each_missing_piece(over, names, not_names):
    r = run_cell(make_spec(["/usr/bin/true"]), env=hardened_env(**over))
    assert r.rc == 125, r
    line = [l for l in r.err.splitlines() if "CELLOS_DEPLOYMENT_PROFILE=hardened" in l]
    assert line, r.err
    for n in names:
        assert n in line[0], line[0]
    for n in not_names:
        assert n not in line[0], line[0]
    assert not r.has("lifecycle.v1.started")


def test_hardened_profile_requires_an_absolute_argv0():
    r = run_cell(make_spec(["true"]), env=hardened_env())
    assert r.rc == 125 and "absolute run.argv[0]" in r.err, r


# ---- lifecycle.v1.started data.isolation ----


@pytest.mark.parametrize("env,namespaces,seccomp", [
    # The default: every namespace incl. user, seccomp baseline.
    ({}, ALL_NS.split(",") + ["user"], "baseline"),
    ({"CELLOS_SUBPROCESS_UNSHARE": "0", "CELLOS_SECCOMP": "off"}, [], "off"),
    ({"CELLOS_SUBPROCESS_UNSHARE": "0"}, [], "baseline"),
    ({"CELLOS_SUBPROCESS_UNSHARE": "pid", "CELLOS_SECCOMP": "off"}, ["mnt", "pid"], "off"),
    ({"CELLOS_SUBPROCESS_UNSHARE": "mnt"}, ["mnt", "pid"], "baseline"),
    ({"CELLOS_SUBPROCESS_UNSHARE": ALL_NS}, ALL_NS.split(","), "baseline"),
    (FULL, ALL_NS.split(",") + ["user"], "baseline"),
    (FULL_USER, ALL_NS.split(",") + ["user"], "baseline"),
])
def test_started_event_reports_the_isolation_in_force(env, namespaces, seccomp):
    r = run_cell(make_spec(["/usr/bin/true"]), env=env)
    assert r.rc == 0, r
    iso = r.event("lifecycle.v1.started")["data"]["isolation"]
    assert sorted(iso["namespaces"]) == sorted(namespaces)
    assert iso["seccomp"] == seccomp
    assert iso["cgroup"] is None or iso["cgroup"].startswith("/")
