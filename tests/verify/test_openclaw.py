"""Role openclaw: the gateway runs as a locked-down system service, with secrets only in a 0600 file."""

import hashlib
import json
import re

import pytest

from openclaw_kit.layout import GATEWAY_CLI
from openclaw_kit.platform import PLATFORMS
from openclaw_kit.secrets import env_file_content
from roles.openclaw import CONFIG_DIR, CURRENT, ENV_FILE, LOG_DIR, PREFIX
from roles.openclaw.systemd import COMPILE_CACHE, LIVE_CONFIG, SERVICE, STATE_DIR, USER

MAX_EXPOSURE = 3.0
CONFIG_VALIDATE = f"{GATEWAY_CLI} config validate --json 2>/dev/null"
SECURITY_AUDIT = f"{GATEWAY_CLI} security audit --json 2>/dev/null"


def slow_commands(settings) -> list[str]:
    """Started early by conftest.py: they take seconds each."""
    return [SECURITY_AUDIT, CONFIG_VALIDATE]


def test_service_user_cannot_log_in(target):
    user = target.host.user(USER)
    assert user.exists
    # What the deploy enforces (it re-runs server.user when either differs).
    assert user.shell in {platform.nologin for platform in PLATFORMS.values()} and user.home == STATE_DIR
    assert user.uid < 1000, "a system user"
    assert "sudo" not in user.groups


@pytest.mark.parametrize(("path", "owner", "group", "mode"), [
    (STATE_DIR, USER, USER, 0o700),
    (LOG_DIR, USER, USER, 0o750),
    (CONFIG_DIR, "root", USER, 0o750),
    (LIVE_CONFIG, USER, USER, 0o600),
    (ENV_FILE, USER, USER, 0o600),
    # Made by the CLI wrapper's runs (the deploy's config check, verify's own): code only the service may change.
    (COMPILE_CACHE, USER, USER, 0o700),
])
def test_private_files_and_directories(target, path, owner, group, mode):
    found = target.host.file(path)
    assert found.exists, path
    assert (found.user, found.group, found.mode) == (owner, group, mode), path


def test_secrets_file_holds_the_current_secrets(target):
    # Compare hashes only: a failing assertion must not print a secret into a CI log.
    expected = hashlib.sha256(env_file_content(target.settings.secrets())).hexdigest()
    actual = target.host.check_output(f"sha256sum {ENV_FILE}").split()[0]
    assert actual == expected, "the secrets file differs from the settings (hashes compared, values not shown)"


def test_pinned_versions_are_installed(target):
    assert target.settings.openclaw_version in target.host.check_output(f"PATH={CURRENT}/bin:$PATH openclaw --version")
    assert target.host.check_output(f"{CURRENT}/bin/node --version") == f"v{target.settings.node_version}"
    code = target.host.file(f"{CURRENT}/lib/node_modules/openclaw")
    assert code.user == "root" and not code.mode & 0o022, "the service must not be able to change its own code"


def test_gateway_runs_under_systemd_as_the_service_user(target):
    service = target.host.service(SERVICE)
    assert service.is_running and service.is_enabled
    pid = target.host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    assert target.host.check_output(f"ps -o user= -p {pid}") == USER


def test_gateway_answers_healthz_on_loopback_only(target):
    port = target.settings.gateway_port
    health = target.host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=5).read().decode())\"")
    assert json.loads(health)["ok"] is True
    listeners = target.host.check_output(f"ss -Hltn 'sport = :{port}'")
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listeners.splitlines()}
    assert addresses and addresses <= {"127.0.0.1", "[::1]"}, listeners


def test_gateway_is_ready(target):
    # What an upgrade waits for besides /healthz (503 while a channel is not ready).
    port = target.settings.gateway_port
    status = target.host.run(f"python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=5).status)\"")
    assert status.stdout.strip() == "200", status.stdout + status.stderr


def test_only_the_running_release_is_installed(target):
    # Upgrades remove the previous release once the new one is healthy, a rollback the failed one.
    release = target.host.check_output(f"readlink {CURRENT}")
    node_dir = target.host.check_output(f"readlink {release}/bin/node").removesuffix("/bin/node")
    assert target.host.check_output(f"ls -d {PREFIX}/releases/* {PREFIX}/node-v*").split() == sorted([node_dir, release])


def test_unit_is_sandboxed(target):
    report = target.host.check_output(f"systemd-analyze security {SERVICE}.service")
    exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", report).group(1))
    assert exposure <= MAX_EXPOSURE, report.splitlines()[-1]
    unit = target.host.check_output(f"systemctl cat {SERVICE}.service")
    for directive in ("User=openclaw", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=\n",
                      "RestartPreventExitStatus=78", "OPENCLAW_SERVICE_REPAIR_POLICY=external"):
        assert directive in unit + "\n"


@pytest.mark.late
def test_config_validates_and_carries_the_settings(target):
    assert json.loads(target.output_of(CONFIG_VALIDATE))["valid"] is True
    live = json.loads(target.host.check_output(f"cat {LIVE_CONFIG}"))
    gateway = live["gateway"]
    assert gateway["bind"] == "loopback" and gateway["port"] == target.settings.gateway_port
    assert gateway["auth"] == {"mode": "token", "token": "${%s}" % target.settings.gateway_token.name}
    assert gateway["trustedProxies"] == ["127.0.0.1"]
    assert gateway["controlUi"]["allowedOrigins"] == [target.settings.origin]
    assert live["discovery"]["mdns"]["mode"] == "off"


@pytest.mark.late
def test_openclaw_security_audit_is_clean(target):
    audit = json.loads(target.output_of(SECURITY_AUDIT))
    problems = [(f["severity"], f["checkId"]) for f in audit["findings"] if f["severity"] in ("critical", "warn")]
    assert audit["summary"]["critical"] == 0 and audit["summary"]["warn"] == 0, problems
