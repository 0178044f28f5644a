"""The supported distributions as the kit reads them from a host's facts (pyinfra's fake connector
with recorded /etc/os-release files): an unsupported release stops the whole run before any host is
changed; the supported ones get their platform table row."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.fake_host import ENV, FACTS, SETTINGS

REPO = Path(__file__).resolve().parents[2]

# ID, VERSION_ID, VERSION_CODENAME as the releases' own /etc/os-release files have them.
OS_RELEASE = {
    "Debian 11": ("debian", "11", "bullseye"),
    "Debian 12": ("debian", "12", "bookworm"),
    "Debian 13": ("debian", "13", "trixie"),
    "Ubuntu 22.04": ("ubuntu", "22.04", "jammy"),
    "Ubuntu 24.04": ("ubuntu", "24.04", "noble"),
    "Ubuntu 24.10": ("ubuntu", "24.10", "oracular"),
}


def facts(release: str) -> dict:
    distro, version, codename = OS_RELEASE[release]
    name = "Debian GNU/Linux" if distro == "debian" else "Ubuntu"
    os_release = ["/etc/os-release", f'NAME="{name}"', f"ID={distro}", f'VERSION_ID="{version}"',
                  f"VERSION_CODENAME={codename}", "---"]
    return {**FACTS, "-release": os_release}


def pyinfra(tmp_path, hosts: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """pyinfra ARGS against fake hosts (name -> the release its os-release names), deploying deploy.py."""
    entries = [(f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": facts(release),
                                  **SETTINGS}) for name, release in hosts.items()]
    (tmp_path / "inventory.py").write_text(f"hosts = {entries!r}\n")
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", *args, str(tmp_path / "inventory.py"), "deploy.py"],
                          cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("release", ["Debian 11", "Ubuntu 22.04", "Ubuntu 24.10"])
def test_an_unsupported_release_beside_a_supported_host_stops_the_run_before_any_change(release, tmp_path):
    run = pyinfra(tmp_path, {"good": "Debian 12", "bad": release})
    output = run.stdout + run.stderr
    assert run.returncode != 0
    distro = release.split()[0]
    assert (f"host @fake/bad: operating system = '{distro}': Linux {release} is not supported: "
            "the kit supports Debian 12, Debian 13, Ubuntu 24.04") in output, output[-3000:]
    assert "1 settings problem; no host was changed" in output
    assert "@fake/good" not in output.split("no host was changed", 1)[1], "only the bad host is named"
    assert "Beginning operation run" not in output


@pytest.mark.parametrize("release", ["Debian 12", "Debian 13", "Ubuntu 24.04"])
def test_a_supported_release_is_deployed_with_its_own_row(release, tmp_path):
    run = pyinfra(tmp_path, {"gw1": release}, "--dry", "--json")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    planned = [op["name"] for op in json.loads(run.stdout[run.stdout.index("{"):])["plan"]]
    # The row's code name: Ubuntu's 24.04 is told from its 24.10 by the minor version.
    assert f"base | apt sources: add the security suite {OS_RELEASE[release][2]}-security" in planned


def test_no_role_or_template_branches_on_the_distribution():
    """What differs between the distributions is a field of the platform table, not a branch in a role."""
    role_code = [path for path in (REPO / "roles").rglob("*.py") if "LinuxDistribution" in path.read_text()]
    assert role_code == []
    branches = [path for path in (REPO / "templates").rglob("*.j2")
                if re.search(r"{%-?\s*(if|elif)\b[^%]*(distribution|Debian|Ubuntu|codename)", path.read_text())]
    assert branches == []
