"""Every Python file the kit runs on a host (and every program a script hands to python3), under the oldest
Python of each platform family that runs it.

A host runs them with its own /usr/bin/python3: 3.9 on a Mac (the Command Line Tools'), 3.11 on
Debian 12. Where this machine has that interpreter (pyenv carries several) each file is imported by it
and the config merge tool run with it; vermin, a static minimum-version check, runs always.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_kit import jsonconfig
from openclaw_kit.platform import PLATFORMS
from tests.unit.host_files import embedded_python, host_files, renderings

# The python3 a platform's host runs the kit's files with (/usr/bin/python3 as the release ships it).
HOST_PYTHON = {
    "Debian 12": (3, 11), "Debian 13": (3, 13), "Ubuntu 24.04": (3, 12),
    "macOS 14 Sonoma": (3, 9), "macOS 15 Sequoia": (3, 9), "macOS 26 Tahoe": (3, 9),
}
PYTHON_FILES = [host_file for host_file in host_files() if host_file.kind == "python"]
# Shell scripts that hand a program to python3 (a snippet in `python3 -c` or a here-document).
WITH_PYTHON = [host_file for host_file in host_files() if host_file.kind in ("sh", "bash")
               and any(embedded_python(text) for text in renderings(host_file).values())]


def oldest(family: str) -> tuple[int, int]:
    return min(HOST_PYTHON[platform.label] for platform in PLATFORMS.values() if platform.family == family)


def interpreter(version: tuple[int, int]) -> str | None:
    """This machine's python<major.minor>: one of pyenv's versions, or on PATH (not a pyenv shim, which
    answers only for the versions pyenv has selected)."""
    name = "python%d.%d" % version
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip())
    pattern = re.compile(r"%d\.%d\.\d+$" % version)
    for root in filter(None, roots):
        for directory in sorted(Path(root, "versions").glob("*"), reverse=True):
            if pattern.match(directory.name) and (directory / "bin" / name).is_file():
                return str(directory / "bin" / name)
    path = os.pathsep.join(entry for entry in os.environ["PATH"].split(os.pathsep) if Path(entry).name != "shims")
    return shutil.which(name, path=path)


def cases(files: list) -> list:
    return [pytest.param(host_file, version, id=f"{host_file.name}-python{version[0]}.{version[1]}")
            for host_file in files for version in sorted({oldest(family) for family in host_file.families})]


def vermin_finds_nothing_newer(version: tuple[int, int], paths: list[Path]) -> None:
    vermin = shutil.which("vermin", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert vermin, "vermin is not installed: it is in the test extra (./kit test installs it)"
    # Annotations as Python evaluates them without `from __future__ import annotations`; union-types: `X | Y`.
    checked = subprocess.run([vermin, "--no-tips", "--violations", "--eval-annotations", "--feature", "union-types",
                              "-t=%d.%d-" % version, *map(str, paths)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_platform_says_which_python_its_hosts_run():
    assert {platform.label for platform in PLATFORMS.values()} == set(HOST_PYTHON)
    assert {host_file.name for host_file in PYTHON_FILES} >= {"openclaw_kit/jsonconfig.py", "templates/logs/openclaw-kit-job.j2"}
    assert {"jsonconfig-3.9", "jsonconfig-3.11"} <= {f"{Path(p.values[0].name).stem}-{p.values[1][0]}.{p.values[1][1]}"
                                                     for p in cases(PYTHON_FILES)}
    assert "templates/backup/openclaw-kit-restore.j2" in {host_file.name for host_file in WITH_PYTHON}


def rendered(host_file, tmp_path: Path) -> list[Path]:
    paths = []
    for number, text in enumerate(renderings(host_file).values()):
        path = tmp_path / f"{Path(host_file.name).name.removesuffix('.j2').removesuffix('.py').replace('-', '_')}_{number}.py"
        path.write_text(text)
        paths.append(path)
    return paths


@pytest.mark.parametrize("host_file, version", cases(PYTHON_FILES))
def test_the_file_imports_under_the_oldest_python_that_runs_it(host_file, version, tmp_path):
    python = interpreter(version)
    if python is None:
        pytest.skip("no python%d.%d on this machine (pyenv install it)" % version)
    for path in rendered(host_file, tmp_path):
        # Imported, not run: the module's top level (imports, definitions, annotations) executes.
        imported = subprocess.run([python, "-c", f"import sys; sys.path.insert(0, sys.argv[1]); import {path.stem}", str(tmp_path)],
                                  capture_output=True, text=True, timeout=60)
        assert imported.returncode == 0, f"{host_file.name} under {python}:\n{imported.stderr}"


@pytest.mark.parametrize("version", sorted({oldest(family) for family in ("debian", "macos")}), ids=lambda v: "python%d.%d" % v)
def test_the_config_merge_tool_merges_and_digests_under_the_oldest_python(version, tmp_path):
    python = interpreter(version)
    if python is None:
        pytest.skip("no python%d.%d on this machine (pyenv install it)" % version)
    desired, live, out = tmp_path / "desired.json", tmp_path / "live.json", tmp_path / "out.json"
    desired.write_text('// the kit\'s\n{"gateway": {"port": 1}}\n')
    live.write_text('{"gateway": {"port": 2}, "meta": {}}')
    merged = subprocess.run([python, jsonconfig.__file__, str(desired), str(live), str(out)], capture_output=True, text=True)
    assert merged.returncode == 0, merged.stderr
    assert json.loads(out.read_text()) == {"gateway": {"port": 1}, "meta": {}}
    digest = subprocess.run([python, jsonconfig.__file__, "--digest", str(out), "gateway"], capture_output=True, text=True)
    assert digest.stdout.strip() == jsonconfig.digest({"gateway": {"port": 1}}), digest.stderr


@pytest.mark.parametrize("host_file", PYTHON_FILES, ids=lambda host_file: host_file.name)
def test_vermin_finds_nothing_newer_than_the_oldest_python_that_runs_it(host_file, tmp_path):
    vermin_finds_nothing_newer(min(oldest(family) for family in host_file.families), rendered(host_file, tmp_path))


def snippets(host_file, tmp_path: Path) -> list[Path]:
    paths = []
    for text in renderings(host_file).values():
        for program in embedded_python(text):
            paths.append(tmp_path / f"snippet_{len(paths)}.py")
            paths[-1].write_text(program)
    return paths


@pytest.mark.parametrize("host_file, version", cases(WITH_PYTHON))
def test_the_python_a_script_runs_compiles_under_the_oldest_python_that_runs_it(host_file, version, tmp_path):
    python = interpreter(version)
    if python is None:
        pytest.skip("no python%d.%d on this machine (pyenv install it)" % version)
    for path in snippets(host_file, tmp_path):
        compiled = subprocess.run([python, "-m", "py_compile", str(path)], capture_output=True, text=True, timeout=60)
        assert compiled.returncode == 0, f"{host_file.name} under {python}:\n{path.read_text()}\n{compiled.stderr}"


@pytest.mark.parametrize("host_file", WITH_PYTHON, ids=lambda host_file: host_file.name)
def test_vermin_finds_nothing_newer_in_the_python_a_script_runs(host_file, tmp_path):
    vermin_finds_nothing_newer(min(oldest(family) for family in host_file.families), snippets(host_file, tmp_path))
