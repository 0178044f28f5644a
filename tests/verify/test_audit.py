"""Role audit: auditd watching the kit's files, where the kernel lets it run (not in a container)."""

import pytest

from roles.audit import RULES, WATCHES, audit_skipped


def test_auditd_watches_the_kits_files(target):
    container = target.host.run("systemd-detect-virt --container").stdout.strip()
    skipped = audit_skipped(enabled=target.settings.auditd, container=None if container in ("", "none") else container,
                            cmdline=target.host.file("/proc/cmdline").content_string)
    if skipped:
        assert not target.host.file(RULES).exists
        pytest.skip(f"auditd skipped: {skipped}")
    assert target.host.service("auditd").is_running
    assert target.host.service("auditd").is_enabled
    live = target.host.check_output("auditctl -l").splitlines()
    assert [f"-w {path} -p wa -k {key}" for path, key, _ in WATCHES if f"-w {path} -p wa -k {key}" not in live] == []
