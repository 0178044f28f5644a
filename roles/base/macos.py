"""Role base on macOS: the Application Firewall in stealth mode, automatic security updates, power
settings for a server, and FileVault's state reported (the sshd drop-in is roles/base/sshd.py's,
on every platform). Tested on recorded facts of a macOS 15 host, not on a Mac.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FactBase
from pyinfra.operations import server

from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render

# The drop-in for macOS' OpenSSH: no DebianBanner, no Banner (the kit writes no /etc/issue.net here).
SSHD_TEMPLATE = "macos/sshd.conf.j2"
SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
SOFTWARE_UPDATE = "/Library/Preferences/com.apple.SoftwareUpdate"
# Check, download and install security responses and system data files (XProtect, ...) by
# themselves; full macOS updates, which restart the Mac, stay the admin's decision.
UPDATE_KEYS = ("AutomaticCheckEnabled", "AutomaticDownload", "CriticalUpdateInstall", "ConfigDataInstall")
# pmset -a: never sleep (the disk neither), wake for network access, restart after a power failure;
# systemsetup: restart after a freeze.
POWER = {"sleep": "0", "disksleep": "0", "womp": "1", "autorestart": "1", "restartfreeze": "on"}
# The settings this Mac did not keep when the kit set them (templates/base/macos/power-settings.sh.j2).
NOT_KEPT = "/var/db/openclaw-kit/power-settings-not-kept"


class FirewallState(FactBase):
    """The Application Firewall: {"enabled": bool, "stealth": bool}."""

    def command(self) -> str:
        return f"{SOCKETFILTERFW} --getglobalstate; {SOCKETFILTERFW} --getstealthmode"

    def process(self, output):
        # State 1: on; State 2: on, blocking all incoming connections. Stealth mode: "Firewall stealth mode is
        # on", or "Stealth mode enabled" from older releases (fixtures/macos15_arm64/README.md).
        text = " ".join(output).lower()
        return {"enabled": "state = 1" in text or "state = 2" in text,
                "stealth": "stealth mode is on" in text or "stealth mode enabled" in text}


class UpdateSettings(FactBase):
    """The automatic-update keys of com.apple.SoftwareUpdate that are on (1)."""

    def command(self) -> str:
        return "; ".join(f'echo "{key} $(defaults read {SOFTWARE_UPDATE} {key} 2>/dev/null)"' for key in UPDATE_KEYS)

    def process(self, output) -> set[str]:
        return {words[0] for words in (line.split() for line in output) if len(words) == 2 and words[1] == "1"}


class PowerSettings(FactBase):
    """pmset -g as {setting: value}, and restartfreeze from systemsetup."""

    def command(self) -> str:
        return "pmset -g; systemsetup -getrestartfreeze 2>/dev/null || true"

    def process(self, output) -> dict[str, str]:
        found = {}
        for line in output:
            if line.startswith("Restart After Freeze:"):
                found["restartfreeze"] = line.split(":", 1)[1].strip().lower()
            elif line.startswith(" ") and len(line.split()) >= 2:
                key, value = line.split()[:2]
                found[key] = value
        return found


class NotKeptSettings(FactBase):
    """The power settings this Mac did not keep when the kit set them (one name a line in NOT_KEPT)."""

    def command(self) -> str:
        return f"cat {NOT_KEPT} 2>/dev/null || true"

    def process(self, output) -> set[str]:
        return {line.strip() for line in output if line.strip()}


class FileVault(FactBase):
    """fdesetup status' first line."""

    def command(self) -> str:
        return "fdesetup status"

    def process(self, output):
        return output[0].strip() if output else None


def apply(settings: HostSettings) -> None:
    firewall = host.get_fact(FirewallState) or {}
    if not firewall.get("enabled") or not firewall.get("stealth"):
        server.shell(name="Application Firewall on, in stealth mode (no answer to pings and probes of closed ports)",
                     commands=[f"{SOCKETFILTERFW} --setglobalstate on", f"{SOCKETFILTERFW} --setstealthmode on"])

    missing = [key for key in UPDATE_KEYS if key not in (host.get_fact(UpdateSettings) or set())]
    if missing:
        server.shell(name=f"Automatic security updates on ({', '.join(missing)})",
                     commands=[f"defaults write {SOFTWARE_UPDATE} {key} -bool true" for key in missing])

    power = host.get_fact(PowerSettings) or {}
    not_kept = host.get_fact(NotKeptSettings) or set()
    for key in sorted(not_kept & POWER.keys()):
        logger.warning(f"[{host.name}] this Mac did not keep {key} {POWER[key]} when the kit set it (read back, "
                       f"recorded in {NOT_KEPT}); accepted as it is ({key} {power.get(key, 'not listed')}) and not "
                       "applied again: remove that line to try again")
    wrong = {key: value for key, value in POWER.items() if power.get(key) != value and key not in not_kept}
    if wrong:
        server.shell(name="Power settings for a server: " + ", ".join(f"{k} {v}" for k, v in wrong.items()),
                     commands=[power_script(wrong)])

    report_filevault(host.get_fact(FileVault))


def power_script(settings: dict[str, str]) -> str:
    return render("base", "macos/power-settings.sh.j2", settings=settings, not_kept=NOT_KEPT)


def reload_sshd(dropin_op) -> None:
    """Nothing to reload: launchd starts sshd per connection (Remote Login), so the next one reads the new drop-in."""


def report_filevault(status: str | None) -> None:
    """FileVault is the owner's choice; what it means for a server is said on every run."""
    if status and "FileVault is On" in status:
        logger.warning(f"[{host.name}] FileVault is on: after a restart this Mac waits at the unlock screen and the "
                       "gateway does not start until someone unlocks it. For planned restarts use "
                       "`sudo fdesetup authrestart` (docs/macos.md).")
    else:
        logger.info(f"[{host.name}] FileVault: {status or 'state unknown'}")
