"""examples/: every document runs as examples/README.md says (the same document and
variables; host paths are the test's own temporary directories) and does what the
README says it does."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO_ROOT, SUPERVISOR, Result, new_dir, prepare, run_cell, supervisor_env, unique_id

pytestmark = pytest.mark.usefixtures("no_residue")

EXAMPLES = REPO_ROOT / "examples"
README = EXAMPLES / "README.md"
CELLCTL = SUPERVISOR.parent / "cellctl"

# The variables each example's command line in examples/README.md sets.
CONFIG = {
    "python-tests.json": ["CELLOS_HOST_MOUNT_ALLOW_PREFIXES", "CELLOS_EXPORT_DIR"],
    "build-with-secret.json": ["CELLOS_BROKER=file", "CELLOS_SECRET_FILE_REGISTRY_TOKEN", "CELLOS_EXPORT_DIR"],
    "memory-limited.json": [],
    "egress-registry.json": [],
    "hardened-signed.json": ["CELLOS_DEPLOYMENT_PROFILE=hardened", "CELLOS_EVENT_SIGNING=ed25519",
                             "CELLOS_EVENT_SIGNING_KID", "CELLOS_EVENT_SIGNING_KEY_BASE64",
                             "CELL_OS_JSONL_EVENTS"],
}


def load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def run_example(name: str, env: dict | None = None, timeout: float = 60) -> Result:
    """The example file itself, as the README's command line runs it."""
    return run_cell(load(name), env=env, timeout=timeout, args=[str(EXAMPLES / name)])


def sup_lines(r: Result) -> list[str]:
    return [l for l in r.err.splitlines() if l.startswith("cellos-supervisor: ")]


def test_readme_shows_every_example_and_its_command_line():
    text = README.read_text()
    docs = sorted(p.name for p in EXAMPLES.glob("*.json"))
    assert set(CONFIG) | {"hello.json"} == set(docs), docs
    for name in docs:
        assert f"`{name}`" in text, f"examples/README.md does not describe {name}"
    for name, variables in CONFIG.items():
        # The command block that runs it, with its variables before it.
        blocks = re.findall(r"((?:^    .*\\\n)*^    .*cellos-supervisor examples/" + re.escape(name) + ")", text, re.M)
        assert blocks, f"no command line for {name} in examples/README.md"
        for v in variables:
            assert any(v in b for b in blocks), f"{v} missing from the command line of {name}: {blocks}"


@pytest.mark.parametrize("name", sorted(set(CONFIG) - {"python-tests.json"}))
def test_example_is_valid_without_warnings(name):
    env = {"CELLOS_EXPORT_DIR": str(new_dir("exp"))}
    if "CELLOS_BROKER=file" in CONFIG[name]:
        # --validate checks that the broker can see the secret, as a run would.
        token = new_dir("token") / "registry-token"
        token.write_text("t\n")
        env.update(CELLOS_BROKER="file", CELLOS_SECRET_FILE_REGISTRY_TOKEN=str(token))
    r = run_cell(load(name), env=env, args=["--validate", str(EXAMPLES / name)], jsonl=False)
    assert r.rc == 0, r
    assert r.err == "", r.err
    assert f"cell:      {load(name)['spec']['id']}" in r.out, r.out


# --------------------------------------------------------------------------- python-tests.json


CALC = "def add(a, b):\n    return a + b\n"
TESTS = '''import pathlib

import pytest

from calc import add


def test_add():
    assert add(2, 3) == 5


def test_the_checkout_is_read_only():
    with pytest.raises(OSError):
        pathlib.Path("/src/written-by-the-tests").write_text("x")
'''


def test_example_python_checkout():
    """A read-only checkout mounted with run.mounts (SPEC §2), the report exported."""
    base = new_dir("ci")                      # stands for /srv/ci
    base.chmod(0o755)
    checkout = base / "checkout"
    (checkout / "calc").mkdir(parents=True)
    (checkout / "calc" / "__init__.py").write_text(CALC)
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_calc.py").write_text(TESTS)
    before = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*"))
    doc = load("python-tests.json")
    assert doc["spec"]["run"]["mounts"] == [{"source": "/srv/ci/checkout", "target": "/src", "readOnly": True}]
    doc["spec"]["run"]["mounts"][0]["source"] = str(checkout)
    exp = new_dir("exp")
    env = {"CELLOS_HOST_MOUNT_ALLOW_PREFIXES": str(base), "CELLOS_EXPORT_DIR": str(exp)}

    v = run_cell(doc, env=env, args=["--validate", "{spec}"], jsonl=False)
    assert v.rc == 0 and v.err == "", v
    r = run_cell(doc, env=env, timeout=120)
    assert r.rc == 0, r
    assert "2 passed" in r.out, r.out
    report = exp / "python-tests" / "report.xml"
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0"), ET.tostring(suite)
    done = r.event("export.v2.completed")["data"]
    assert done["artifactName"] == "report.xml" and done["destination"] == str(report), done
    # Nothing was written into the checkout (no bytecode, no cache, not the test's file).
    assert sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*")) == before


# --------------------------------------------------------------------------- build-with-secret.json


def test_example_build_with_a_file_secret():
    token = "tok-" + unique_id("secret")
    d = new_dir("secret")
    (d / "registry-token").write_text(token + "\n")
    (d / "registry-token").chmod(0o600)
    exp = new_dir("exp")
    env = {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_REGISTRY_TOKEN": str(d / "registry-token"),
           "CELLOS_EXPORT_DIR": str(exp)}
    r = run_example("build-with-secret.json", env, timeout=120)
    assert r.rc == 0, r
    assert "hello from a program built in a cell" in r.out, r.out
    for where in (r.out, r.err, r.raw.decode()):
        assert token not in where
    assert r.event("lifecycle.v1.started")["data"]["isolation"]["namespaces"], r.events
    binary = (exp / "build-with-secret" / "hello").read_bytes()
    assert binary[:4] == b"\x7fELF"
    digest = (exp / "build-with-secret" / "hello.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(binary).hexdigest()
    assert {e["data"]["artifactName"] for e in r.events if e["type"].endswith("export.v2.completed")} == \
        {"hello", "hello.sha256"}


# --------------------------------------------------------------------------- memory-limited.json


def test_example_memory_limited_is_oom_killed_and_says_so():
    r = run_example("memory-limited.json")
    assert r.rc == 137, r
    assert "holding 16 MiB" in r.out and "never reached" not in r.out, r.out
    assert r.event("lifecycle.v1.destroyed")["data"]["reason"] == "oom"
    last = sup_lines(r)[-1]
    assert r.err.endswith(last + "\n"), r.err
    assert re.fullmatch(r"cellos-supervisor: cell memory-limited failed: out of memory "
                        r"\(limit 128 MiB, peak \d+(\.\d)? MiB\) after (\d+ ms|\d+\.\d s)", last), last


# --------------------------------------------------------------------------- egress-registry.json


def no_real_resolver(d) -> list[str]:
    """A prefix running the supervisor in a network namespace of its own (loopback
    only, down) with a resolv.conf that names a nameserver there and an
    nsswitch.conf that asks only files and DNS: the name lookups of the run reach
    nothing real, and no packet can leave the machine."""
    (d / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (d / "nsswitch.conf").write_text("hosts: files dns\n")
    script = (f"set -e\nmount --bind {d / 'resolv.conf'} /etc/resolv.conf\n"
              f"mount --bind {d / 'nsswitch.conf'} /etc/nsswitch.conf\nexec \"$@\"\n")
    return ["/usr/bin/unshare", "--net", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"]


def test_example_egress_declaration_validates():
    name = "egress-registry.json"
    r = run_cell(load(name), args=["--validate", str(EXAMPLES / name)], jsonl=False)
    assert r.rc == 0, r
    assert "egress:    1 rule(s)" in r.out and "tcp registry.example:443" in r.out, r.out


def test_example_egress_run_reports_the_rule():
    name = "egress-registry.json"
    d, _, jsonl = prepare(load(name))
    t0 = time.monotonic()
    p = subprocess.run(no_real_resolver(d) + [str(SUPERVISOR), str(EXAMPLES / name)],
                       env=supervisor_env(None, jsonl), capture_output=True, timeout=60, cwd=d,
                       stdin=subprocess.DEVNULL)
    r = Result(p.returncode, p.stdout, p.stderr, jsonl, EXAMPLES / name, time.monotonic() - t0)
    assert r.rc == 0, r
    assert "registry.example:443 not reachable from this cell" in r.out, r.out
    policy = r.event("observability.v1.network_policy")["data"]
    assert policy["declaredEgress"] == [{"host": "registry.example", "port": 443, "protocol": "tcp"}], policy
    assert policy["declaredEgressCount"] == 1 and policy["isolationMode"] == "clone_newnet", policy
    enf = r.event("observability.v1.network_enforcement")["data"]
    assert enf["declaredEgressRuleCount"] == 1, enf
    # The name resolved to nothing (the test's resolver is nowhere): no accept rule, said once.
    assert [l for l in sup_lines(r) if "registry.example does not resolve" in l], r.err


# --------------------------------------------------------------------------- hardened-signed.json


def test_example_hardened_with_signed_events_verifies():
    d = new_dir("keys")
    key = subprocess.run([str(CELLCTL), "keygen", "--kid", "ops-2026"], capture_output=True, text=True, timeout=30)
    assert key.returncode == 0, key.stderr
    seed, public = key.stdout.splitlines()
    (d / "keys.json").write_text(public + "\n")
    events = d / "events.jsonl"
    env = {"CELLOS_DEPLOYMENT_PROFILE": "hardened", "CELLOS_EVENT_SIGNING": "ed25519",
           "CELLOS_EVENT_SIGNING_KID": "ops-2026", "CELLOS_EVENT_SIGNING_KEY_BASE64": seed,
           "CELL_OS_JSONL_EVENTS": str(events)}
    r = run_cell(load("hardened-signed.json"), env=env, jsonl=events, args=[str(EXAMPLES / "hardened-signed.json")])
    assert r.rc == 0, r
    assert "hello from hardened-signed" in r.out, r.out
    assert r.events and all(e["type"] == "dev.cellos.events.signed_envelope.v1" for e in r.events), r.types
    inner = [e["data"]["event"] for e in r.events]
    assert inner[-1]["type"].endswith("lifecycle.v1.destroyed")
    assert inner[-1]["data"]["outcome"] == "succeeded"
    summary = [e for e in inner if e["type"].endswith("compliance.v1.summary")][0]["data"]
    assert summary["profile"] == "hardened", summary
    assert seed not in r.err and seed not in r.raw.decode()

    ok = subprocess.run([str(CELLCTL), "verify", str(events), "--keys", str(d / "keys.json")],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # And it is the signatures that make it pass: an altered event does not.
    lines = events.read_bytes().splitlines(keepends=True)
    tampered = d / "tampered.jsonl"
    tampered.write_bytes(b"".join(lines[:1] + [lines[1].replace(b"hardened-signed", b"hardened-signeD", 1)]
                                  + lines[2:]))
    bad = subprocess.run([str(CELLCTL), "verify", str(tampered), "--keys", str(d / "keys.json")],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1, bad.stdout + bad.stderr
