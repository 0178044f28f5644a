"""Sentinel secrets deployed to a real host under every verbose flag: zero hits in any output, the rotation named."""

import hashlib

import pytest

from roles.openclaw import ENV_FILE
from tests.integration.conftest import run_pyinfra, ssh

pytestmark = pytest.mark.sandbox

FLAGS = [["-v"], ["-vvv"], ["--debug"], ["--diff"], ["--diff", "-vvv", "--debug"], ["--json"], ["--debug-operations"],
         ["--debug-operations", "--json"]]
# These print the operations pyinfra generated, with their arguments, and stop before executing any.
PLAN_ONLY = "--debug-operations"


@pytest.mark.parametrize("flags", FLAGS, ids=[" ".join(f) for f in FLAGS])
def test_sentinel_secrets_never_reach_output(sandbox_state, kit_env, flags, tmp_path):
    host = sandbox_state["hosts"][0]["address"]
    # A new value every run, so each run really uploads a secret; --diff also sees a new file.
    sentinel = f"SENTINEL{hashlib.sha256(repr(flags).encode()).hexdigest()[:40]}"
    if "--diff" in flags:
        ssh(sandbox_state, host, f"rm -f {ENV_FILE}")
    env = {**kit_env, "OPENCLAW_GATEWAY_TOKEN": sentinel}

    run = run_pyinfra(env, *flags, "--limit", host)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "gateway.env" in output
    assert output.count("SENTINEL") == 0
    # Every run here is a rotation (a new value each time): named, by name only.
    assert "(changed: OPENCLAW_GATEWAY_TOKEN)" in output
    if PLAN_ONLY in flags:
        return

    # The secret did reach the host, in its 0600 file (compared by hash, never printed).
    expected = hashlib.sha256(f"OPENCLAW_GATEWAY_TOKEN='{sentinel}'\n".encode()).hexdigest()
    remote = ssh(sandbox_state, host, f"sha256sum {ENV_FILE}; stat -c %a:%U {ENV_FILE}").stdout.split()
    assert remote[0] == expected and remote[2] == "600:openclaw"


def test_restore_the_real_token(sandbox_state, kit_env):
    assert run_pyinfra(kit_env).returncode == 0
