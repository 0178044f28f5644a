"""systemd's rating of a service's sandbox, shared by the nginx and fail2ban checks."""

import re


def exposure(target, service: str) -> float:
    """`systemd-analyze security`'s overall exposure for the service: 0 (locked down) to 10 (none)."""
    output = target.host.check_output(f"systemd-analyze security --no-pager {service}")
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", output)
    assert found, output[-2000:]
    return float(found.group(1))
