"""The firewall on macOS: the pf anchor `openclaw-kit`, from the same data as the nftables table.

The anchor's rules come from policy.ruleset_data (one policy, two syntaxes; tests/unit/test_macos.py
checks both allow the same things). /etc/pf.conf gets two lines referencing the anchor, after
Apple's com.apple anchors, which stay as they are, so that Apple's com.apple.pfctl, which loads it at
boot, keeps the anchor. But pf's main ruleset is the kit's own file, MAIN (Apple's anchors, then the
kit's), which nothing of Apple's writes, unlike /etc/pf.conf (macOS updates reset it). A LaunchDaemon
loads MAIN and enables pf at boot, and for a while puts MAIN back should com.apple.pfctl load
/etc/pf.conf after it, stripped of the kit's lines.
templates/firewall/macos/openclaw-kit-firewall-apply.j2 checks new rules with `pfctl -n`,
loads them with a launchd one-shot armed to roll them back, and keeps them only when `--confirm`
arrives over a new SSH connection (openclaw_kit.ssh_confirm), as on Linux.
"""

from __future__ import annotations

import hashlib
import io

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File, FindInFile
from pyinfra.operations import files, server

from openclaw_kit import launchd
from openclaw_kit.operations import checked_config, promote_files_command
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, template
from roles.firewall.policy import CONFIRM_SECONDS, load_and_confirm, ruleset_data

ANCHOR = "openclaw-kit"
APPLY = "/usr/local/sbin/openclaw-kit-firewall-apply"
PF_CONF = "/etc/pf.conf"
PERSISTED = f"/etc/pf.anchors/{ANCHOR}"  # what pf.conf loads at boot; written on confirmation only
STATE_DIR = "/var/db/openclaw-kit/firewall"
DESIRED = f"{STATE_DIR}/{ANCHOR}.pf"  # the rendered rules, waiting to be applied
MARKER = f"{STATE_DIR}/applied"  # "<sha256 of PERSISTED> <fingerprint of the live anchor>" at confirmation
RUN_DIR = "/var/run/openclaw-kit-firewall"  # emptied at boot: a pending rollback does not outlive a reboot
BOOT_LABEL = "org.openclaw-kit.firewall"
ROLLBACK_LABEL = "org.openclaw-kit.firewall-rollback"
FINGERPRINT = f"pfctl -a {ANCHOR} -sr 2>/dev/null | shasum -a 256 | cut -c1-64"
# The main ruleset references the anchor: `pfctl -sr` lists it as `anchor "openclaw-kit" all`.
REFERENCED = f"pfctl -sr 2>/dev/null | grep -c '^anchor \"{ANCHOR}\"'"
# Appended to Apple's pf.conf; its com.apple lines are not touched.
PF_CONF_LINES = [f'anchor "{ANCHOR}"', f'load anchor "{ANCHOR}" from "{PERSISTED}"']
# The anchor points of Apple's /etc/pf.conf (tests/unit/fixtures/macos15_arm64/pf.conf): its
# services load their rules under com.apple/, so the main ruleset must keep them.
APPLE_ANCHORS = [
    'scrub-anchor "com.apple/*"',
    'nat-anchor "com.apple/*"',
    'rdr-anchor "com.apple/*"',
    'dummynet-anchor "com.apple/*"',
    'anchor "com.apple/*"',
    'load anchor "com.apple" from "/etc/pf.anchors/com.apple"',
]
MAIN_DIR = "/etc/openclaw-kit"
MAIN = f"{MAIN_DIR}/pf.conf"  # pf's main ruleset, loaded at boot: Apple's anchors and the kit's
CANDIDATE_DIR = f"{STATE_DIR}/candidate"
BOOT_LOG = "/var/log/openclaw-kit-firewall.log"
BOOT_CHECKS, BOOT_CHECK_SECONDS = 60, 5  # how long the boot job watches for Apple's pf.conf load


def apply(settings: HostSettings):
    # Not there on a fresh Apple-silicon Mac (Homebrew lives in /opt/homebrew).
    files.directory(name="Directory /usr/local/sbin", path="/usr/local/sbin", mode="755", user="root", group="wheel")
    files.directory(name=f"Firewall state directory {STATE_DIR}", path=STATE_DIR, mode="700", group="wheel")
    template(
        name=f"Apply script {APPLY}",
        role="firewall",
        src="macos/openclaw-kit-firewall-apply.j2",
        dest=APPLY,
        mode="750",
        **script_data(),
    )
    rules = ruleset(settings)
    files.put(name=f"Desired pf rules {DESIRED}", src=io.StringIO(rules), dest=DESIRED, mode="600", group="wheel",
              create_remote_dir=False)

    # The main ruleset references the anchor before the first load (rules in an anchor nothing
    # references are never evaluated, and a confirmation would prove nothing). Until a ruleset is
    # confirmed the anchor file is empty: no kit rules, as before the kit.
    if not host.get_fact(File, path=PERSISTED):
        server.shell(name=f"Empty anchor file {PERSISTED} until rules are confirmed",
                     commands=[f"install -m 644 -o root -g wheel /dev/null {PERSISTED}"])
    status = host.get_fact(PfStatus)
    # A new MAIN is loaded before it replaces the old one (a refused load, pfctl's `Resource busy`,
    # leaves both as they were); an unchanged one is loaded again when the running ruleset does not
    # reference the anchor (after a `pfctl -f /etc/pf.conf` that an update stripped of the kit's lines).
    files.directory(name=f"Directory {MAIN_DIR}", path=MAIN_DIR, mode="755", user="root", group="wheel")
    candidate = f"{CANDIDATE_DIR}/pf.conf"
    checked_config(
        name=f"pf's main ruleset {MAIN}: Apple's anchors and the kit's, checked with pfctl -n, loaded, then made live",
        files={"pf.conf": main_ruleset()},
        live_dir=MAIN_DIR,
        candidate_dir=CANDIDATE_DIR,
        check=f"pfctl -n -f {candidate}",
        rejected=f"pfctl -n rejected the new {MAIN}; the running rules and {MAIN} are unchanged",
        promote=f"{APPLY} --load-main {candidate} && {promote_files_command(['pf.conf'], MAIN_DIR, CANDIDATE_DIR)}",
        user="root",
        group="wheel",
        force=(status or {}).get("referenced") != "1",
    )
    present = host.get_fact(FindInFile, path=PF_CONF, pattern=f'^(load )?anchor "{ANCHOR}"', extended_regex=True)
    if not set(PF_CONF_LINES) <= set(present or []):
        server.shell(
            name=f"{PF_CONF} references the anchor {ANCHOR} (Apple's lines untouched), checked with pfctl -n",
            commands=[render("firewall", "macos/pf-conf-reference.sh.j2", pf_conf=PF_CONF, lines=PF_CONF_LINES)],
        )

    # Apply only when the live anchor, the persisted file or the record of the last confirmation
    # differs from the rendered rules, or pf is off: a no-op run stays one, hand edits are undone.
    if not in_sync(status, rules):
        load_and_confirm(f"Load the pf anchor {ANCHOR} (rolled back in {CONFIRM_SECONDS} s unless confirmed)",
                         APPLY, DESIRED)

    launchd.daemon(name="pf enabled with the kit's anchor at boot", label=BOOT_LABEL, plist=boot_plist())


def main_ruleset() -> str:
    return "".join(f"{line}\n" for line in [
        f"# Managed by openclaw-kit (roles/firewall/pf.py): pf's main ruleset, loaded at boot instead of {PF_CONF}.",
        *APPLE_ANCHORS, *PF_CONF_LINES])


def boot_plist() -> dict:
    return {"Label": BOOT_LABEL, "ProgramArguments": [APPLY, "--boot"], "RunAtLoad": True,
            "StandardErrorPath": BOOT_LOG}


# --- the rules -----------------------------------------------------------------------------------


def ruleset(settings: HostSettings) -> str:
    """The kit's pf anchor for these settings, as the file pfctl loads."""
    return render("firewall", "macos/openclaw-kit.pf.j2", **pf_data(settings))


def pf_data(settings: HostSettings) -> dict:
    """The policy's data with pf's interface syntax (`on en0`, `on ! en1`)."""
    data = ruleset_data(settings)
    if settings.public_interface:
        public_on = f"on {settings.public_interface} "
    elif settings.private_interface:
        public_on = f"on ! {settings.private_interface} "
    else:
        public_on = ""
    return dict(
        data,
        anchor=ANCHOR,
        main=MAIN,
        public_on=public_on,
        private_on=f"on {settings.private_interface} " if settings.private_interface else "",
    )


def script_data() -> dict:
    return dict(path=APPLY, anchor=ANCHOR, run_dir=RUN_DIR, persisted=PERSISTED, marker=MARKER, main=MAIN,
                rollback_label=ROLLBACK_LABEL, fingerprint=FINGERPRINT, default_timeout=CONFIRM_SECONDS,
                boot_checks=BOOT_CHECKS, boot_check_seconds=BOOT_CHECK_SECONDS)


# --- is the live anchor the rendered one? --------------------------------------------------------


class PfStatus(FactBase):
    """The persisted anchor file's sha256, the record of the last confirmation, the live anchor's
    fingerprint, whether pf is enabled (1) or not (0), and whether the running main ruleset
    references the anchor (1) or not (0)."""

    def requires_command(self) -> str:
        return "pfctl"

    def command(self) -> str:
        return (
            f'echo "persisted $(shasum -a 256 < {PERSISTED} 2>/dev/null | cut -c1-64)"; '
            f'echo "marker $(cat {MARKER} 2>/dev/null)"; '
            f'echo "live $({FINGERPRINT})"; '
            "echo \"enabled $(pfctl -s info 2>/dev/null | grep -c '^Status: Enabled')\"; "
            f'echo "referenced $({REFERENCED})"'
        )

    def process(self, output) -> dict[str, str]:
        return {key: value.strip() for key, _, value in (line.partition(" ") for line in output)}


def in_sync(status: dict | None, rules: str) -> bool:
    """True when the confirmed, persisted and live anchor all are `rules`, and pf is on."""
    if not status:
        return False
    sha = hashlib.sha256(rules.encode()).hexdigest()
    return (status.get("persisted") == sha and status.get("marker") == f"{sha} {status.get('live')}"
            and status.get("enabled") == "1")
