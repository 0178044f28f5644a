"""Facts more than one role decides on."""

from __future__ import annotations

from pyinfra.api import FactBase


class Container(FactBase):
    """The container this host runs in (systemd-detect-virt --container), or None on a VM or bare metal.

    Role base skips what belongs to the shared kernel there, role audit skips auditd."""

    def command(self):
        return "systemd-detect-virt --container || true"

    def process(self, output):
        found = "".join(output).strip()
        return None if found in ("", "none") else found
