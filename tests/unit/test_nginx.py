"""Role nginx: the rendered configuration, checked by this machine's nginx (`nginx -t`, then a real
nginx in front of a stand-in gateway) and by gixy, and the guard that keeps a rejected
configuration away from the live files."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from openclaw_kit.settings import HostSettings, SettingsError, validate_hosts
from openclaw_kit.settings.nginx import WEBHOOK_PATHS
from roles import nginx as role
from roles.nginx import REJECTED, activation_commands, bootstrap_certificate, config_files
from tests.unit.fake_host import ENV, fake_inventory

BASE = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
COMBINATIONS = {
    "defaults": {},
    "extra domains, another port": {"extra_domains": ["chat.example.com", "hooks.example.org"], "gateway_port": 20443},
    "private network, webhooks, operators from admin_cidrs": {
        "private_interface": "wg0", "private_cidrs": ["10.8.0.0/24", "fd00:8::/64"], "public_webhooks": ["hooks", "slack"],
        "dangerously_expose_control_ui_to_admin_cidrs": True},
}
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
NO_NGINX = "nginx is not installed (apt-get install nginx): the real checks need its binary"
MOZILLA_TLS = [
    "ssl_protocols TLSv1.2 TLSv1.3;",
    "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;",
    "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
    "ssl_prefer_server_ciphers off;",
    "ssl_session_cache shared:MozSSL:10m;",
    "ssl_session_timeout 1d;",
    "ssl_session_tickets off;",
]


def settings(**data) -> HostSettings:
    return validate_hosts({"gw": {**BASE, **data}}, ENV)["gw"]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def rendered(s: HostSettings) -> dict[str, str]:
    return config_files(s, role.CERTIFICATE, role.CERTIFICATE_KEY)


# --- the rendered text ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_rendered_configuration(data):
    s = settings(**data)
    out = rendered(s)
    assert set(out) == {"nginx.conf", "openclaw-kit/default-server.conf", "openclaw-kit/site.conf"}
    main, default, site = (lines(out[k]) for k in ("nginx.conf", "openclaw-kit/default-server.conf", "openclaw-kit/site.conf"))
    names = " ".join([s.domain, *s.extra_domains])

    assert "proxy_add_x_forwarded_for" not in "\n".join(main + default + site)
    # TLS: Mozilla intermediate, once, http-wide; nowhere else, no stapling, no TLS < 1.2.
    for line in MOZILLA_TLS:
        assert main.count(line) == 1, line
        assert line not in default + site, line
    assert sum(line.startswith("ssl_protocols") for line in main + default + site) == 1
    assert not any("stapling" in line for line in main + default + site) and "TLSv1.1" not in "\n".join(main)
    assert "server_tokens off;" in main and "gzip off;" in main
    assert "include openclaw-kit/*.conf;" in main, "the kit's servers must be included relative to nginx.conf"

    # Port 80: the ACME webroot and a 308 to https for the gateway's names; 444 for any other.
    assert site.count(f"server_name {names};") == 2
    assert "location ^~ /.well-known/acme-challenge/ {" in site and f"root {role.ACME_WEBROOT};" in site
    assert "return 308 https://$host$request_uri;" in site
    assert [line for line in default if line.startswith("listen 80") or line.startswith("listen [::]:80")] == ["listen 80 default_server;", "listen [::]:80 default_server;"]
    assert "return 444;" in default
    # Port 443: unknown names are refused in the handshake; http2 as a listen parameter (nginx 1.22/1.24).
    assert "ssl_reject_handshake on;" in default and "listen 443 ssl http2 default_server;" in default
    assert "listen 443 ssl http2;" in site and "listen [::]:443 ssl http2;" in site
    assert not any(line.startswith("http2 ") for line in main + default + site)
    # Through the link role tls flips after issuance: the configuration never names a bootstrap file.
    assert "ssl_certificate /etc/ssl/openclaw-kit/current/fullchain.pem;" in site
    assert "ssl_certificate_key /etc/ssl/openclaw-kit/current/privkey.pem;" in site

    # Headers, HSTS as in the shared notes; added always, once.
    assert 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;' in site
    assert 'add_header X-Content-Type-Options "nosniff" always;' in site
    assert "add_header Content-Security-Policy $kit_csp always;" in site
    assert "add_header X-Frame-Options $kit_frame_options always;" in site
    csp = re.search(r'"" "(default-src[^"]*)";', out["nginx.conf"]).group(1)
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "base-uri 'none'" in csp
    assert f"connect-src 'self' {' '.join('wss://' + n for n in names.split())};" in csp

    # The proxy: loopback gateway port, WebSocket upgrade, forwarding headers overwritten.
    assert site.count(f"proxy_pass http://127.0.0.1:{s.gateway_port};") == 1 + bool(s.public_webhooks)
    for line in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;",
                 "proxy_set_header Host $host;", "proxy_set_header X-Forwarded-For $remote_addr;",
                 "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_set_header X-Real-IP $remote_addr;",
                 'proxy_set_header Forwarded "";', "proxy_read_timeout 1h;", "proxy_send_timeout 1h;", "proxy_buffering off;"):
        assert line in site, line
    assert "map $http_upgrade $connection_upgrade {" in main
    assert "client_max_body_size 25m;" in main
    assert "limit_req_zone $binary_remote_addr zone=kit_general:10m rate=10r/s;" in main
    assert "limit_req_zone $binary_remote_addr zone=kit_webhook:10m rate=5r/s;" in main
    assert ("limit_req zone=kit_webhook burst=10 nodelay;" in site) == bool(s.public_webhooks) and "limit_conn kit_addr 64;" in site
    assert site.count(f"access_log {role.LOG_DIR}/{role.ACCESS_LOG_NAME} kit_json;") == 2
    assert default.count(f"access_log {role.LOG_DIR}/{role.ACCESS_LOG_NAME} kit_json;") == 2


def test_access_log_format_is_one_json_object_with_the_audit_fields():
    main = rendered(settings())["nginx.conf"]
    block = main.split("log_format kit_json escape=json", 1)[1].split(";\n", 1)[0]
    template = "".join(re.findall(r"'([^']*)'", block))
    sample = {"time_iso8601": "2026-01-01T00:00:00+00:00", "remote_addr": "198.51.100.7", "host": "gw.example.com",
              "request_method": "GET", "kit_request_uri": '/a"b?[redacted]', "status": "200", "body_bytes_sent": "512",
              "request_time": "0.004", "http_user_agent": 'curl/8 "x"', "upstream_status": "", "ssl_protocol": "TLSv1.3"}
    # escape=json escapes the values the way json.dumps does inside a string.
    line = re.sub(r"\$(\w+)", lambda m: json.dumps(sample[m.group(1)])[1:-1], template)
    record = json.loads(line)
    assert list(record) == ["time_iso8601", "remote_addr", "host", "request_method", "request_uri", "status", "body_bytes_sent",
                            "request_time", "http_user_agent", "upstream_status", "ssl_protocol"]
    assert record["status"] == 200 and record["request_uri"] == '/a"b?[redacted]'


def test_public_side_is_only_the_webhooks_named_and_everything_else_is_for_operators():
    default = rendered(settings())["openclaw-kit/site.conf"]
    assert "location ~" not in default, "no public webhook route unless public_webhooks names one"
    operators = default.split("location / {", 1)[1]
    assert re.findall(r"^\s*(allow \S+;|deny all;)", operators, re.M) == ["allow 127.0.0.1;", "allow ::1;", "deny all;"]

    private = rendered(settings(private_interface="wg0", private_cidrs=["10.8.0.0/24"]))["openclaw-kit/site.conf"]
    assert re.findall(r"^\s*allow (\S+);", private, re.M) == ["127.0.0.1", "::1", "10.8.0.0/24"]
    exposed = rendered(settings(dangerously_expose_control_ui_to_admin_cidrs=True))["openclaw-kit/site.conf"]
    assert re.findall(r"^\s*allow (\S+);", exposed, re.M) == ["127.0.0.1", "::1", "203.0.113.0/24"]

    every = rendered(settings(public_webhooks=list(WEBHOOK_PATHS)))["openclaw-kit/site.conf"]
    webhook = re.compile(re.search(r"location ~ (\S+) \{", every).group(1))
    for path in ("/hooks", "/hooks/wake", "/hooks/gmail", "/slack/events", "/googlechat", "/line/webhook", "/feishu/events",
                 "/nextcloud-talk-webhook", "/webhook/synology", "/webhooks/sms", "/plugins/webhooks/zapier"):
        assert webhook.match(path), path
    for path in ("/", "/healthz", "/readyz", "/chat", "/hooksx", "/lineage", "/assets/index.js", "/slack/eventsx", "/telegram-webhook",
                 "/v1/chat/completions", "/tools/invoke", "/line", "/webhook", "/webhooks"):
        assert not webhook.match(path), path
    only_hooks = re.compile(re.search(r"location ~ (\S+) \{", rendered(settings(public_webhooks=["hooks"]))["openclaw-kit/site.conf"]).group(1))
    assert only_hooks.match("/hooks/wake") and not only_hooks.match("/slack/events")


def test_unknown_public_webhook_is_a_settings_error():
    with pytest.raises(SettingsError) as error:
        settings(public_webhooks=["hooks", "telegram"])
    assert "public_webhooks[1] = 'telegram'" in str(error.value) and "'slack'" in str(error.value)


def test_bootstrap_certificate_is_p256_for_every_name_for_30_days():
    s = settings(extra_domains=["chat.example.com"])
    cert_pem, key_pem = bootstrap_certificate(s)
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw.example.com"
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "gw.example.com", "chat.example.com"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=30) <= lifetime <= datetime.timedelta(days=30, minutes=10)
    assert b"PRIVATE KEY" in key_pem and b"ENCRYPTED" not in key_pem


def test_activation_checks_the_candidate_before_anything_live_changes():
    check, promote = activation_commands(list(rendered(settings())))
    assert "nginx -t -q -c /etc/nginx/openclaw-kit.candidate/nginx.conf\n) ||" in check
    assert REJECTED in check and check.endswith("exit 1; }")
    # Nothing in the check writes outside the candidate directory.
    for step in check.split(" &&\n")[:-1]:
        assert "/etc/nginx/openclaw-kit.candidate" in step and " /etc/nginx/nginx.conf" not in step
    assert "/etc/nginx/nginx.conf" in promote and "mv /etc/nginx/openclaw-kit.new /etc/nginx/openclaw-kit" in promote


# --- this machine's nginx ----------------------------------------------------------------------------


def write_pair(directory: Path, s: HostSettings) -> tuple[Path, Path]:
    cert_pem, key_pem = bootstrap_certificate(s, days=1)
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return cert, key


def fake_etc(root: Path) -> Path:
    """A Debian-like /etc/nginx (as the package leaves it) under root, for the kit to take over."""
    etc = root / "etc"
    for sub in ("conf.d", "sites-enabled", "modules-enabled", "snippets", "openclaw-kit.candidate/openclaw-kit"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    mime = Path("/etc/nginx/mime.types")
    (etc / "mime.types").write_text(mime.read_text() if mime.is_file() else "types { text/html html; text/plain txt; }\n")
    (etc / "nginx.conf").write_text("events {}\nhttp { include %s/sites-enabled/*; }\n" % etc)
    (root / "log").mkdir(exist_ok=True)
    return etc


def install_candidate(etc: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        (etc / "openclaw-kit.candidate" / relative).write_text(content)


def run_activation(etc: Path, relatives: list[str]) -> subprocess.CompletedProcess:
    script = "set -e\n" + "\n".join(activation_commands(relatives, etc=str(etc)))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def snapshot(etc: Path) -> dict[str, bytes]:
    return {str(p.relative_to(etc)): p.read_bytes() for p in sorted(etc.rglob("*"))
            if p.is_file() and not p.is_symlink() and "openclaw-kit.candidate" not in p.parts}


@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_nginx_accepts_the_configuration_and_the_guard_promotes_it(data, tmp_path):
    s = settings(**data)
    etc = fake_etc(tmp_path)
    cert, key = write_pair(tmp_path, s)
    files = config_files(s, str(cert), str(key), etc=str(etc), log_dir=str(tmp_path / "log"), pid=str(tmp_path / "nginx.pid"),
                         acme_webroot=str(tmp_path / "acme"))
    install_candidate(etc, files)
    # An admin's own file that includes a snippet relative to /etc/nginx, as Debian's examples do.
    (etc / "snippets" / "admin.conf").write_text("# an admin's snippet\n")
    (etc / "conf.d" / "admin.conf").write_text("include snippets/admin.conf;\n")

    run = run_activation(etc, list(files))
    assert run.returncode == 0, run.stderr
    for relative, content in files.items():
        assert (etc / relative).read_text() == content, relative
    assert not (etc / "openclaw-kit.new").exists() and not (etc / "openclaw-kit.old").exists()
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(etc / "nginx.conf")], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "warn" not in check.stderr, check.stderr


@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
@pytest.mark.parametrize("problem", ["missing certificate", "unreadable certificate", "broken candidate"])
def test_a_rejected_candidate_never_reaches_the_live_files(problem, tmp_path):
    s = settings()
    etc = fake_etc(tmp_path)
    cert, key = write_pair(tmp_path, s)
    paths = dict(etc=str(etc), log_dir=str(tmp_path / "log"), pid=str(tmp_path / "nginx.pid"), acme_webroot=str(tmp_path / "acme"))
    good = config_files(s, str(cert), str(key), **paths)
    install_candidate(etc, good)
    assert run_activation(etc, list(good)).returncode == 0
    live = snapshot(etc)

    if problem == "missing certificate":
        bad = config_files(settings(gateway_port=20000), str(tmp_path / "nope.pem"), str(key), **paths)
    elif problem == "unreadable certificate":
        garbage = tmp_path / "garbage.pem"
        garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        bad = config_files(settings(gateway_port=20000), str(garbage), str(key), **paths)
    else:
        bad = dict(good)
        bad["openclaw-kit/site.conf"] = good["openclaw-kit/site.conf"].replace("proxy_buffering off;", "proxy_buffering sometimes;")
    install_candidate(etc, bad)
    run = run_activation(etc, list(bad))
    assert run.returncode != 0
    assert REJECTED in run.stderr and "[emerg]" in run.stderr, run.stderr
    assert snapshot(etc) == live, "the live files must be untouched"
    assert not (etc / "openclaw-kit.new").exists()


def gixy() -> str | None:
    beside = Path(sys.executable).parent / "gixy"
    return str(beside) if beside.exists() else shutil.which("gixy")


@pytest.mark.skipif(gixy() is None, reason="gixy is not installed (pip install gixy-ng): the static analysis needs it")
@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_gixy_finds_nothing(data, tmp_path):
    s = settings(**data)
    etc = fake_etc(tmp_path)
    files = config_files(s, str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem"), etc=str(etc), log_dir=str(tmp_path / "log"),
                         pid=str(tmp_path / "nginx.pid"), acme_webroot=str(tmp_path / "acme"))
    for relative, content in files.items():
        (etc / relative).parent.mkdir(parents=True, exist_ok=True)
        (etc / relative).write_text(content)
    run = subprocess.run([gixy(), str(etc / "nginx.conf")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "No issues found" in run.stdout, run.stdout + run.stderr


# --- a real nginx in front of a stand-in gateway -------------------------------------------------------


class Gateway(BaseHTTPRequestHandler):
    """Answers with the path and request headers it received; /own-policy sends headers as the Control UI does."""

    def do_GET(self):
        body = json.dumps({":path": self.path, **{k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Strict-Transport-Security", "max-age=1")
        if self.path.startswith("/own-policy"):
            self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'sha256-abc'")
            self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {process.stderr.read()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nginx did not listen on {port}")


@pytest.fixture
def live_nginx(tmp_path):
    if NGINX is None:
        pytest.skip(NO_NGINX)
    if os.geteuid() != 0:
        pytest.skip("running nginx with Debian's `user www-data` needs root")
    # Clients by source address: 127.0.0.1 (an SSH tunnel), PUBLIC, ADMIN (opted in), PRIVATE.
    s = settings(extra_domains=["chat.example.com"], admin_cidrs=[f"{ADMIN}/32"], dangerously_expose_control_ui_to_admin_cidrs=True,
                 private_interface="wg0", private_cidrs=[f"{PRIVATE}/32"], public_webhooks=["hooks"])
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    s = s.model_copy(update={"gateway_port": gateway.server_address[1]})
    # The ACME webroot must be readable by the workers (www-data): outside pytest's 0700 tree.
    webroot = Path(tempfile.mkdtemp(prefix="openclaw-kit-acme-"))
    webroot.chmod(0o755)
    (webroot / ".well-known/acme-challenge").mkdir(parents=True)
    (webroot / ".well-known/acme-challenge/token123").write_text("token123.thumbprint")
    http_port, https_port = free_port(), free_port()
    etc = fake_etc(tmp_path)
    cert, key = write_pair(tmp_path, s)
    files = config_files(s, str(cert), str(key), etc=str(etc), log_dir=str(tmp_path / "log"), pid=str(tmp_path / "nginx.pid"),
                         acme_webroot=str(webroot), http_listen=[f"127.0.0.1:{http_port}"], https_listen=[f"127.0.0.1:{https_port}"])
    # One worker is plenty (and the machine is shared).
    files["nginx.conf"] = files["nginx.conf"].replace("worker_processes auto;", "worker_processes 1;")
    for relative, content in files.items():
        (etc / relative).parent.mkdir(parents=True, exist_ok=True)
        (etc / relative).write_text(content)
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(etc / "nginx.conf"), "-g", "daemon off;"],
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(https_port, process)
        yield dict(settings=s, http=http_port, https=https_port, cert=cert, log=tmp_path / "log" / role.ACCESS_LOG_NAME)
    finally:
        process.terminate()
        process.wait(timeout=30)
        gateway.shutdown()
        shutil.rmtree(webroot, ignore_errors=True)


PUBLIC, ADMIN, PRIVATE = "127.0.0.5", "127.0.0.6", "127.0.0.7"


def tls_context(cert: Path, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    for attribute, value in versions.items():
        setattr(context, attribute, value)
    return context


def https_get(env, path: str, headers: dict | None = None, sni: str = "gw.example.com", source: str = "127.0.0.1"):
    # Connect to 127.0.0.1 from `source`, name the gateway's domain in SNI and Host, check the certificate for it.
    connection = http.client.HTTPConnection("127.0.0.1", env["https"], timeout=10)
    raw = socket.create_connection(("127.0.0.1", env["https"]), timeout=10, source_address=(source, 0))
    connection.sock = tls_context(env["cert"]).wrap_socket(raw, server_hostname=sni)
    connection.request("GET", path, headers={"Host": sni, **(headers or {})})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_live_proxy_overwrites_forwarding_headers_and_passes_upgrades(live_nginx):
    response, body = https_get(live_nginx, "/", {
        "X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "Forwarded": "for=6.6.6.6", "X-Forwarded-Host": "evil.example",
        "Tailscale-User-Login": "mallory@example.com", "Upgrade": "websocket", "Connection": "Upgrade"})
    seen = json.loads(body)
    assert response.status == 200
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-host"] == "gw.example.com" and seen["host"] == "gw.example.com"
    assert "forwarded" not in seen and "tailscale-user-login" not in seen
    assert seen["upgrade"] == "websocket" and seen["connection"] == "upgrade"
    _, body = https_get(live_nginx, "/")
    assert json.loads(body)["connection"] == "close"


def test_live_public_clients_get_403_except_on_public_webhooks(live_nginx):
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    for path, headers in (("/", {}), ("/", upgrade), ("/healthz", {}), ("/v1/models", {}), ("/tools/invoke", {}), ("/hooksx", {})):
        response, body = https_get(live_nginx, path, headers, source=PUBLIC)
        assert response.status == 403 and b"nginx" in body, (path, headers)
        assert response.headers["Strict-Transport-Security"], "the 403 carries the security headers too"
    response, body = https_get(live_nginx, "/hooks/wake", source=PUBLIC)
    assert response.status == 200 and json.loads(body)[":path"] == "/hooks/wake", "the public webhook reaches the gateway"
    for operator in ("127.0.0.1", ADMIN, PRIVATE):
        response, body = https_get(live_nginx, "/", upgrade, source=operator)
        assert response.status == 200 and json.loads(body)["upgrade"] == "websocket", operator
    records = [json.loads(line) for line in live_nginx["log"].read_text().splitlines()]
    assert {r["status"] for r in records if r["remote_addr"] == PUBLIC and r["request_uri"] != "/hooks/wake"} == {403}
    assert all(r["upstream_status"] == "" for r in records if r["status"] == 403), "a refused request never reached the gateway"


def test_live_security_headers_once_and_the_gateways_own_policy_wins(live_nginx):
    response, _ = https_get(live_nginx, "/api")
    assert response.headers.get_all("Strict-Transport-Security") == ["max-age=63072000; includeSubDomains"]
    assert response.headers.get_all("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.get_all("Referrer-Policy") == ["no-referrer"]
    assert response.headers.get_all("X-Frame-Options") == ["DENY"]
    [csp] = response.headers.get_all("Content-Security-Policy")
    assert csp.startswith("default-src 'self'; connect-src 'self' wss://gw.example.com wss://chat.example.com;")
    assert response.headers["Server"] == "nginx", "server_tokens off: no version"

    response, _ = https_get(live_nginx, "/own-policy")
    assert response.headers.get_all("Content-Security-Policy") == ["default-src 'self'; script-src 'self' 'sha256-abc'"]
    assert response.headers.get_all("X-Frame-Options") == ["DENY"]
    assert response.headers.get_all("Strict-Transport-Security") == ["max-age=63072000; includeSubDomains"]


def test_live_unknown_names_and_old_protocols_are_refused(live_nginx):
    for sni in ("unknown.example.com", None):
        with pytest.raises(ssl.SSLError):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.wrap_socket(socket.create_connection(("127.0.0.1", live_nginx["https"]), timeout=10), server_hostname=sni)
    # TLS 1.1, as an old client offers it (Debian's own nginx.conf would still accept it).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as refused:
        old.wrap_socket(socket.create_connection(("127.0.0.1", live_nginx["https"]), timeout=10), server_hostname="gw.example.com")
    assert "PROTOCOL_VERSION" in str(refused.value).upper() or "UNSUPPORTED PROTOCOL" in str(refused.value).upper(), refused.value
    # A known name in SNI, an unknown one in Host: the default server answers 421, nothing else.
    response, _ = https_get(live_nginx, "/", {"Host": "unknown.example.com"})
    assert response.status == 421
    modern = tls_context(live_nginx["cert"])
    with modern.wrap_socket(socket.create_connection(("127.0.0.1", live_nginx["https"]), timeout=10), server_hostname="gw.example.com") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_live_port_80_serves_acme_redirects_the_rest_and_drops_unknown_names(live_nginx):
    def get(path: str, host: str):
        connection = http.client.HTTPConnection("127.0.0.1", live_nginx["http"], timeout=10)
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response, response.read()

    response, body = get("/.well-known/acme-challenge/token123", "gw.example.com")
    assert response.status == 200 and body == b"token123.thumbprint"
    response, _ = get("/chat?session=1", "chat.example.com")
    assert response.status == 308 and response.headers["Location"] == "https://chat.example.com/chat?session=1"
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        get("/", "unknown.example.com")


def test_live_access_log_is_json_without_query_strings_and_webhooks_are_limited(live_nginx):
    https_get(live_nginx, "/share/session?token=s3cr3t-share-token")
    statuses = [https_get(live_nginx, "/hooks/wake")[0].status for _ in range(15)]
    assert 429 in statuses and statuses[0] == 200, statuses
    time.sleep(0.2)
    records = [json.loads(line) for line in live_nginx["log"].read_text().splitlines()]
    shared = next(r for r in records if r["request_uri"].startswith("/share/session"))
    assert shared["request_uri"] == "/share/session?[redacted]" and shared["ssl_protocol"] in ("TLSv1.2", "TLSv1.3")
    assert shared["host"] == "gw.example.com" and shared["upstream_status"] == "200" and shared["status"] == 200
    assert "s3cr3t" not in live_nginx["log"].read_text()
    assert any(r["status"] == 429 and r["request_uri"] == "/hooks/wake" for r in records)


# --- the role as pyinfra plans and runs it ---------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
FAKE_INVENTORY = fake_inventory()
NGINX_ONLY = """
from pyinfra import host, inventory

from roles.nginx import nginx
from openclaw_kit.settings import settings_for

nginx(settings_for(host, inventory))
"""
OPERATIONS = [
    "Install nginx", "ACME webroot /var/www/acme", "No distro default site /etc/nginx/sites-enabled/default",
    "Directory /etc/ssl/openclaw-kit/bootstrap", "Self-signed bootstrap key /etc/ssl/openclaw-kit/bootstrap/privkey.pem",
    "Self-signed bootstrap certificate /etc/ssl/openclaw-kit/bootstrap/fullchain.pem", "nginx's certificate /etc/ssl/openclaw-kit/current",
    "Check the candidate nginx configuration with nginx -t, then make it live", "Reload nginx for its new configuration",
    "nginx's systemd sandbox /etc/systemd/system/nginx.service.d/openclaw-kit-sandbox.conf",
    "Restart nginx in its new sandbox",
    "nginx enabled and running",
]


@pytest.mark.parametrize("flags", [["--diff", "-vvv", "--debug"], ["--debug-operations"], ["--dry", "--json"]])
def test_fresh_host_plan_checks_before_reload_and_never_shows_the_key(flags, tmp_path):
    """The role alone against pyinfra's fake connector (a fresh Debian 12 host: nothing installed, no files)."""
    (tmp_path / "inventory.py").write_text(FAKE_INVENTORY)
    (tmp_path / "deploy_nginx.py").write_text(NGINX_ONLY)
    env = {**os.environ, "OPENCLAW_GATEWAY_TOKEN": "t" * 64, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", *flags, str(tmp_path / "inventory.py"), str(tmp_path / "deploy_nginx.py")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "Self-signed bootstrap certificate" in output, "the key upload must be part of the run"
    assert "PRIVATE KEY" not in output, "the bootstrap key must never be printed, not even with --diff"
    if "-vvv" in flags:
        started = re.findall(r"Starting operation: nginx \| (.+?)\s*$", output, re.MULTILINE)
        assert started == OPERATIONS, "every operation has an explicit name, in this order"
