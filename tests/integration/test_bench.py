"""bench/ in quick mode, end to end, on the integration run's own sandbox.

Not a timed test: the figures depend on the machine and its load. It checks that the table and the
JSON carry every figure with a sane value, and that the sandbox is left as it was found.
"""

import json
import subprocess
import sys

import pytest

import sandbox
from tests.integration.conftest import REPO

pytestmark = pytest.mark.sandbox


def test_quick_bench_reports_a_noop_run_its_floor_and_verify(sandbox_state, kit_env, tmp_path):
    hosts_before = sandbox.load_state()["hosts"]
    out = tmp_path / "bench.json"
    # kit_env: the session's gateway token, so the bench's deploys change nothing the other tests set.
    run = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--json", str(out)], cwd=REPO, env=kit_env,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    report = json.loads(out.read_text())
    noop, floor = report["results"]["noop_1"], report["results"]["floor_1"]
    assert report["mode"] == "quick"
    assert noop["hosts"] == floor["hosts"] == 1
    assert noop["changes"] == 0
    assert noop["operations"] > 10
    for figure in (noop, floor):
        assert figure["wall_s"] > 0 and len(figure["runs_s"]) == 1
        assert 0 < figure["max_rss_mb"] < 4096
        assert 0 < figure["controller_cpu_s"] <= figure["wall_s"] * report["machine"]["cpus"]
        assert 0 < figure["machine_busy"] <= 1
    # A no-op deploy asks the host much more than `true` does; the floor is one command (plus
    # whatever pyinfra runs to connect).
    assert 1 <= floor["commands_per_host"] < noop["commands_per_host"]
    assert report["ratios"]["noop_vs_floor"] == pytest.approx(noop["wall_s"] / floor["wall_s"], abs=0.01)
    assert report["machine"]["cpus"] >= 1 and len(report["machine"]["load_at_start"]) == 3

    verify = report["results"]["verify_1"]
    assert verify["hosts"] == 1 and verify["checks"] > 40 and verify["wall_s"] > 0 and len(verify["runs_s"]) == 1
    assert report["targets"]["verify_s_per_host"]["measured"] == verify["wall_s"]

    assert "no-op re-run" in run.stdout and "floor: pyinfra exec -- true" in run.stdout and "verify: every check" in run.stdout
    assert "target noop_vs_floor <= 4.0" in run.stdout and "target verify_s_per_host <= 15.0" in run.stdout
    assert sandbox.load_state()["hosts"] == hosts_before
