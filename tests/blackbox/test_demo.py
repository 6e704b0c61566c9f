"""The README's first command works: scripts/demo.sh runs the example cell and
verifies its signed events."""
import subprocess

from conftest import REPO_ROOT


def test_demo_script_runs_the_example_and_verifies_its_events():
    p = subprocess.run(["./scripts/demo.sh"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "hello from hello-cell" in p.stdout
    assert "capabilities: CapEff:\t0000000000000000" in p.stdout
    assert "host /usr is read-only" in p.stdout
    assert "s3cr3t" not in p.stdout + p.stderr
    assert "all signatures and the digest chain verify" in p.stdout
    assert '"type": "dev.cellos.events.cell.lifecycle.v1.destroyed"' in p.stdout
