"""Role audit: whether auditd runs, decided on recorded facts, and the rules it loads."""

import re

from roles.audit import WATCHES, audit_skipped, rules

VM_CMDLINE = "BOOT_IMAGE=/vmlinuz-6.1.0-41-amd64 root=UUID=0b1c ro console=ttyS0"


def test_a_vm_runs_auditd():
    assert audit_skipped(enabled=True, container=None, cmdline=VM_CMDLINE) is None


def test_a_container_skips_it_saying_why():
    reason = audit_skipped(enabled=True, container="systemd-nspawn", cmdline=VM_CMDLINE)
    assert "systemd-nspawn container" in reason and "machine running" in reason


def test_a_kernel_booted_without_audit_skips_it():
    assert "audit=0" in audit_skipped(enabled=True, container=None, cmdline=VM_CMDLINE + " audit=0")
    assert audit_skipped(enabled=True, container=None, cmdline=VM_CMDLINE + " audit=1") is None


def test_the_setting_turns_it_off():
    assert audit_skipped(enabled=False, container=None, cmdline=VM_CMDLINE) == "auditd: false in settings"


def test_the_rules_watch_the_kits_files():
    text = rules()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [f"-w {path} -p wa -k {key}" for path, key, _ in WATCHES]
    watched = {path for path, _, _ in WATCHES}
    assert {"/etc/openclaw", "/var/lib/openclaw/openclaw.json", "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d",
            "/etc/nftables.conf", "/etc/cron.d", "/etc/crontab", "/etc/openclaw-kit"} <= watched
    # No -e 2: locked rules could not be changed by the next deploy without a reboot; no -D: the package's stay.
    assert not re.search(r"^-[eD]", text, re.M)
    assert all(not path.endswith("/") and re.fullmatch(r"openclaw-kit-[a-z]+", key) for path, key, _ in WATCHES)
