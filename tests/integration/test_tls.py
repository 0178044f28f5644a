"""The tls role on real hosts: a certificate from the sandbox's ACME server (pebble), renewed by cron."""

import json
import time

import pytest

from roles.logs import AUDIT_LOG
from roles.tls import ACME_CA_FILE, CERTBOT_TIMER_MASK, CRON_FILE, JOB_NAME, LOG_TAG, RENEW_COMMAND
from sandbox import host_domain, state_dir
from tests.integration.conftest import (
    assert_drift_corrected,
    changed_hosts,
    deploy_json,
    https_exchange,
    inventory_with,
    ssh,
)

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env):
    result = deploy_json(kit_env)
    assert result["results"]["failed_hosts"] == []
    first = sandbox_state["hosts"][0]
    return first["address"], host_domain(first["name"])


def served_certificate(address: str, domain: str, pebble_root: str) -> dict:
    """The certificate nginx presents, checked against pebble's root (so the chain must be complete)."""
    _, certificate = https_exchange(address, domain, f"HEAD / HTTP/1.1\r\nHost: {domain}\r\n\r\n".encode(), trust=pebble_root)
    return certificate


def served_serial_after_reload(address: str, domain: str, pebble_root: str, unlike: str) -> str:
    """The served serial once it differs from `unlike`, or after 10 s (`systemctl reload nginx` only signals nginx)."""
    deadline = time.monotonic() + 10
    while (serial := served_certificate(address, domain, pebble_root)["serialNumber"]) == unlike and time.monotonic() < deadline:
        time.sleep(0.5)
    return serial


def cron_command(state: dict, address: str) -> str:
    """The renewal command exactly as the kit's cron entry runs it."""
    lines = [line for line in ssh(state, address, f"cat {CRON_FILE}").stdout.splitlines() if line and line[0].isdigit()]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    assert fields[5] == "root"
    return fields[6]


def last_audit_entry(state: dict, address: str) -> dict:
    """The audit log's last JSON line about the renewal job."""
    lines = ssh(state, address, f"grep '\"job\":\"{JOB_NAME}\"' {AUDIT_LOG} | tail -n 1").stdout
    return json.loads(lines)


def host_clock(state: dict, address: str) -> str:
    return ssh(state, address, "date +%s").stdout.strip()


def journal_since(state: dict, address: str, since: str) -> str:
    """The role's journal lines since a host_clock() reading."""
    return ssh(state, address, f"journalctl -t {LOG_TAG} --no-pager -o cat --since @{since}", check=False).stdout


def test_the_issued_certificate_is_served(deployed, sandbox_state, pebble_root):
    address, domain = deployed
    certificate = served_certificate(address, domain, pebble_root)
    assert ("DNS", domain) in certificate["subjectAltName"]
    issuer = dict(part[0] for part in certificate["issuer"])
    assert issuer["commonName"].startswith("Pebble Intermediate CA"), issuer
    key = ssh(sandbox_state, address, f"openssl x509 -in /etc/letsencrypt/live/{domain}/cert.pem -noout -text").stdout
    assert "ASN1 OID: prime256v1" in key, "the key must be ECDSA P-256"


def test_a_rerun_leaves_the_acme_server_alone(deployed, sandbox_state, kit_env):
    address, _ = deployed
    # certbot writes its log on every invocation; pebble logs every order and authorization.
    certbot_log = "stat -c %Y.%s /var/log/letsencrypt/letsencrypt.log"
    pebble_log = state_dir() / "logs" / "pebble.log"
    before = ssh(sandbox_state, address, certbot_log).stdout, pebble_log.stat().st_size
    assert changed_hosts(deploy_json(kit_env)) == {}
    assert (ssh(sandbox_state, address, certbot_log).stdout, pebble_log.stat().st_size) == before, \
        "a no-op deploy ran certbot or talked to the ACME server"


def test_renewal_through_the_cron_command_reloads_nginx(deployed, sandbox_state, pebble_root):
    address, domain = deployed
    before = served_certificate(address, domain, pebble_root)["serialNumber"]
    command = cron_command(sandbox_state, address)
    assert command.endswith(f" -- {RENEW_COMMAND}"), command
    since = host_clock(sandbox_state, address)

    renewal = ssh(sandbox_state, address, f"{command} --now --force-renewal", check=False)
    assert renewal.returncode == 0, renewal.stdout + renewal.stderr
    assert served_serial_after_reload(address, domain, pebble_root, unlike=before) != before, "nginx still serves the old certificate"
    assert "certificate renewal check ok" in journal_since(sandbox_state, address, since)
    assert last_audit_entry(sandbox_state, address)["exit"] == 0


def test_a_renewal_with_a_broken_nginx_config_never_reloads_nginx(deployed, sandbox_state, pebble_root):
    address, domain = deployed
    broken = "/etc/nginx/conf.d/zz-broken-by-test.conf"
    since = host_clock(sandbox_state, address)
    before = served_certificate(address, domain, pebble_root)["serialNumber"]
    ssh(sandbox_state, address, f"echo 'this is not nginx;' > {broken}")
    try:
        renewal = ssh(sandbox_state, address, f"{cron_command(sandbox_state, address)} --now --force-renewal", check=False)
        assert renewal.returncode != 0, "a renewal nginx could not load must fail"
        failed = last_audit_entry(sandbox_state, address)
        assert failed["exit"] != 0 and "nginx" in failed["error"], failed
        assert served_serial_after_reload(address, domain, pebble_root, unlike=before) == before, "nginx was reloaded"
        journal = journal_since(sandbox_state, address, since)
        assert "nginx NOT reloaded" in journal and "FAILED" in journal, journal
        # Still failing (and saying so) on the next run, while nginx cannot load the new certificate.
        assert ssh(sandbox_state, address, f"{RENEW_COMMAND} --now", check=False).returncode != 0
    finally:
        ssh(sandbox_state, address, f"rm -f {broken}")
    # Mended: the next cron run loads the renewed certificate.
    assert ssh(sandbox_state, address, f"{RENEW_COMMAND} --now", check=False).returncode == 0
    assert served_serial_after_reload(address, domain, pebble_root, unlike=before) != before


def account_email(state: dict, address: str) -> str:
    """The account's contact as the ACME server (pebble) has it."""
    shown = ssh(state, address, f"REQUESTS_CA_BUNDLE={ACME_CA_FILE} certbot show_account --server {state['acme_directory']} 2>/dev/null")
    return next(line.split(":", 1)[1].strip() for line in shown.stdout.splitlines() if "Email contact:" in line)


def test_a_changed_admin_email_updates_the_acme_account(deployed, sandbox_state, kit_env, tmp_path):
    address, _ = deployed
    hosts = sorted(host["address"] for host in sandbox_state["hosts"])
    account_url = ssh(sandbox_state, address, "cat /etc/letsencrypt/accounts/*/dir/*/regr.json").stdout
    assert account_email(sandbox_state, address) == "admin@openclaw.test"
    try:
        changed = deploy_json(kit_env, inventory=inventory_with(tmp_path, admin_email="ops@openclaw.test"))
        assert changed_hosts(changed) == {"tls | ACME account's email updated to admin_email": hosts}
        assert account_email(sandbox_state, address) == "ops@openclaw.test"
        # The same account, not a new one.
        assert ssh(sandbox_state, address, "cat /etc/letsencrypt/accounts/*/dir/*/regr.json").stdout == account_url
        assert changed_hosts(deploy_json(kit_env, inventory=inventory_with(tmp_path, admin_email="ops@openclaw.test"))) == {}
    finally:
        back = deploy_json(kit_env)
    assert changed_hosts(back) == {"tls | ACME account's email updated to admin_email": hosts}
    assert account_email(sandbox_state, address) == "admin@openclaw.test"


DRIFTS = {
    "cron entry deleted": (f"rm {CRON_FILE}", f"test -f {CRON_FILE}"),
    "certbot.timer re-enabled": ("systemctl unmask certbot.timer && systemctl enable --now certbot.timer",
                                 f"test -L {CERTBOT_TIMER_MASK} && ! systemctl is-active -q certbot.timer"),
    "renewal script edited": (f"sed -i 's/--no-random-sleep-on-renew//' {RENEW_COMMAND}",
                              f"grep -q -- --no-random-sleep-on-renew {RENEW_COMMAND}"),
}


@pytest.mark.parametrize("drift", DRIFTS, ids=list(DRIFTS))
def test_drift_is_corrected_by_a_rerun(deployed, sandbox_state, kit_env, drift):
    address, _ = deployed
    assert_drift_corrected(sandbox_state, kit_env, address, *DRIFTS[drift])
