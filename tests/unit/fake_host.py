"""An inventory of one pyinfra fake-connector host that looks like a fresh Debian 12 server."""

import pytest

from openclaw_kit.settings import SettingsError, validate_hosts

ENV = {"OPENCLAW_GATEWAY_TOKEN": "t" * 64}

FACTS = {
    "uname -s": "Linux",
    "uname -m": "x86_64",
    "command -v useradd": "/usr/sbin/useradd",
    "-release": ["/etc/os-release", 'NAME="Debian GNU/Linux"', "ID=debian", 'VERSION_ID="12"', "---"],
}
SETTINGS = {"domain": "gw1.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["10.0.0.0/8"]}


def fake_inventory(**settings) -> str:
    """The inventory file's text; `settings` are added to the host's kit settings."""
    data = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FACTS, **SETTINGS, **settings}
    return f"hosts = [('@fake/gw1', {data!r})]\n"


def one_problem(good: dict, data: dict, setting: str) -> str:
    """The one settings problem of host gw1 with `good` settings changed by `data`; it names `setting`."""
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw1": {**good, **data}}, ENV)
    found = caught.value.problems
    assert len(found) == 1, found
    assert found[0].startswith(f"host gw1: {setting} = "), found[0]
    return found[0]
