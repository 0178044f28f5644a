"""Every (platform, setting) pair: the setting is either used there (the platform's roles, run on a fake
host of that platform, plan something else when it changes) or refused before any change (validate_hosts
names host, setting, value and rule), and then really unused. Rows that run the same code (the Linux
rows; the macOS rows) are planned on the first of them. And the platform modules import no cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from pyinfra.api import Config, FileUploadCommand, FunctionCommand, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.context import ctx_host, ctx_inventory, ctx_state

import roles.openclaw.systemd
from openclaw_kit.platform import PLATFORMS, System, platform_of
from openclaw_kit.settings import HostSettings, SettingsError, validate_hosts
from openclaw_kit.settings.platforms import refusal, roles_of
from roles.base.debian import SYSCTL
from tests.unit.fake_host import ENV, SETTINGS
from tests.unit.macos_host import FRESH
from tests.unit.test_distros import facts

REPO = Path(__file__).resolve().parents[2]
PEM = "<a PEM file>"  # replaced by a real file on the controller
ENV_ALL = {**ENV, "OTHER_GATEWAY_TOKEN": "o" * 64, "TELEGRAM_BOT_TOKEN": "123:abc", "RESTIC_PASSWORD": "r" * 40,
           "MESH_PSK": "m" * 44}
MESH = {"cidr": "10.99.0.0/24", "address": "10.99.0.1"}

# setting -> (a value other than the default, settings it needs beside it). Every top-level setting has one
# (test_every_setting_has_a_sample), so a new setting is checked on every platform.
SAMPLES: dict[str, tuple[object, dict]] = {
    "hostname": ("gw7", {}),
    "proxy": ("http://proxy.example.com:3128", {}),
    "proxy_ca_file": (PEM, {}),
    "sshd_permit_root_login": ("no", {"ssh_user": "deploy"}),
    "sshd_allow_users": (["root"], {"ssh_user": "root"}),
    "sshd_allow_groups": (["admins"], {}),
    "sshd_tcp_forwarding": ("local", {}),
    "ipv6_accept_ra": (True, {}),
    "unattended_reboot": (True, {}),
    "unattended_reboot_time": ("03:30", {"unattended_reboot": True}),
    "login_umask": ("077", {}),
    "core_dumps": (True, {}),
    "blocked_kernel_modules": (["dccp"], {}),
    "sshd_max_sessions": (2, {}),
    "sshd_client_alive_count_max": (3, {}),
    "cron_root_only": (False, {}),
    "login_banner": ("Authorised use only.", {}),
    "admin_cidrs": (["198.51.100.0/24"], {}),
    "ssh_cidrs": (["192.0.2.0/24"], {}),
    "sshd_port": (2222, {}),
    "public_interface": ("eth0", {}),
    "private_interface": ("eth1", {"private_cidrs": ["10.1.0.0/16"]}),
    "private_cidrs": (["10.1.0.0/16"], {}),
    "private_allowed_ports": ([9100], {"private_cidrs": ["10.1.0.0/16"]}),
    "egress": ("restricted", {}),
    "egress_allowed_ports": ([5432], {"egress": "restricted"}),
    "private_network": (MESH, {}),
    "admin_peers": ([{"name": "alice-laptop", "public_key": "x" * 43 + "=", "address": "10.99.0.100"}],
                    {"private_network": MESH}),
    "management": ("private", {"private_network": MESH}),
    "openclaw_version": ("2026.9.7", {}),
    "node_version": ("24.22.3", {"node_sha256": "a" * 64}),
    "node_source": ("npm-package", {}),
    "node_dist_url": ("https://mirror.example.com/node", {}),
    "node_sha256": ("b" * 64, {}),
    "gateway_port": (18800, {}),
    "gateway_start_timeout_seconds": (300, {}),
    "gateway_token": ("${OTHER_GATEWAY_TOKEN}", {}),
    "channels": ({"telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [42]}}, {}),
    "public_webhooks": (["hooks"], {}),
    "dangerously_expose_control_ui_to_admin_cidrs": (True, {}),
    "fail2ban_bantime_seconds": (60, {}),
    "fail2ban_findtime_seconds": (60, {}),
    "fail2ban_maxretry": (3, {}),
    "log_retention_days": (30, {}),
    "audit_retention_days": (365, {}),
    "backup_retention_days": (3, {}),
    "offsite_backup": ({"repository": "sftp:b@backup.example.com:/srv/x", "password": "${RESTIC_PASSWORD}",
                        "sftp_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"},
                       {}),
    "auditd": (False, {}),
    "monitoring": ({"enabled": True, "webhook": {"url": "https://hooks.example.com/kit"}}, {}),
    "domain": ("gw2.example.com", {}),
    "extra_domains": (["www.example.com"], {}),
    "admin_email": ("ops@example.com", {}),
    "acme_directory": ("letsencrypt-staging", {}),
    "acme_ca_file": (PEM, {}),
}

# Required settings cannot be refused (they cannot be left out): these are validated on a platform whose
# roles do not read them. Each is said in its description; a new one fails test_each_pair.
REQUIRED_UNREAD = {("macOS", "admin_email")}


def fake_responses(key: tuple) -> dict:
    distribution, major, _ = key
    if distribution == "macOS":
        return {**FRESH, "sw_vers -productVersion": f"{major}.1"}
    # A kernel with every key the kit sets, one public address (beside the mesh's network), and a mesh key
    # made by an earlier run (a first run makes the key and writes no peers yet).
    return {**facts(PLATFORMS[key].label), f"sysctl {SYSCTL[0][0]}": [f"{k} = 0" for k, _, _ in SYSCTL],
            "ip -o addr show": ["2: eth0    inet 203.0.113.5/24 brd 203.0.113.255 scope global eth0"],
            "wg pubkey": "B" * 43 + "="}


def representative(key: tuple) -> tuple:
    """The first row that runs the same code as `key`'s: the same roles, backends and unhonoured settings. The
    rows of one family differ in names and paths only, so what is used is planned on one of them."""
    row = PLATFORMS[key]

    def code(other):
        return (other.roles, other.family, other.service_manager, other.firewall, dict(other.unhonoured_settings))

    return next(other for other in PLATFORMS if code(PLATFORMS[other]) == code(row))


_inventories = []  # kept: the kit caches per run by id(inventory), which a collected one would hand on


def planned(data: dict, key: tuple) -> list:
    """Every command and uploaded file's content of the platform's roles, run on a fake host of that platform
    whose inventory data is `data` (role wireguard reads the inventory's settings itself)."""
    inventory = Inventory(([("@fake/h", {"fake_delay": 0, "fake_delay_jitter": 0,
                                         "fake_responses": fake_responses(key), **data})], {}))
    _inventories.append(inventory)
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@fake/h")
    settings = validate_hosts({"h": data}, ENV_ALL)["h"]
    found = []
    with ctx_state.use(state), ctx_inventory.use(inventory), ctx_host.use(host):
        platform = platform_of(host)
        assert platform is PLATFORMS[key]
        for role in sorted(platform.roles):
            getattr(importlib.import_module(f"roles.{role}"), role)(settings)
        for op_hash in state.get_op_order():
            for command in state.get_op_data_for_host(host, op_hash).command_generator():
                if isinstance(command, FileUploadCommand):
                    src = command.src
                    found.append((command.dest, src.getvalue() if hasattr(src, "getvalue") else Path(src).read_bytes()))
                elif isinstance(command, FunctionCommand):  # a Python callback run on the controller
                    found.append((command.function.__qualname__, repr(command.args), repr(command.kwargs)))
                else:
                    found.append(command.get_raw_value())
    return found


@pytest.fixture(scope="module")
def pem(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pem") / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return str(path)


@pytest.fixture(autouse=True)
def controller(monkeypatch, tmp_path):
    for name, value in ENV_ALL.items():  # what settings_for reads, from role wireguard
        monkeypatch.setenv(name, value)
    # node_source: npm-package fetches node with the controller's npm (network); the tarball's path is all a
    # plan needs.
    tarball = tmp_path / "package.tgz"
    tarball.write_bytes(b"tgz")
    monkeypatch.setattr(roles.openclaw.systemd, "npm_pack", lambda spec, sha256: tarball)


# The self-signed bootstrap certificate (role tls) is made anew on every run: its files' content is not compared.
GENERATED = {"/etc/ssl/openclaw-kit/bootstrap/privkey.pem", "/etc/ssl/openclaw-kit/bootstrap/fullchain.pem"}
_baselines: dict = {}


def comparable(plan: list) -> list:
    return [(item[0], "<generated>") if isinstance(item, tuple) and item[0] in GENERATED else item for item in plan]


def plan_of(key: tuple, data: dict) -> list:
    """What `data` plans on `key`'s representative row, once per test run."""
    key = representative(key)
    cache_key = (key, repr(sorted(data.items())))
    if cache_key not in _baselines:
        _baselines[cache_key] = comparable(planned(data, key))
    return _baselines[cache_key]


def test_every_setting_has_a_sample():
    assert set(SAMPLES) == set(HostSettings.model_fields)


@pytest.mark.parametrize("key", [next(k for k in PLATFORMS if k[0] == "Debian"), next(k for k in PLATFORMS if k[0] == "macOS")],
                         ids=lambda key: PLATFORMS[key].label)
def test_the_same_settings_plan_the_same(key):
    # Else any setting would look used.
    first, second = planned(SETTINGS, key), planned(SETTINGS, key)
    assert {item[0] for item, again in zip(first, second, strict=True) if item != again} <= GENERATED
    assert comparable(first) == comparable(second)


@pytest.mark.parametrize("setting", list(SAMPLES))
@pytest.mark.parametrize("key", list(PLATFORMS), ids=lambda key: PLATFORMS[key].label.replace(" ", "-"))
def test_each_pair_is_used_or_refused_before_any_change(key, setting, pem):
    platform = PLATFORMS[key]
    value, companions = SAMPLES[setting]
    value = pem if value == PEM else value
    companions = {name: pem if v == PEM else v for name, v in companions.items()}
    base = {**SETTINGS, **companions}
    try:
        validate_hosts({"h": {**base, setting: value}}, ENV_ALL, {"h": _system(key)})
    except SettingsError as error:
        lines = [line for line in error.problems if line.startswith(f"host h: {setting} = ")]
        assert lines, error.problems
        assert HostSettings.model_fields[setting].is_required() is False
        if setting in platform.one_value_settings:
            return  # honoured with that value only
        # The rule is the platform's (what docs/settings.md's platforms are made from), and it is true: the
        # platform's roles do nothing with the setting.
        assert refusal(platform, setting)
        assert plan_of(key, {**base, setting: value}) == plan_of(key, base), (
            f"{platform.label} refuses {setting}, which its roles use: take it out of unhonoured_settings")
        return
    assert refusal(platform, setting) is None or (key[0], setting) in REQUIRED_UNREAD
    if (key[0], setting) in REQUIRED_UNREAD:
        assert HostSettings.model_fields[setting].is_required()
        assert plan_of(key, {**base, setting: value}) == plan_of(key, base), f"{setting} is read on {platform.label}"
        return
    # Validated without the system: the companions alone may be refused on this platform.
    assert plan_of(key, {**base, setting: value}) != plan_of(key, base), (
        f"{setting} = {value!r} changes nothing on {platform.label}: refuse it there (the platform row's "
        f"unhonoured_settings) or use it (roles {roles_of(setting)})")


def _system(key: tuple) -> System:
    distribution, major, minor = key
    if distribution == "macOS":
        return System("Darwin", "macOS", major, arch="arm64")
    return System("Linux", distribution, major, minor)


def test_the_platform_modules_import_no_cycle():
    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}

    assert "openclaw_kit.platform" not in imports(REPO / "openclaw_kit" / "platform_macos.py")
    assert "openclaw_kit.platform" not in imports(REPO / "openclaw_kit" / "platform_types.py")
    assert "openclaw_kit.platform_macos" not in imports(REPO / "openclaw_kit" / "platform_types.py")
