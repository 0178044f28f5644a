"""tests/conftest.py: under CI=true a skip fails the run, elsewhere it stays a skip."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SKIPPING = """
import pytest

def test_runs():
    pass

def test_cannot_run_here():
    pytest.skip("needs a thing this machine lacks")

@pytest.mark.xfail(reason="a known bug")
def test_known_bug():
    assert False
"""
SKIPPED_MODULE = 'import pytest\npytest.skip("no sandbox here", allow_module_level=True)\n'


def run_pytest(tmp_path, source: str, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(source)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("source", [SKIPPING, SKIPPED_MODULE], ids=["skipped test", "skipped module"])
def test_a_skip_fails_under_ci(tmp_path, source):
    run = run_pytest(tmp_path, source, ci=True)
    # 1: a test failed; 2: a module failed to collect (pytest stops there).
    assert run.returncode in (1, 2), run.stdout
    assert "skipped under CI=true, where every test must run" in run.stdout
    assert "needs a thing this machine lacks" in run.stdout or "no sandbox here" in run.stdout
    assert " skipped" not in run.stdout.splitlines()[-1]


def test_outside_ci_a_skip_stays_a_skip_and_xfail_is_untouched(tmp_path):
    run = run_pytest(tmp_path, SKIPPING, ci=False)
    assert run.returncode == 0, run.stdout
    assert run.stdout.splitlines()[-1].startswith("1 passed, 1 skipped, 1 xfailed")
    assert "1 failed, 1 passed, 1 xfailed" in run_pytest(tmp_path, SKIPPING, ci=True).stdout
