"""Confirming a change that could cut SSH off (a new firewall) over a NEW SSH connection.

The deploy's own connection survives a ruleset that drops new connections (it is established), so
only a fresh one, made from the host's inventory data as pyinfra makes its own, proves the admin
can still get in. Without that proof the host rolls the change back by itself.
"""

from __future__ import annotations

import time

from pyinfra import logger
from pyinfra.api import StringCommand
from pyinfra.api.arguments import auth_argument_meta
from pyinfra.api.exceptions import ConnectError


def confirm_over_new_connection(state, host, confirm_command: str, probation_seconds: int) -> bool:
    """Run confirm_command over a NEW SSH connection within probation_seconds; without one, wait for the
    host's rollback and fail. For python.call (pyinfra passes state and host)."""
    started = time.monotonic()
    error = "no attempt"
    # Leave the last attempt (pyinfra's connect timeout) time to finish before the host's timer fires.
    while time.monotonic() - started < probation_seconds - state.config.CONNECT_TIMEOUT - 5:
        ok, error = _run_over_new_connection(state, host, confirm_command)
        if ok:
            return True
        if "nothing to confirm" in error:
            break  # the host already rolled back
        time.sleep(2)
    # The rollback fires probation_seconds after the load, which ended just before this call.
    time.sleep(max(0.0, probation_seconds + 5 - (time.monotonic() - started)))
    reachable, _ = _run_over_new_connection(state, host, "true")
    host.log_styled(
        f"the new firewall ruleset was NOT kept: no new SSH connection could confirm it within {probation_seconds} s "
        f"(last error: {error.strip().splitlines()[-1] if error.strip() else 'none'}). The host restored its previous "
        f"kit table by itself; a new SSH connection now {'works again' if reachable else 'STILL FAILS'}. "
        f"Nothing was persisted. Check admin_cidrs, sshd_port and public_interface.",
        fg="red", log_func=logger.error,
    )
    return False


def _run_over_new_connection(state, host, command: str) -> tuple[bool, str]:
    """Run command over a fresh SSH connection made from the host's inventory data, as pyinfra makes its own."""
    connector = host.connector_cls(state, host)
    connector.data = {**connector.data, "ssh_connect_retries": 0}
    # The deploy's own sudo/su settings (inventory, else command line), so the command runs as its commands do.
    auth = {key: host.data.get(key, meta.default(state.config)) for key, meta in auth_argument_meta.items()}
    try:
        connector.connect()
    except ConnectError as connect_error:
        return False, str(connect_error)
    try:
        ok, output = connector.run_shell_command(StringCommand(command), print_output=False, print_input=False,
                                                 _timeout=30, **auth)
        return ok, output.stderr
    except Exception as run_error:  # a connection that dies mid-command
        return False, str(run_error)
    finally:
        if connector.client is not None:
            connector.client.close()
