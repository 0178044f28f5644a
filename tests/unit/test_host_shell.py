"""Every shell script the kit places on or runs on a host, found by itself (tests/unit/host_files.py), in its dialect.

/bin/sh scripts (and the .sh.j2 fragments pyinfra runs with `sh -c`): shellcheck -s sh and a parse by
dash, Debian's /bin/sh and the strictest common one. bash scripts: shellcheck -s bash. Those a Mac may
run: nothing bash 3.2 lacks (macOS's /bin/bash). What the scripts do is run in test_scripts.py and the
roles' own tests.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.unit.bash32 import bash4_constructs
from tests.unit.host_files import host_files, renderings, sampled_templates

SHELLCHECK = shutil.which("shellcheck")
DASH = shutil.which("dash")
SCRIPTS = [host_file for host_file in host_files() if host_file.kind in ("sh", "bash")]


def placed(text: str, kind: str) -> str:
    """A fragment as `sh -c` runs it; a script as it is."""
    return text if text.startswith("#!") else f"#!/bin/{kind}\n{text}"


def variants() -> list:
    return [pytest.param(host_file, placed(text, host_file.kind), id=f"{host_file.name}[{variant}]")
            for host_file in SCRIPTS for variant, text in renderings(host_file).items()]


def test_the_scripts_are_found_and_every_sampled_template_is_one():
    names = {host_file.name.removeprefix("templates/") for host_file in host_files()}
    assert {"firewall/openclaw-kit-firewall-apply.j2", "wireguard/make-key.sh.j2", "backup/openclaw-kit-restic.j2",
            "openclaw/macos/user-agent-handover.sh.j2", "launchd/reload.sh.j2", "base/macos/power-settings.sh.j2",
            "firewall/macos/openclaw-kit-firewall-apply.j2", "firewall/macos/pf-conf-reference.sh.j2"} <= names
    # launchd's scripts run on a Mac only, and are checked for bash 3.2 as all a Mac runs.
    found = {host_file.name: host_file for host_file in host_files()}
    assert found["templates/launchd/reload.sh.j2"].families == {"macos"}
    assert found["templates/operations/check-then-promote.sh.j2"].on_macos
    # A sample for a template that is no longer found (renamed, or its shebang lost) checks nothing.
    assert sampled_templates() <= names


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed (./kit installs it)")
@pytest.mark.parametrize("host_file, text", variants())
def test_shellcheck_passes_in_the_scripts_dialect(host_file, text, tmp_path):
    (tmp_path / "script").write_text(text)
    checked = subprocess.run([SHELLCHECK, "--severity=style", "-s", host_file.kind, str(tmp_path / "script")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.skipif(DASH is None, reason="dash is not installed (./kit installs it)")
@pytest.mark.parametrize("host_file, text", [param for param in variants() if param.values[0].kind == "sh"])
def test_a_sh_script_parses_in_dash(host_file, text, tmp_path):
    (tmp_path / "script").write_text(text)
    parsed = subprocess.run([DASH, "-n", str(tmp_path / "script")], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize("host_file, text", [param for param in variants() if param.values[0].on_macos])
def test_a_script_a_mac_runs_needs_nothing_newer_than_bash_32(host_file, text):
    assert bash4_constructs(text) == []


# --- the bash 3.2 check itself ------------------------------------------------------------------------------

BASH_32_SCRIPT = """#!/bin/bash
set -euo pipefail
names=(a b)
last=${names[${#names[@]}-1]}
lower=$(printf '%s' "$last" | tr '[:upper:]' '[:lower:]')
case "$lower" in a) echo one ;; *) echo other ;; esac
echo "${lower:-none}" >/dev/null 2>&1
# mapfile in a comment is no code
python3 - <<'PY'
print(f"{1:,}")
names = {"a": 1}
PY
echo done &
wait
"""


def test_a_bash_32_script_passes():
    assert bash4_constructs(BASH_32_SCRIPT) == []


@pytest.mark.parametrize("line", [
    "mapfile -t lines < file", "readarray lines < file", 'echo "${name,,}"', 'echo "${name^^}"', "echo ${name^}",
    "declare -A seen", "local -n ref=$1", "declare -g x=1", "cmd &>> log", "cmd |& tee log", "  a) echo ;&",
    "  a) echo ;;&", 'echo "${name@Q}"', 'echo "${list[-1]}"', "coproc cat", "exec {fd}>file", "shopt -s globstar",
    "wait -n", "[[ -v name ]]", "printf '%(%F)T' -1", "echo $EPOCHSECONDS",
])
def test_a_construct_bash_32_lacks_is_found(line):
    found = bash4_constructs(BASH_32_SCRIPT.replace("echo done &", line))
    assert len(found) == 1 and found[0].startswith("line 13: "), found
