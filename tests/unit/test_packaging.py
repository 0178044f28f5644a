"""The wheel is the whole kit: built from the sources, installed into a clean virtualenv and used from
a directory outside the checkout, as someone who never cloned it would (`openclaw-kit init`, validate,
render, verify's checks); and it carries every template and nothing only the tests need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "templates").rglob("*.j2"))
PACKAGED = "openclaw_kit/kit_files/"
ENV = {"OPENCLAW_GATEWAY_TOKEN": "t" * 64, "TELEGRAM_BOT_TOKEN": "123:abc", "RESTIC_PASSWORD": "P" * 24}

# What a dry run on render's stand-in, a fresh Debian host, cannot reach: the macOS backends' templates,
# and these (the condition in parentheses is a fact of a host the kit already deployed to, or had).
NOT_ON_A_FRESH_DEBIAN_HOST = {
    "templates/base/coredump.conf.j2",  # (systemd-coredump installed)
    "templates/wireguard/apply.sh.j2",  # (every mesh host's WireGuard key made)
    "templates/wireguard/wg.conf.j2",  # (the same)
    "templates/openclaw/unpack-npm.sh.j2",  # (node_source npm-package, fetched by the controller's npm)
    "templates/operations/check-then-promote.sh.j2",  # (a changed config: rendered when the run executes)
}

# Beside the example inventory, a host with the optional parts: mesh, off-host backup, proxy, banner,
# monitoring.
REVIEW_INVENTORY = """
import runpy

(example_host, example_data), = runpy.run_path("inventories/prod.py")["gateways"][0]
example_group = runpy.run_path("inventories/prod.py")["gateways"][1]
mesh = {"cidr": "10.99.0.0/24"}
gateways = (
    [
        (example_host, {**example_data, "private_network": {**mesh, "address": "10.99.0.1"}}),
        ("gw2.example.com", {
            "domain": "gw2.example.com",
            "private_network": {**mesh, "address": "10.99.0.2"},
            "login_banner": "Authorised use only.",
            "proxy": "http://10.0.0.3:3128",
            "monitoring": {"enabled": True, "webhook": {"url": "https://hooks.example.com/kit"}},
            "offsite_backup": {
                "repository": "sftp:backup@10.0.0.2:/srv/restic/gw",
                "password": "${RESTIC_PASSWORD}",
                "sftp_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            },
        }),
    ],
    {**example_group, "admin_peers": [
        {"name": "alice-laptop", "public_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "address": "10.99.0.100"},
    ]},
)
"""


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    found = subprocess.run(args, cwd=cwd, env={**env, **ENV}, capture_output=True, text=True, timeout=300)
    if check:
        assert found.returncode == 0, f"{' '.join(args)} exited {found.returncode}:\n{(found.stdout + found.stderr)[-3000:]}"
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: a build writes build/ and *.egg-info beside the sources it reads.
    source = tmp_path_factory.mktemp("source") / "kit"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "results", ".env"))
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(source), cwd=dist)
    (built,) = dist.glob("openclaw_kit-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The bin directory of a clean virtualenv (no site packages, not the checkout's) with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=venv)
    # This pip, into that virtualenv: the dependencies as the wheel declares them, from the package index.
    run(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel), cwd=venv)
    return venv / "bin"


@pytest.fixture(scope="module")
def site(installed, tmp_path_factory) -> Path:
    """A directory of the user's own, made by `openclaw-kit init`."""
    site = tmp_path_factory.mktemp("site") / "gateways"
    run(str(installed / "openclaw-kit"), "init", str(site), cwd=site.parent)
    return site


def test_the_wheel_carries_every_template_and_verify_check_and_nothing_only_the_tests_need(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [path for path in TEMPLATES if PACKAGED + path not in names]
    assert missing == [], f"templates not in the wheel: {missing}"
    checks = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "tests" / "verify").glob("*.py"))
    assert [path for path in checks if PACKAGED + path not in names] == []
    assert {PACKAGED + "deploy.py", PACKAGED + "inventories/prod.py", "openclaw_kit/cli.py", "roles/base/debian.py",
            "roles/openclaw/launchd.py", "roles/firewall/pf.py"} <= names
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"openclaw_kit", "roles"}, "sandbox/, bench/ and tests/ do not ship as packages"
    only_tests = [name for name in names if name.startswith((f"{PACKAGED}tests/unit/", f"{PACKAGED}tests/integration/"))
                  or name in (f"{PACKAGED}tests/conftest.py", f"{PACKAGED}pyproject.toml") or name.endswith(".pyc")]
    assert only_tests == []
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "openclaw-kit = openclaw_kit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_init_writes_the_checkouts_deploy_py_and_example_inventory(site, installed):
    assert (site / "deploy.py").read_text() == (REPO / "deploy.py").read_text()
    assert (site / "inventories" / "prod.py").read_text() == (REPO / "inventories" / "prod.py").read_text()
    again = run(str(installed / "openclaw-kit"), "init", str(site), cwd=site, check=False)
    assert again.returncode == 2 and "nothing was written" in again.stderr
    # The kit it runs is the installed one, not this checkout.
    where = run(str(installed / "python"), "-c", "import openclaw_kit.paths as p; print(p.KIT)", cwd=site).stdout.strip()
    assert Path(where).is_relative_to(installed.parent), where


def test_validate_an_example_inventory_outside_the_checkout(site, installed):
    found = run(str(installed / "openclaw-kit"), "validate", "inventories/prod.py", cwd=site)
    assert "the settings of 1 host(s) are valid: gw1.example.com" in found.stdout
    (site / "inventories" / "bad.py").write_text('hosts = [("gw9", {"admin_cidrs": ["10.0.0.0/33"]})]\n')
    bad = run(str(installed / "openclaw-kit"), "validate", "inventories/bad.py", cwd=site, check=False)
    assert bad.returncode == 1
    assert "host gw9: admin_cidrs" in bad.stderr and "no host was changed" in bad.stderr, bad.stderr


def test_render_every_template_outside_the_checkout(site, installed):
    (site / "inventories" / "review.py").write_text(REVIEW_INVENTORY)
    run(str(installed / "openclaw-kit"), "render", "inventories/review.py", "review", cwd=site)
    rendered = set()
    for host in ("gw1.example.com", "gw2.example.com"):
        for line in (site / "review" / host / "templates.txt").read_text().splitlines():
            template, relative = line.split(" -> ")
            assert (site / "review" / host / relative).is_file(), line
            rendered.add(template)
    linux = {path for path in TEMPLATES if "/macos/" not in path and not path.startswith("templates/launchd/")}
    assert sorted(linux - NOT_ON_A_FRESH_DEBIAN_HOST - rendered) == []
    assert not rendered & NOT_ON_A_FRESH_DEBIAN_HOST, "now rendered: take it off NOT_ON_A_FRESH_DEBIAN_HOST"
    nginx = (site / "review" / "gw2.example.com" / "rendered" / "nginx" / "site.conf").read_text()
    assert "server_name gw2.example.com" in nginx
    assert "t" * 64 not in "".join(path.read_text() for path in (site / "review").rglob("*") if path.is_file())
    again = run(str(installed / "openclaw-kit"), "render", "inventories/review.py", "review", cwd=site, check=False)
    assert again.returncode == 2 and "an earlier render?" in again.stderr


def test_the_shipped_verify_checks_are_collected_from_the_wheel(site, installed):
    (site / "inventories" / "none.py").write_text("hosts = []\n")
    found = run(str(installed / "openclaw-kit"), "verify", "inventories/none.py", "--collect-only", "-q", cwd=site,
                check=False)
    output = found.stdout + found.stderr
    # Node ids relative to the wheel's kit files; every module of the checkout's tests/verify is there.
    for module in sorted((REPO / "tests" / "verify").glob("test_*.py")):
        assert f"tests/verify/{module.name}::" in output, output[-3000:]
    assert "error" not in output.lower(), output[-3000:]
    missing = run(str(installed / "openclaw-kit"), "verify", "inventories/missing.py", cwd=site, check=False)
    assert missing.returncode == 2 and "inventories/missing.py: no such inventory file" in missing.stderr


def test_token_and_versions_from_the_wheel(site, installed):
    token = run(str(installed / "openclaw-kit"), "token", cwd=site).stdout.strip()
    assert len(token) == 64 and int(token, 16) >= 0
    versions = run(str(installed / "openclaw-kit"), "versions", "--offline", cwd=site).stdout
    assert versions.startswith("Pinned by this kit") and "openclaw_version" in versions
