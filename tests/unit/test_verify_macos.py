"""tests/verify/test_macos.py (the gateway's and base's checks) run here against recorded outputs of a
Mac, through a testinfra Host whose backend answers each command from a table: both layouts of
`launchctl print` (tabs, as reconstructed for macOS 15; spaces, as published for OS X 10.10), a
gateway loaded but not running, and drift each check must catch. There is no Mac here."""

from __future__ import annotations

import hashlib

import pytest
import testinfra.host
from testinfra.backend.base import BaseBackend

import tests.verify.test_macos as checks
from openclaw_kit import launchd
from openclaw_kit.templates import render
from roles.base import macos as base
from roles.openclaw import launchd as gateway
from tests.unit.macos_host import recorded
from tests.verify.conftest import Target

LABEL = gateway.LABEL


class RecordedBackend(BaseBackend):
    """Answers each command with the first response whose key is a substring of it; a command the
    table does not know fails the test (the checks run only the commands listed)."""

    NAME = "recorded"

    def __init__(self, responses: dict[str, str | tuple[int, str]]):
        self.responses = responses
        super().__init__("mini")

    def run(self, command: str, *args, **kwargs):
        command = self.quote(command, *args)
        for key, answer in self.responses.items():
            if key in command:
                rc, stdout = answer if isinstance(answer, tuple) else (0, answer)
                return self.result(rc, self.encode(command), stdout.encode(), b"")
        raise AssertionError(f"the recorded Mac has no answer to {command!r}")

    def start(self, command: str):
        return lambda: self.run(command)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest() + "  file"


def print_tabs(state: str = "running", pid: int | None = 4242) -> str:
    """launchctl print of the gateway in the tab-indented layout (the reconstructed macOS 15 fixture)."""
    text = recorded("launchctl-print-system-org.openclaw-kit.firewall.txt").replace("org.openclaw-kit.firewall", LABEL)
    text = text.replace("\tstate = not running", f"\tstate = {state}")
    return text.replace("\tlast exit code = 0\n", f"\tpid = {pid}\n\tlast exit code = 0\n") if pid else text


def print_spaces() -> str:
    """The same in the published, space-indented layout (OS X 10.10), as the gateway's."""
    return recorded("launchctl-print-published-osx10.10.txt").replace("dev.mysql", LABEL).replace("pid = 24784", "pid = 4242")


def settings():
    from tests.unit.test_macos_gateway import settings as gateway_settings
    return gateway_settings()


def converged_mac(s, **changes) -> dict:
    pmset = (recorded("pmset-g.txt").replace("autorestart          0", "autorestart          1")
             .replace("disksleep            10", "disksleep            0").replace("sleep                1", "sleep                0")
             .replace("Restart After Freeze: Off", "Restart After Freeze: On"))
    return {
        f"launchctl print system/{LABEL}": print_tabs(),
        "ps -o user= -p 4242": "_openclaw\n",
        f"shasum -a 256 {launchd.plist_path(LABEL)}": sha(launchd.plist_text(gateway.gateway_plist(s))),
        f"test -e {launchd.reload_pending_path(LABEL)}": "none\n",
        f"shasum -a 256 {gateway.NEWSYSLOG}": sha(render("openclaw", "macos/newsyslog.conf.j2", **gateway.newsyslog_data())),
        "pmset -g": pmset,
        f"cat {base.NOT_KEPT}": "",
        **changes,
    }


def target(responses: dict) -> Target:
    s = settings()
    return Target("mini", testinfra.host.Host(RecordedBackend(responses)), s, {})


GATEWAY_CHECKS = [checks.test_the_gateway_runs_as_a_launch_daemon_as_the_service_user,
                  checks.test_the_gateway_plist_is_the_rendered_one_and_no_reload_is_pending,
                  checks.test_the_gateways_logs_are_rotated,
                  checks.test_the_power_settings_are_those_of_a_server_or_recorded_as_not_kept]


@pytest.mark.parametrize("layout", [print_tabs, print_spaces], ids=["tab-indented", "space-indented (published)"])
def test_a_converged_mac_passes_every_gateway_and_power_check_in_either_layout(layout):
    mac = target(converged_mac(settings(), **{f"launchctl print system/{LABEL}": layout()}))
    for check in GATEWAY_CHECKS:
        check(mac)


def test_a_gateway_loaded_but_not_running_fails_verify():
    mac = target(converged_mac(settings(), **{f"launchctl print system/{LABEL}": print_tabs("not running", None)}))
    with pytest.raises(AssertionError, match=f"{LABEL} is loaded but not running"):
        checks.test_the_gateway_runs_as_a_launch_daemon_as_the_service_user(mac)


def test_a_gateway_that_is_not_loaded_fails_verify():
    missing = (113, f'Could not find service "{LABEL}" in domain for system\n')
    mac = target(converged_mac(settings(), **{f"launchctl print system/{LABEL}": missing}))
    with pytest.raises(AssertionError, match="exited 113"):
        checks.test_the_gateway_runs_as_a_launch_daemon_as_the_service_user(mac)


def test_a_gateway_running_as_another_user_fails_verify():
    mac = target(converged_mac(settings(), **{"ps -o user= -p 4242": "admin\n"}))
    with pytest.raises(AssertionError):
        checks.test_the_gateway_runs_as_a_launch_daemon_as_the_service_user(mac)


def test_a_drifted_plist_or_a_pending_reload_fails_verify():
    s = settings()
    earlier = {**gateway.gateway_plist(s), "KeepAlive": True}
    drifted = target(converged_mac(s, **{f"shasum -a 256 {launchd.plist_path(LABEL)}": sha(launchd.plist_text(earlier))}))
    with pytest.raises(AssertionError):
        checks.test_the_gateway_plist_is_the_rendered_one_and_no_reload_is_pending(drifted)
    pending = target(converged_mac(s, **{f"test -e {launchd.reload_pending_path(LABEL)}": "pending\n"}))
    with pytest.raises(AssertionError, match="a reload for a new plist failed or was cut off"):
        checks.test_the_gateway_plist_is_the_rendered_one_and_no_reload_is_pending(pending)


def test_missing_log_rotation_fails_verify():
    mac = target(converged_mac(settings(), **{f"shasum -a 256 {gateway.NEWSYSLOG}": (1, "")}))
    with pytest.raises(AssertionError):
        checks.test_the_gateways_logs_are_rotated(mac)


def test_a_power_setting_off_fails_verify_unless_the_mac_did_not_keep_it():
    s = settings()
    pmset = converged_mac(s)["pmset -g"].replace("autorestart          1", "autorestart          0")
    with pytest.raises(AssertionError, match="'autorestart': '0'"):
        checks.test_the_power_settings_are_those_of_a_server_or_recorded_as_not_kept(target(converged_mac(s, **{"pmset -g": pmset})))
    checks.test_the_power_settings_are_those_of_a_server_or_recorded_as_not_kept(
        target(converged_mac(s, **{"pmset -g": pmset, f"cat {base.NOT_KEPT}": "autorestart\n"})))


def test_the_rotation_entry_verify_expects_is_the_one_the_deploy_uploads():
    from roles.openclaw import openclaw
    from tests.unit.macos_host import FRESH, uploads
    assert uploads(openclaw, settings(), FRESH)[gateway.NEWSYSLOG].decode() == render(
        "openclaw", "macos/newsyslog.conf.j2", **gateway.newsyslog_data())
