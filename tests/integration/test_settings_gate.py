"""Bad settings anywhere stop the whole run before any host is changed, with every problem listed."""

import pytest

from roles.openclaw import ENV_FILE
from tests.integration.conftest import run_pyinfra, ssh

pytestmark = pytest.mark.sandbox

BAD_INVENTORY = """
from sandbox import load_state

_state = load_state()
_first, _second = _state["hosts"][0], _state["hosts"][1]

sandbox = (
    [
        (_first["address"], {{"domain": "first.openclaw.test", "sshd_port": 2222, "gateway_port": 2222}}),
        (_second["address"], {{"domain": "bad_domain", "gateway_port": 22,
                               "channels": {{"telegram": {{"bot_token": "${{OPENCLAW_GATEWAY_TOKEN}}", "allow_from": []}}}}}}),
    ],
    {{
        "ssh_user": _state["ssh_user"], "ssh_key": _state["ssh_key"],
        "ssh_known_hosts_file": _state["known_hosts"], "ssh_strict_host_key_checking": "yes",
        "admin_cidrs": ["{gateway}/32"], "admin_email": "admin@openclaw.test", "proxy": _state["proxy"],
    }},
)
"""


@pytest.fixture
def debian_11_on_second_host(sandbox_state):
    """Make the second host claim Debian 11 for the length of the test (a real fact, really read)."""
    bad = sandbox_state["hosts"][1]["address"]
    ssh(sandbox_state, bad, "sed 's/^VERSION_ID=.*/VERSION_ID=\"11\"/' /usr/lib/os-release > /etc/os-release.kit && mv /etc/os-release.kit /etc/os-release")
    yield
    ssh(sandbox_state, bad, "ln -sfn ../usr/lib/os-release /etc/os-release")


def test_bad_settings_mean_zero_changes_everywhere(sandbox_state, kit_env, tmp_path, debian_11_on_second_host):
    first, second = (host["address"] for host in sandbox_state["hosts"][:2])
    # Something the deploy would change on the first host, were it allowed to run.
    ssh(sandbox_state, first, f"rm -f {ENV_FILE}")
    inventory = tmp_path / "bad_inventory.py"
    inventory.write_text(BAD_INVENTORY.format(gateway=sandbox_state["gateway"]))

    run = run_pyinfra(kit_env, inventory=str(inventory))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"host {first}: gateway_port = 2222: clashes with sshd_port on port 2222" in output
    assert f"host {second}: domain = 'bad_domain': must be a fully qualified domain name" in output
    assert f"host {second}: gateway_port = 22: Input should be greater than or equal to 1024" in output
    assert f"host {second}: channels.telegram.allow_from = []: an enabled channel needs an allowlist" in output
    assert f"host {second}: operating system = 'Debian': Linux Debian 11 is not supported" in output
    assert "Beginning operation run" not in output
    assert ssh(sandbox_state, first, f"test -e {ENV_FILE}", check=False).returncode != 0, "a host was changed"
