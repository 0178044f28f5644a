"""Role nginx: the only public face, TLS per Mozilla intermediate, the gateway behind it on loopback."""

import ipaddress
import json

from openclaw_kit.operations import sandbox_dropin
from openclaw_kit.settings.nginx import WEBHOOK_PATHS
from roles.nginx import ACCESS_LOG_NAME, CERTIFICATE, DEFAULT_SITE, ETC, LIVE_DIR, LOG_DIR, SERVICE, operator_cidrs
from tests.verify.sandboxing import exposure

# systemd-analyze security's exposure the kit's sandbox keeps nginx at or under (README: the figures).
EXPOSURE_TARGET = 4.5

# Asked from the host itself, so it checks nginx, not the network in between.
ASK = """python3 - <<'PY'
import http.client, socket, ssl, sys
host, port, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "tls"
try:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:  # the name in SNI too: nginx refuses a handshake that names no server of its own
        connection.sock = ssl._create_unverified_context().wrap_socket(connection.sock, server_hostname=host)
    connection.request("GET", "/healthz", headers={"Host": host})
    answer = connection.getresponse()
    print(answer.status, answer.getheader("Location") or "", answer.getheader("Strict-Transport-Security") or "")
except (OSError, http.client.HTTPException) as error:
    print("no-answer", type(error).__name__, *filter(None, [getattr(error, "reason", None)]))
PY"""


def ask(target, host_header: str, port: int, tls: bool) -> str:
    return target.host.check_output(ASK.replace("python3 -", f"python3 - {host_header} {port} {'tls' if tls else 'plain'}"))


def test_nginx_runs_with_a_configuration_it_accepts(target):
    nginx = target.host.service("nginx")
    assert nginx.is_running and nginx.is_enabled
    check = target.host.run("nginx -t")
    assert check.rc == 0, check.stderr


def test_only_the_kits_servers_are_enabled(target):
    assert not target.host.file(DEFAULT_SITE).exists, "the distro's default site is enabled"
    assert target.host.file(f"{LIVE_DIR}/site.conf").exists and target.host.file(f"{LIVE_DIR}/default-server.conf").exists
    config = target.host.check_output("nginx -T 2>/dev/null")
    names = {line.strip().rstrip(";") for line in config.splitlines() if line.strip().startswith("server_name ")}
    expected = " ".join([target.settings.domain, *target.settings.extra_domains])
    assert names == {f"server_name {expected}", "server_name _"}, names


def test_tls_settings(target):
    config = target.host.file(f"{ETC}/nginx.conf").content_string
    for directive in ("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_prefer_server_ciphers off;", "ssl_session_tickets off;", "server_tokens off;"):
        assert directive in config, directive
    assert CERTIFICATE in target.host.file(f"{LIVE_DIR}/site.conf").content_string


def test_listens_on_80_and_443_and_the_gateway_on_loopback_only(target):
    assert target.host.socket("tcp://0.0.0.0:80").is_listening
    assert target.host.socket("tcp://0.0.0.0:443").is_listening
    port = target.settings.gateway_port
    listeners = target.host.check_output(f"ss -Hltn 'sport = :{port}'")
    assert listeners and all(" 127.0.0.1:" in line or " [::1]:" in line for line in listeners.splitlines()), listeners


def test_http_redirects_and_https_reaches_the_gateway(target):
    domain = target.settings.domain
    assert ask(target, domain, 80, tls=False).split()[:2] == ["308", f"https://{domain}/healthz"]
    status, _, hsts = ask(target, domain, 443, tls=True).partition(" ")
    assert status == "200", "the gateway's /healthz did not answer through nginx"
    assert "max-age=63072000" in hsts


# Asked from the host to each of its own global addresses, from that address: nginx sees a client
# that is neither loopback nor an operator network, as the public would be seen.
ASK_PUBLIC = """python3 - <<'PY'
import json, socket, ssl, sys
domain, address, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
family = socket.AF_INET6 if ":" in address else socket.AF_INET
answers = {}
for path, upgrade in paths:
    try:
        with socket.socket(family) as raw:
            raw.settimeout(10)
            raw.bind((address, 0))
            raw.connect((address, 443))
            with ssl._create_unverified_context().wrap_socket(raw, server_hostname=domain) as tls:
                extra = "Upgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n" if upgrade else ""
                tls.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {domain}\\r\\n{extra}Connection: close\\r\\n\\r\\n".encode())
                head = tls.recv(4096).decode(errors="replace")
        status = head.split()[1]
        answers[path + (" (websocket)" if upgrade else "")] = "nginx-403" if status == "403" and "nginx" in head.lower() else status
    except (OSError, IndexError) as error:
        answers[path] = "no-answer " + type(error).__name__
print(json.dumps(answers))
PY"""


def public_addresses(target) -> list[str]:
    operators = [ipaddress.ip_network(cidr) for cidr in operator_cidrs(target.settings)]
    found = json.loads(target.host.check_output("ip -j address show"))
    addresses = [info["local"] for link in found for info in link.get("addr_info", []) if info.get("scope") == "global"]
    return [a for a in addresses if not any(ipaddress.ip_address(a) in net for net in operators if net.version == ipaddress.ip_address(a).version)]


def test_the_public_side_serves_only_the_public_webhooks(target):
    s = target.settings
    addresses = public_addresses(target)
    assert addresses, "the host has no public address to check"
    webhooks = [WEBHOOK_PATHS[name] + "/openclaw-kit-verify" for name in s.public_webhooks]
    closed = [p for name, p in WEBHOOK_PATHS.items() if name not in s.public_webhooks]
    paths = [["/", False], ["/", True], ["/healthz", False], ["/v1/models", False], ["/tools/invoke", False],
             *[[p, False] for p in closed + webhooks]]
    for address in addresses:
        command = ASK_PUBLIC.replace("python3 -", f"python3 - {s.domain} {address} '{json.dumps(paths)}'")
        answers = json.loads(target.host.check_output(command))
        refused = {path: answer for path, answer in answers.items() if not any(path == w for w in webhooks)}
        assert set(refused.values()) == {"nginx-403"}, (address, refused)
        # A public webhook reaches the gateway: whatever it answers, it is not nginx's 403.
        assert all(answers[w] not in ("nginx-403",) and not answers[w].startswith("no-answer") for w in webhooks), (address, answers)


def test_unknown_names_get_nothing(target):
    # nginx's own refusals, not any failure (nginx down is refused too, but differently): on 80 the
    # connection is closed without a response (444), on 443 the handshake is refused (an alert).
    assert ask(target, "unknown.invalid", 80, tls=False) == "no-answer RemoteDisconnected"
    assert ask(target, "unknown.invalid", 443, tls=True) == "no-answer SSLError TLSV1_UNRECOGNIZED_NAME"


def test_access_log_is_json(target):
    log = target.host.file(f"{LOG_DIR}/{ACCESS_LOG_NAME}")
    assert log.exists
    last = target.host.check_output(f"tail -n 1 {LOG_DIR}/{ACCESS_LOG_NAME}")
    assert last.startswith("{") and '"status"' in last, last


def test_nginx_runs_in_its_systemd_sandbox(target):
    assert target.host.file(sandbox_dropin(SERVICE)).is_file
    assert target.host.service("nginx").is_running
    assert exposure(target, SERVICE) <= EXPOSURE_TARGET
