"""Role tls: nginx serves a certificate from the ACME CA in the settings, and one cron entry renews it."""

from openclaw_kit.layout import JOB_RUNNER
from roles.nginx import CURRENT, LETSENCRYPT_LIVE
from roles.tls import ACME_CA_FILE, CERTBOT_TIMER_MASK, CRON_FILE, DEPLOY_HOOK, JOB_NAME, RENEW_COMMAND, RENEW_DAYS


def test_nginx_serves_the_issued_certificate(target):
    live = f"{LETSENCRYPT_LIVE}/{target.settings.domain}"
    assert target.host.file(CURRENT).linked_to == live, "nginx still serves the self-signed bootstrap certificate"
    names = target.host.check_output(f"openssl x509 -in {live}/cert.pem -noout -ext subjectAltName")
    for name in [target.settings.domain, *target.settings.extra_domains]:
        assert f"DNS:{name}" in names, name
    assert target.host.run(f"openssl x509 -in {live}/cert.pem -noout -checkend {RENEW_DAYS * 86400}").rc == 0, \
        f"the certificate expires within {RENEW_DAYS} days: renewal is not working"


def test_the_certificate_comes_from_the_settings_acme_directory_with_an_ecdsa_key(target):
    renewal = target.host.file(f"/etc/letsencrypt/renewal/{target.settings.domain}.conf").content_string
    assert f"server = {target.settings.acme_directory}" in renewal
    assert "key_type = ecdsa" in renewal and "authenticator = webroot" in renewal


def test_one_renewal_path(target):
    assert target.host.file(CERTBOT_TIMER_MASK).linked_to == "/dev/null", "certbot.timer is not masked"
    assert not target.host.service("certbot.timer").is_running
    cron = target.host.file(CRON_FILE)
    assert cron.user == "root" and cron.mode == 0o644
    entries = [line for line in cron.content_string.splitlines() if line[:1].isdigit()]
    assert len(entries) == 1 and entries[0].endswith(f" root {JOB_RUNNER} {JOB_NAME} -- {RENEW_COMMAND}"), entries
    for script in (RENEW_COMMAND, DEPLOY_HOOK):
        found = target.host.file(script)
        assert found.user == "root" and found.mode == 0o755, script


def test_the_acme_server_has_admin_email_for_the_account(target):
    # Asked from the ACME server itself: expiry notices and account recovery reach admin_email.
    s = target.settings
    env = f"REQUESTS_CA_BUNDLE={ACME_CA_FILE} " if s.acme_ca_file else ""
    account = target.host.check_output(f"{env}certbot show_account --server {s.acme_directory} 2>/dev/null")
    account = [line.strip() for line in account.splitlines()]
    assert f"Email contact: {s.admin_email}" in account, account
