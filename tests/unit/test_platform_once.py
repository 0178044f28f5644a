"""The platform is read once per host: every placed file asks for it (its root group), and pyinfra
runs a fact's command on every get_fact."""

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.context import ctx_host, ctx_state

from openclaw_kit.platform import platform_of
from tests.unit.fake_host import FACTS


def test_the_platform_is_read_once_per_host():
    inventory = Inventory(([("@fake/gw1", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FACTS}),
                            ("@fake/gw2", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FACTS})], {}))
    state = State(inventory, Config())
    connect_all(state)
    for name in ("@fake/gw1", "@fake/gw2"):
        host = inventory.get_host(name)
        with ctx_state.use(state), ctx_host.use(host):
            assert [platform_of(host).root_group for _ in range(3)] == ["root"] * 3
        asked = host.connector.executed_commands
        assert sum("uname -s" in command for command in asked) == 1, asked
        assert sum("-release" in command for command in asked) == 1, asked
