"""Under CI=true a skipped test fails the run.

The suite skips what this machine cannot run (no root, no nft, no sandbox) so a developer can run
parts of it anywhere; CI runs `./kit test`, which installs everything, so a skip there means a test
that silently did not run. tests/verify is left alone: its skips are about settings (no hostname set),
not about this machine.
"""

import os
from pathlib import Path

import pytest

VERIFY = Path(__file__).parent / "verify"


def _strict(path) -> bool:
    return os.environ.get("CI") == "true" and VERIFY not in Path(path).parents


def _fail_skip(report, path) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and _strict(path):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result(), item.path)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module that skips itself as a whole (pytest.skip(allow_module_level=True)).
    outcome = yield
    _fail_skip(outcome.get_result(), collector.path)
