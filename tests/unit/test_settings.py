"""Settings validation: every rule names host, setting path, value and rule, all at once."""

import pytest

from openclaw_kit.platform import System
from openclaw_kit.settings import HostSettings, SettingsError, validate_hosts

TOKEN = "t" * 64
ENV = {"OPENCLAW_GATEWAY_TOKEN": TOKEN, "TELEGRAM_BOT_TOKEN": "123456:telegram-sentinel", "SLACK_BOT": "b" * 40, "SLACK_APP": "a" * 40}
GOOD = {
    "ssh_user": "root",
    "domain": "gw.example.com",
    "admin_email": "admin@example.com",
    "admin_cidrs": ["203.0.113.0/24"],
}


def problems(data: dict, env: dict = ENV, systems=None, name: str = "gw1") -> list[str]:
    with pytest.raises(SettingsError) as caught:
        validate_hosts({name: {**GOOD, **data}}, env, systems)
    return caught.value.problems


def one_problem(data: dict, setting: str, **kwargs) -> str:
    found = problems(data, **kwargs)
    assert len(found) == 1, found
    assert found[0].startswith(f"host gw1: {setting} = "), found[0]
    return found[0]


def test_good_settings_get_defaults_from_one_place():
    settings = validate_hosts({"gw1": GOOD}, ENV)["gw1"]
    assert isinstance(settings, HostSettings)
    assert settings.gateway_port == 18789
    assert settings.openclaw_version == "2026.9.6"
    assert settings.acme_directory.startswith("https://acme-v02.")
    assert settings.origin == "https://gw.example.com"
    assert settings.gateway_token.reveal() == TOKEN


@pytest.mark.parametrize("domain", ["localhost", "Gateway.Example.com", "-bad.example.com", "exa mple.com", "a..b.com", "x" * 64 + ".com"])
def test_malformed_domain(domain):
    line = one_problem({"domain": domain}, "domain")
    assert repr(domain) in line and "fully qualified domain name" in line


def test_malformed_extra_domain_names_its_index():
    line = one_problem({"extra_domains": ["ok.example.com", "not a name"]}, "extra_domains[1]")
    assert "'not a name'" in line


@pytest.mark.parametrize("email", ["admin", "admin@", "@example.com", "a@b", "a b@example.com"])
def test_invalid_email(email):
    assert "email address" in one_problem({"admin_email": email}, "admin_email")


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_port_out_of_range(port):
    line = one_problem({"sshd_port": port}, "sshd_port")
    assert str(port) in line


def test_gateway_port_below_1024_is_refused():
    assert ">= 1024" in one_problem({"gateway_port": 80}, "gateway_port").replace("greater than or equal to", ">=")


@pytest.mark.parametrize(("data", "setting", "clash"), [
    ({"gateway_port": 2222, "sshd_port": 2222}, "gateway_port", "sshd_port"),
    ({"gateway_port": 18789, "sshd_port": 443}, "sshd_port", "nginx"),
])
def test_two_services_on_one_port(data, setting, clash):
    line = one_problem(data, setting)
    assert clash in line and "own port" in line


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "10.0.0.0/33", "banana", "300.1.1.0/24"])
def test_malformed_cidr(cidr):
    line = one_problem({"admin_cidrs": [cidr]}, "admin_cidrs[0]")
    assert repr(cidr) in line and "CIDR" in line


def test_admin_cidrs_are_required_and_not_empty():
    data = {key: value for key, value in GOOD.items() if key != "admin_cidrs"}
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw1": data}, ENV)
    assert caught.value.problems == ["host gw1: admin_cidrs = (missing): is required"]
    assert "admin_cidrs" in one_problem({"admin_cidrs": []}, "admin_cidrs")


@pytest.mark.parametrize(("data", "setting", "suggestion"), [
    ({"gatway_port": 1}, "gatway_port", "did you mean gateway_port?"),
    ({"channels": {"telegarm": {}}}, "channels.telegarm", "did you mean telegram?"),
    ({"channels": {"telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [1], "allowfrom": [2]}}}, "channels.telegram.allowfrom", "did you mean allow_from?"),
    ({"ssh_usr": "root"}, "ssh_usr", "did you mean"),
])
def test_unknown_key_anywhere_is_a_typo(data, setting, suggestion):
    line = one_problem(data, setting)
    assert "unknown setting" in line and suggestion in line


@pytest.mark.parametrize(("channel", "data"), [
    ("telegram", {"bot_token": "${TELEGRAM_BOT_TOKEN}"}),
    ("slack", {"bot_token": "${SLACK_BOT}", "app_token": "${SLACK_APP}", "workspace_ids": ["T0123456"]}),
    ("whatsapp", {"dm_policy": "pairing"}),
])
def test_channel_enabled_with_no_allowlist(channel, data):
    line = one_problem({"channels": {channel: data}}, f"channels.{channel}.allow_from")
    assert "needs an allowlist" in line


def test_disabled_channel_needs_no_allowlist():
    validate_hosts({"gw1": {**GOOD, "channels": {"whatsapp": {"enabled": False}}}}, ENV)


def test_open_dm_policy_needs_a_named_opt_in():
    channel = {"bot_token": "${TELEGRAM_BOT_TOKEN}", "dm_policy": "open"}
    line = one_problem({"channels": {"telegram": channel}}, "channels.telegram.dm_policy")
    assert "dangerously_allow_open_dms: true" in line
    validate_hosts({"gw1": {**GOOD, "channels": {"telegram": {**channel, "dangerously_allow_open_dms": True}}}}, ENV)


def test_open_group_policy_needs_a_named_opt_in():
    channel = {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [1], "group_policy": "open"}
    assert "dangerously_allow_open_groups" in one_problem({"channels": {"telegram": channel}}, "channels.telegram.group_policy")


def test_channel_ids_have_the_right_shape():
    found = problems({"channels": {
        "telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [1], "group_allow_from": [5]},
        "slack": {"bot_token": "${SLACK_BOT}", "app_token": "${SLACK_APP}", "workspace_ids": ["acme"], "allow_from": ["bob"]},
        "whatsapp": {"allow_from": ["5551234"]},
    }})
    text = "\n".join(found)
    assert "channels.telegram.group_allow_from[0] = 5" in text
    assert "channels.slack.workspace_ids = ['acme']" in text and "workspace id" in text
    assert "channels.slack.allow_from = ['bob']" in text
    assert "channels.whatsapp.allow_from = ['5551234']" in text and "E.164" in text


@pytest.mark.parametrize(("setting", "data"), [
    ("gateway_token", {"gateway_token": "hunter2-literal-secret-value-0123456789"}),
    ("channels.telegram.bot_token", {"channels": {"telegram": {"bot_token": "123456:AAliteral-bot-token", "allow_from": [1]}}}),
])
def test_literal_secret_is_refused_and_never_echoed(setting, data):
    line = one_problem(data, setting)
    assert "${VAR} reference" in line
    assert "literal" in line and "hunter2" not in line and "AAliteral" not in line


def test_secret_reference_to_an_unset_variable():
    env = {key: value for key, value in ENV.items() if key != "OPENCLAW_GATEWAY_TOKEN"}
    line = one_problem({}, "gateway_token", env=env)
    assert "${OPENCLAW_GATEWAY_TOKEN}" in line and "OPENCLAW_GATEWAY_TOKEN is not set" in line


def test_weak_gateway_token_is_refused_without_showing_it():
    line = one_problem({}, "gateway_token", env={**ENV, "OPENCLAW_GATEWAY_TOKEN": "short-sentinel"})
    assert "at least 32 characters" in line and "short-sentinel" not in line


@pytest.mark.parametrize(("system", "expected"), [
    (System("Darwin", None, None), "macOS"),
    (System("Linux", "Debian", 11), "Debian 11 is not supported"),
    (System("Linux", "CentOS", 9), "CentOS 9 is not supported"),
    # Same major as the supported 24.04, but another release: not tested, so refused.
    (System("Linux", "Ubuntu", 24, 10), "Ubuntu 24.10 is not supported"),
    (System("Linux", "Ubuntu", 22, 4), "Ubuntu 22.04 is not supported"),
    (System("Linux", "Debian", 14), "Debian 14 is not supported: the kit supports Debian 12, Debian 13, Ubuntu 24.04"),
])
def test_unsupported_os_is_reported_per_host(system, expected):
    found = problems({}, systems={"gw1": system})
    assert len(found) == 1 and found[0].startswith("host gw1: operating system") and expected in found[0]


@pytest.mark.parametrize("system", [System("Linux", "Debian", 12, 7), System("Linux", "Debian", 13, 1),
                                    System("Linux", "Ubuntu", 24, 4)])
def test_supported_os(system):
    validate_hosts({"gw1": GOOD}, ENV, {"gw1": system})


def test_all_problems_of_all_hosts_at_once():
    hosts = {
        "gw1": {**GOOD, "domain": "bad_domain", "admin_email": "nope"},
        "gw2": GOOD,
        "gw3": {**GOOD, "proxy": "ftp://proxy"},
    }
    with pytest.raises(SettingsError) as caught:
        validate_hosts(hosts, ENV, {"gw2": System("Linux", "Debian", 11)})
    found = caught.value.problems
    assert [line.split(":")[0] for line in found] == ["host gw1", "host gw1", "host gw2", "host gw3"]
    assert str(caught.value).startswith("4 settings problems; no host was changed:")


@pytest.mark.parametrize("proxy", ["http://user:Sentinel-Pw-4711@proxy.example.com:3128", "https://user:Sentinel-Pw-4711@proxy.example.com"])
def test_proxy_must_not_carry_credentials_and_the_password_is_never_shown(proxy):
    line = one_problem({"proxy": proxy}, "proxy")
    assert "credentials" in line
    assert "Sentinel-Pw-4711" not in line, line
    assert "user:***@proxy.example.com" in line


def test_acme_directory_shortcuts_and_urls():
    staging = validate_hosts({"gw1": {**GOOD, "acme_directory": "letsencrypt-staging"}}, ENV)["gw1"]
    assert "staging" in staging.acme_directory
    assert "RFC 8555" in one_problem({"acme_directory": "http://insecure.example.com/dir"}, "acme_directory")


def test_pyinfra_connection_keys_and_global_arguments_are_not_settings():
    validate_hosts({"gw1": {**GOOD, "ssh_key": "/k", "ssh_port": 2222, "_sudo": True}}, ENV)


def test_settings_are_strict_about_types():
    assert "valid integer" in one_problem({"gateway_port": "18789"}, "gateway_port")
