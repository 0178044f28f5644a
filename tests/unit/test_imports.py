"""No role imports another: the import contracts in pyproject.toml hold and catch a new cross-role
import, and each role that differs by platform names its backends in a table with a declared interface."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import roles.base
import roles.firewall
import roles.openclaw
from openclaw_kit.platform import PLATFORMS

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"  # the test extra's import-linter
# role package, the platform table's field its backend is picked by, the interface its backends provide
PICKED_BY = [
    (roles.base, "family", roles.base.BaseBackend),
    (roles.firewall, "firewall", roles.firewall.FirewallBackend),
    (roles.openclaw, "service_manager", roles.openclaw.ServiceManager),
]


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    # Run in `tree`, whose roles/ and openclaw_kit/ come first on the path.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, capture_output=True, text=True)


def copy_of_the_kit(tmp_path: Path) -> Path:
    for name in ("roles", "openclaw_kit"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_import_contracts_hold():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 3 kept, 0 broken." in run.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("roles/tls.py", "from roles.nginx import CURRENT", "roles.tls is not allowed to import roles.nginx"),
        ("openclaw_kit/versions.py", "from roles.openclaw.systemd import CONFIG_CANDIDATE_DIR",
         "openclaw_kit is not allowed to import roles"),
        ("roles/firewall/pf.py", "from roles.firewall.nftables import TABLE",
         "roles.firewall.pf is not allowed to import roles.firewall.nftables"),
    ],
)
def test_a_new_cross_role_import_breaks_a_contract(tmp_path, module, planted, broken):
    tree = copy_of_the_kit(tmp_path)
    path = tree / module
    path.write_text(f"{path.read_text()}\n{planted}  # noqa: E402\n")
    run = lint_imports(tree)
    assert run.returncode == 1 and broken in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize(("role", "field", "interface"), PICKED_BY, ids=lambda value: getattr(value, "__name__", value))
def test_each_platform_finds_its_backend_in_the_roles_table(role, field, interface):
    name = role.__name__.rpartition(".")[2]
    for row in PLATFORMS.values():
        if name in row.roles:
            assert getattr(row, field) in role.BACKENDS, (row.label, name, getattr(row, field))
    for key, backend in role.BACKENDS.items():
        assert isinstance(backend, interface), f"{backend.__name__} ({key}) lacks part of {interface.__name__}"
