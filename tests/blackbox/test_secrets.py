"""SPEC §5: the env broker, env delivery, missing secrets, and secret values never
showing up anywhere the supervisor writes."""
import uuid

import pytest

from conftest import make_spec, py_argv, run_cell

pytestmark = pytest.mark.usefixtures("no_residue")


@pytest.mark.parametrize("unshare", ["0", "all"])
def test_env_delivery(unshare):
    code = "import os, sys\nsys.exit(0 if os.environ.get('GITHUB_TOKEN') == 'ghp-value' else 9)\n"
    r = run_cell(make_spec(py_argv(code), secret_refs=["GITHUB_TOKEN"], run_extra={"secretDelivery": "env"}),
                 env={"CELLOS_SECRET_GITHUB_TOKEN": "ghp-value", "CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 0, r
    assert r.event("compliance.v1.summary")["data"]["secretRefCount"] == 1


def test_secret_ref_name_maps_to_broker_variable():
    # `<KEY>` is the secretRef upper-cased with '-' and '.' turned into '_'. Such
    # a name is no environment name: file delivery carries it.
    code = "import sys\nsys.exit(0 if open('/run/cellos/secrets/my-db.password').read() == 'v' else 9)\n"
    r = run_cell(make_spec(py_argv(code), secret_refs=["my-db.password"], run_extra={"secretDelivery": "file"}),
                 env={"CELLOS_SECRET_MY_DB_PASSWORD": "v", "CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert r.rc == 0, r


def assert_refused_at_admission(r, *needles):
    assert r.rc == 125, r
    for n in needles:
        assert n in r.err, f"{n!r} not on stderr:\n{r.err}"
    assert r.events == [], r.types


@pytest.mark.parametrize("delivery", ["env", "file"])
def test_two_secret_refs_of_one_broker_variable_are_refused(delivery):
    # The env broker wipes a value once read: the second ref used to get "" silently.
    first = "db_pass" if delivery == "env" else "db-pass"
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=[first, "DB_PASS"], run_extra={"secretDelivery": delivery}),
                 env={"CELLOS_SECRET_DB_PASS": "v", "CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert_refused_at_admission(r, f'spec.authority.secretRefs[1]: "DB_PASS" maps to the same broker variable '
                                   f'CELLOS_SECRET_DB_PASS as "{first}"')


def test_env_delivery_needs_secret_refs_that_are_environment_names():
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["db-pass"]),
                 env={"CELLOS_SECRET_DB_PASS": "v", "CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert_refused_at_admission(r, 'spec.authority.secretRefs[0]: "db-pass" is not an environment variable name')


@pytest.mark.parametrize("name", ["CELLOS_CELL_ID", "CELLOS_RUN_ID", "CELLOS_SECRETS_DIR", "TOKEN"])
def test_run_env_may_not_set_what_the_supervisor_or_the_broker_sets(name):
    r = run_cell(make_spec(["/usr/bin/env"], secret_refs=["TOKEN"], run_extra={"env": {name: "from-run-env"}}),
                 env={"CELLOS_SECRET_TOKEN": "v", "CELLOS_SUBPROCESS_UNSHARE": "all"})
    assert_refused_at_admission(r, f"spec.run.env.{name}: ")
    assert "from-run-env" not in r.out


@pytest.mark.parametrize("unshare", ["0", "all"])
def test_missing_secret_fails_before_start(unshare):
    r = run_cell(make_spec(["/usr/bin/true"], id="secret-missing", secret_refs=["PRESENT", "DEPLOY_KEY"]),
                 env={"CELLOS_SECRET_PRESENT": "here", "CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == 125, r
    assert "DEPLOY_KEY" in r.err
    assert len([l for l in r.err.splitlines() if "DEPLOY_KEY" in l]) >= 1
    assert r.types == ["observability.v1.network_policy", "lifecycle.v1.failed"], r.types
    f = r.event("lifecycle.v1.failed")["data"]
    assert f["phase"] == "secrets"
    assert "DEPLOY_KEY" in f["message"]
    assert f["specId"] == "secret-missing"


CANARY_CASES = {
    "success": (["/usr/bin/true"], {}, 0),
    "failure": (["/bin/sh", "-c", "exit 3"], {}, 3),
    "timeout": (["/bin/sleep", "10"], {"timeoutMs": 150}, 124),
    "not-found": (["/nonexistent/prog"], {}, 127),
    "signal": (["/bin/sh", "-c", "kill -KILL $$"], {}, 137),
}


@pytest.mark.parametrize("unshare", ["0", "all"])
@pytest.mark.parametrize("case", sorted(CANARY_CASES))
def test_secret_value_never_appears_in_output_or_events(case, unshare):
    canary = "canary-" + uuid.uuid4().hex
    argv, run_extra, rc = CANARY_CASES[case]
    doc = make_spec(argv, secret_refs=["CANARY", "OTHER"], run_extra=run_extra,
                    spec_extra={"correlation": {"correlationId": "c"}})
    r = run_cell(doc, env={"CELLOS_SECRET_CANARY": canary, "CELLOS_SECRET_OTHER": canary + "-2",
                           "CELLOS_LOG": "debug", "CELLOS_SUBPROCESS_UNSHARE": unshare})
    assert r.rc == rc, r
    for where, data in (("stdout", r.out_bytes), ("stderr", r.err_bytes), ("events", r.raw)):
        assert canary.encode() not in data, f"secret value leaked to {where}"
    assert r.raw, "no events were written"


def test_secret_value_never_appears_when_a_later_secret_is_missing():
    canary = "canary-" + uuid.uuid4().hex
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["FIRST", "SECOND"]),
                 env={"CELLOS_SECRET_FIRST": canary, "CELLOS_LOG": "debug"})
    assert r.rc == 125, r
    assert "SECOND" in r.err
    for where, data in (("stdout", r.out_bytes), ("stderr", r.err_bytes), ("events", r.raw)):
        assert canary.encode() not in data, f"secret value leaked to {where}"


def test_secret_value_is_not_in_the_validate_summary():
    canary = "canary-" + uuid.uuid4().hex
    r = run_cell(make_spec(["/usr/bin/true"], secret_refs=["TOKEN"]), args=["--validate", "{spec}"],
                 env={"CELLOS_SECRET_TOKEN": canary})
    assert r.rc == 0, r
    assert "TOKEN" in r.out
    assert canary not in r.out + r.err
