"""Every script the kit places on a host, rendered as the roles render it, and run here (test_host_shell.py
shellchecks them all).

The scripts' own logic runs for real; the system programs they drive (certbot, nginx, systemctl,
systemd-run, logger, restic, the OpenClaw CLI) are stand-ins on PATH that record how they were called,
except where the real one is harmless here (nft in a scratch network namespace, setpriv as root).
The sandbox tests run the same scripts against the real programs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from openclaw_kit import jsonconfig
from openclaw_kit.templates import render, render_command
from roles import backup, logs, tls, wireguard
from roles.firewall import nftables
from roles.openclaw import systemd as openclaw
from tests.unit.test_backup import SFTP as BACKUP_SFTP
from tests.unit.test_backup import settings as backup_settings
from tests.unit.test_firewall import settings as firewall_settings
from tests.unit.test_wireguard import mesh_host

# /bin/sh scripts run with dash, the strictest /bin/sh a host has (Debian's; bash 3.2 in sh mode on a Mac).
DASH = shutil.which("dash")


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def stand_ins(tmp_path):
    """A bin directory first on PATH; each stand-in logs `name args` to calls.log and fails when
    FAIL_<NAME> is set (printing its value)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("certbot", "nginx", "systemctl", "systemd-run", "logger"):
        variable = "FAIL_" + name.upper().replace("-", "_")
        executable(bin_dir / name, f'#!/bin/sh\necho "{name} $*" >> {calls}\n'
                                   f'if [ -n "${{{variable}:-}}" ]; then echo "${variable}" >&2; exit 1; fi\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return env, calls


def run(script: Path, *args: str, env: dict, shell: str | None = None) -> subprocess.CompletedProcess:
    if shell is None and DASH and script.read_text().startswith("#!/bin/sh\n"):
        shell = DASH
    command = [shell, str(script), *args] if shell else [str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


# --- tls: renewal and certbot's deploy hook ------------------------------------------------------------------


def tls_script(tmp_path: Path, src: str) -> tuple[Path, Path]:
    pending = tmp_path / "reload-pending"
    data = {**tls.script_data(acme_ca_file=None), "reload_pending": str(pending)}
    return executable(tmp_path / src.removesuffix(".j2"), render("tls", src, **data)), pending


def test_renewal_reloads_nginx_for_a_pending_certificate(tmp_path, stand_ins):
    env, calls = stand_ins
    script, pending = tls_script(tmp_path, "renew-certificates.j2")
    pending.touch()
    done = run(script, "--now", "--force-renewal", env=env)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines()[:3] == [
        "certbot renew --quiet --no-random-sleep-on-renew --force-renewal", "nginx -t -q", "systemctl reload nginx.service"]
    assert not pending.exists()


def test_renewal_failures_are_reported_and_fail(tmp_path, stand_ins):
    env, calls = stand_ins
    script, pending = tls_script(tmp_path, "renew-certificates.j2")
    failed = run(script, "--now", env={**env, "FAIL_CERTBOT": "acme down"})
    assert failed.returncode == 1 and "certificate renewal FAILED (exit 1)" in failed.stderr
    pending.touch()
    broken = run(script, "--now", env={**env, "FAIL_NGINX": "nginx: bad certificate"})
    assert broken.returncode == 1 and "nginx still serves the previous certificate: nginx -t failed: nginx: bad certificate" in broken.stderr
    assert pending.exists(), "still pending: the next run tries again"


@pytest.mark.parametrize("nginx_ok", [True, False])
def test_the_deploy_hook_reloads_only_a_configuration_nginx_accepts(tmp_path, stand_ins, nginx_ok):
    env, calls = stand_ins
    script, pending = tls_script(tmp_path, "deploy-hook.j2")
    hook = run(script, env={**env, "RENEWED_LINEAGE": "/etc/letsencrypt/live/gw"} | ({} if nginx_ok else {"FAIL_NGINX": "broken"}))
    assert hook.returncode == (0 if nginx_ok else 1)
    assert pending.exists() is not nginx_ok
    assert ("systemctl reload nginx.service" in calls.read_text()) is nginx_ok
    if not nginx_ok:
        assert "renewed /etc/letsencrypt/live/gw, but nginx -t failed, nginx NOT reloaded: broken" in hook.stderr


# --- logs: the backup job ----------------------------------------------------------------------------------


def test_backup_moves_a_verified_archive_into_the_store_and_prunes(tmp_path, stand_ins):
    env, _ = stand_ins
    staging, store = tmp_path / "staging", tmp_path / "store"
    staging.mkdir()
    store.mkdir()
    (staging / "leftover").write_text("x")
    old = store / "2020-01-01-openclaw-backup.tar.gz"
    old.write_text("old")
    os.utime(old, (0, 0))
    cli = executable(tmp_path / "cli", f"""#!/bin/sh
if [ "$1 $2" = "backup create" ]; then
  archive={staging}/2026-12-01-openclaw-backup.tar.gz
  echo data > "$archive"
  printf '{{"archivePath": "%s", "verified": true}}' "$archive"
fi
""")
    script = executable(tmp_path / "backup", render("logs", "openclaw-kit-backup.j2", **{
        **logs.backup_data(retention_days=7), "cli": str(cli), "staging": str(staging), "store": str(store)}))
    done = run(script, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"archive": f"{store}/2026-12-01-openclaw-backup.tar.gz", "bytes": 5, "verified": True, "kept": 1, "removed": 1}
    assert oct((store / "2026-12-01-openclaw-backup.tar.gz").stat().st_mode & 0o777) == "0o400"
    assert not list(staging.iterdir()) and not old.exists()


def test_backup_refuses_an_unverified_archive(tmp_path, stand_ins):
    env, _ = stand_ins
    (tmp_path / "staging").mkdir()
    cli = executable(tmp_path / "cli", '#!/bin/sh\necho \'{"archivePath": "/elsewhere/x.tar.gz", "verified": false}\'\n')
    script = executable(tmp_path / "backup", render("logs", "openclaw-kit-backup.j2", **{
        **logs.backup_data(retention_days=7), "cli": str(cli), "staging": str(tmp_path / "staging"), "store": str(tmp_path)}))
    refused = run(script, env=env)
    assert refused.returncode == 1 and "did not report a verified archive" in refused.stderr


# --- openclaw: the CLI wrapper --------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper drops to the service user with setpriv, which needs root")
def test_the_cli_wrapper_runs_the_release_as_the_service_with_its_environment(tmp_path):
    release, state = tmp_path / "release", tmp_path / "state"
    (release / "bin").mkdir(parents=True)
    state.mkdir()
    executable(release / "bin" / "openclaw", '#!/bin/sh\necho "args $*"; echo "uid $(id -u)"; env | grep -E "^(OPENCLAW_|NODE_|HOME=)" | sort\n')
    env_file = tmp_path / "gateway.env"
    env_file.write_text("OPENCLAW_GATEWAY_TOKEN='secret-for-the-test'\n")
    data = {**openclaw.cli_data(), "service_user": "root", "state_dir": str(state), "env_file": str(env_file),
            "current": str(tmp_path / "current")}
    script = executable(tmp_path / "cli", render("openclaw", "openclaw-kit-cli.j2", **data))
    done = subprocess.run([str(script), "--release", str(release), "config", "validate"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["args config validate", "uid 0"]
    assert f"HOME={state}" in lines and "OPENCLAW_GATEWAY_TOKEN=secret-for-the-test" in lines
    assert f"OPENCLAW_CONFIG_PATH={openclaw.LIVE_CONFIG}" in lines and "OPENCLAW_NO_AUTO_UPDATE=1" in lines
    assert f"NODE_COMPILE_CACHE={openclaw.COMPILE_CACHE}" in lines


# --- openclaw: Node.js and npm unpacked ---------------------------------------------------------------------


def test_node_is_unpacked_only_from_the_pinned_archive_and_readable_by_the_service(tmp_path):
    (tmp_path / "node-v1" / "bin").mkdir(parents=True)
    (tmp_path / "node-v1" / "bin" / "node").write_text("#!/bin/sh\n")
    archive = tmp_path / "node.tar.xz"
    subprocess.run(["tar", "-cJf", str(archive), "-C", str(tmp_path), "node-v1"], check=True)
    node_dir = tmp_path / "opt" / "node-v1"
    (tmp_path / "opt").mkdir()
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()

    def unpack(pinned: str) -> subprocess.CompletedProcess:
        command = render_command("openclaw", "unpack-node.sh.j2", sha256=pinned, archive=str(archive), node_dir=str(node_dir))
        return subprocess.run([DASH or "sh", "-c", f"umask 077; {command}"], capture_output=True, text=True, timeout=60)

    refused = unpack("0" * 64)
    assert refused.returncode != 0 and not node_dir.exists() and not (tmp_path / "opt" / "node-v1.partial").exists()
    done = unpack(sha256)
    assert done.returncode == 0, done.stderr
    assert (node_dir / "bin" / "node").read_text() == "#!/bin/sh\n" and not (tmp_path / "opt" / "node-v1.partial").exists()
    assert oct(node_dir.stat().st_mode & 0o777) == "0o755", "the service user cannot read what root unpacked"


def test_npm_is_unpacked_into_its_own_directory(tmp_path):
    (tmp_path / "package" / "bin").mkdir(parents=True)
    (tmp_path / "package" / "bin" / "npm-cli.js").write_text("// npm\n")
    archive = tmp_path / "npm.tgz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(tmp_path), "package"], check=True)
    npm_dir = tmp_path / "opt" / "npm-11"
    (npm_dir / "stale").mkdir(parents=True)
    command = render_command("openclaw", "unpack-npm.sh.j2", archive=str(archive), npm_dir=str(npm_dir))
    done = subprocess.run([DASH or "sh", "-c", f"umask 077; {command}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in npm_dir.iterdir()) == ["bin"] and oct(npm_dir.stat().st_mode & 0o777) == "0o755"


# --- openclaw: the config merge tool --------------------------------------------------------------------------


def test_the_merge_tool_replaces_the_kits_sections_and_keeps_openclaws(tmp_path):
    desired, live, out = tmp_path / "desired.json", tmp_path / "live.json", tmp_path / "out.json"
    desired.write_text('// the kit\'s\n{"gateway": {"port": 1}, "channels": {}}\n')
    live.write_text('{"gateway": {"port": 2}, "meta": {"lastTouched": "x"}}')
    tool = Path(jsonconfig.__file__)
    assert subprocess.run([str(tool), str(desired), str(live), str(out)], capture_output=True, text=True).returncode == 0
    assert json.loads(out.read_text()) == {"gateway": {"port": 1}, "meta": {"lastTouched": "x"}, "channels": {}}
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    digest = subprocess.run([str(tool), "--digest", str(out), "channels", "gateway"], capture_output=True, text=True).stdout.strip()
    assert digest == jsonconfig.digest({"channels": {}, "gateway": {"port": 1}})


# --- openclaw: switch, restart, health, rollback ----------------------------------------------------------------

OLD, NEW = "openclaw-2026.9.5-node-v24.21.0", "openclaw-2026.9.6-node-v24.22.3"
# The systemd stand-in answers for the release `current` points at, as systemd would for its gateway:
# a release whose `behaviour` file says "crash" keeps exiting and being restarted (NRestarts grows).
FAKE_SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$CALLS"
behaviour=$(cat "$(readlink "$CURRENT")/behaviour" 2>/dev/null)
case "$*" in
  # A started gateway writes to its state (a new OpenClaw migrates it).
  restart*) echo "started $(basename "$(readlink "$CURRENT")")" >> "$STATE/log" ;;
  *NRestarts*) if [ "$behaviour" = crash ]; then grep -c NRestarts "$CALLS"; else echo 0; fi ;;
  *ActiveState*) echo active ;;
  *SubState*) echo running ;;
esac
"""


class GatewayStandIn(BaseHTTPRequestHandler):
    """The gateway's probes on loopback, answering as the release `current` points at behaves."""

    current: Path

    def do_GET(self):
        behaviour = (self.current.resolve() / "behaviour").read_text().strip() if self.current.exists() else "down"
        answers = {"good": (200, 200), "no-readyz": (200, 404), "not-ready": (200, 503)}
        healthz, readyz = answers.get(behaviour, (503, 503))
        self.send_response(healthz if self.path == "/healthz" else readyz)
        self.end_headers()
        self.wfile.write(b'{"ready": false, "failing": ["telegram"]}' if self.path == "/readyz" and readyz == 503 else b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway_host(tmp_path, stand_ins):
    """/opt/openclaw in miniature: two releases on their own Node.js, `current` at the old one, the
    lifecycle script rendered as the role renders it (3 s bound) and a gateway answering on loopback."""
    env, calls = stand_ins
    prefix = tmp_path / "opt"
    for release, node in ((OLD, "node-v24.21.0"), (NEW, "node-v24.22.3")):
        (prefix / node / "bin").mkdir(parents=True)
        (prefix / node / "bin" / "node").write_text("")
        (prefix / "releases" / release / "bin").mkdir(parents=True)
        (prefix / "releases" / release / "bin" / "node").symlink_to(prefix / node / "bin" / "node")
        (prefix / "releases" / release / ".installed").touch()
        (prefix / "releases" / release / "behaviour").write_text("good")
    current = prefix / "current"
    current.symlink_to(prefix / "releases" / OLD)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "log").write_text("before the switch\n")
    executable(tmp_path / "bin" / "systemctl", FAKE_SYSTEMCTL)
    executable(tmp_path / "bin" / "journalctl", '#!/bin/sh\necho "gateway: listening failed"\n')
    handler = type("Handler", (GatewayStandIn,), {"current": current})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = dict(service=openclaw.SERVICE, current=str(current), prefix=str(prefix), state_dir=str(state),
                work_dir=str(tmp_path / "kit"), port=server.server_address[1], timeout=3)
    script = executable(tmp_path / "openclaw-kit-gateway", render("openclaw", "openclaw-kit-gateway.j2", **data))
    yield script, prefix, {**env, "CALLS": str(calls), "CURRENT": str(current), "STATE": str(state)}, calls
    server.shutdown()


def restarts(calls: Path) -> int:
    return calls.read_text().count("systemctl restart openclaw-gateway.service") if calls.exists() else 0


@pytest.mark.parametrize("behaviour", ["good", "no-readyz"])
def test_a_healthy_release_is_switched_to_and_the_old_one_removed(gateway_host, behaviour):
    script, prefix, env, calls = gateway_host
    (prefix / "releases" / NEW / "behaviour").write_text(behaviour)  # a release without /readyz answers 404 there
    done = run(script, "switch", str(prefix / "releases" / NEW), env=env)
    assert done.returncode == 0, done.stderr
    assert "switched to OpenClaw 2026.9.6 on Node.js 24.22.3, was OpenClaw 2026.9.5 on Node.js 24.21.0" in done.stdout
    assert os.readlink(prefix / "current") == str(prefix / "releases" / NEW) and restarts(calls) == 1
    assert sorted(p.name for p in prefix.iterdir()) == ["current", "node-v24.22.3", "releases"]
    assert [p.name for p in (prefix / "releases").iterdir()] == [NEW]
    # The gateway was stopped before its state was copied; the copy is gone once the new one is healthy.
    assert "systemctl stop openclaw-gateway.service" in calls.read_text()
    assert (prefix.parent / "state" / "log").read_text() == f"before the switch\nstarted {NEW}\n"
    assert not (prefix.parent / "kit" / "state-before-switch").exists()


@pytest.mark.parametrize("behaviour, reason", [
    ("crash", "the gateway exited while starting (systemd restarted it)"),
    ("down", "no healthy answer within 3s (last: /healthz: 503 {})"),
    ("not-ready", 'no healthy answer within 3s (last: /readyz: 503 {"ready": false, "failing": ["telegram"]})'),
])
def test_a_release_that_does_not_come_up_is_rolled_back(gateway_host, behaviour, reason):
    script, prefix, env, calls = gateway_host
    (prefix / "releases" / NEW / "behaviour").write_text(behaviour)
    failed = run(script, "switch", str(prefix / "releases" / NEW), env=env)
    assert failed.returncode == 1
    assert reason in failed.stderr, failed.stderr
    kit = prefix.parent / "kit"
    assert ("UPGRADE FAILED, ROLLED BACK: OpenClaw 2026.9.6 on Node.js 24.22.3 did not become healthy "
            f"({reason}); {prefix}/current points at OpenClaw 2026.9.5 on Node.js 24.21.0 again, which is running "
            "and healthy on the state it had before the switch (what the new release made of it is kept in "
            f"{kit}/state-of-failed-switch).") in failed.stderr
    # The old gateway got its state back as it was; what the new one wrote is kept aside.
    assert (prefix.parent / "state" / "log").read_text() == f"before the switch\nstarted {OLD}\n"
    assert (kit / "state-of-failed-switch" / "log").read_text() == f"before the switch\nstarted {NEW}\n"
    assert oct((prefix.parent / "state").stat().st_mode & 0o777) == "0o700" and not (kit / "state-before-switch").exists()
    assert "gateway: listening failed" in failed.stderr  # the journal, for the cause
    # Switched back and restarted on the old release; the failed one and its Node.js are gone, the host as before.
    assert os.readlink(prefix / "current") == str(prefix / "releases" / OLD) and restarts(calls) == 2
    assert sorted(p.name for p in prefix.iterdir()) == ["current", "node-v24.21.0", "releases"]
    assert [p.name for p in (prefix / "releases").iterdir()] == [OLD]


def test_a_rollback_that_does_not_come_up_either_says_so(gateway_host):
    script, prefix, env, calls = gateway_host
    (prefix / "releases" / NEW / "behaviour").write_text("crash")
    (prefix / "releases" / OLD / "behaviour").write_text("down")
    failed = run(script, "switch", str(prefix / "releases" / NEW), env=env)
    assert failed.returncode == 1
    assert ("UPGRADE FAILED, ROLLBACK FAILED: OpenClaw 2026.9.6 on Node.js 24.22.3 did not become healthy (the gateway "
            "exited while starting (systemd restarted it)), and OpenClaw 2026.9.5 on Node.js 24.21.0 did not come back "
            "either (no healthy answer within 3s") in failed.stderr
    assert os.readlink(prefix / "current") == str(prefix / "releases" / OLD)


def test_a_first_release_that_does_not_come_up_fails_with_nothing_to_roll_back_to(gateway_host):
    script, prefix, env, calls = gateway_host
    (prefix / "current").unlink()
    (prefix / "releases" / NEW / "behaviour").write_text("crash")
    failed = run(script, "switch", str(prefix / "releases" / NEW), env=env)
    assert failed.returncode == 1 and "there is no previous release to roll back to" in failed.stderr
    assert os.readlink(prefix / "current") == str(prefix / "releases" / NEW) and restarts(calls) == 1


def test_switching_to_the_running_healthy_release_changes_nothing(gateway_host):
    script, prefix, env, calls = gateway_host
    done = run(script, "switch", str(prefix / "releases" / OLD), env=env)
    assert done.returncode == 0 and "already running and healthy" in done.stdout
    assert restarts(calls) == 0 and (prefix / "releases" / NEW).exists() and (prefix / "node-v24.22.3").exists()


def test_an_incomplete_release_is_refused_before_anything_changes(gateway_host):
    script, prefix, env, calls = gateway_host
    (prefix / "releases" / NEW / ".installed").unlink()
    refused = run(script, "switch", str(prefix / "releases" / NEW), env=env)
    assert refused.returncode == 1 and "is not a complete release" in refused.stderr
    assert os.readlink(prefix / "current") == str(prefix / "releases" / OLD) and restarts(calls) == 0


@pytest.mark.parametrize("behaviour", ["good", "crash"])
def test_restart_and_wait_report_an_unhealthy_gateway(gateway_host, behaviour):
    script, prefix, env, calls = gateway_host
    (prefix / "releases" / OLD / "behaviour").write_text(behaviour)
    for mode in ("restart", "wait"):
        done = run(script, mode, env=env)
        assert done.returncode == (0 if behaviour == "good" else 1), done.stderr
    assert restarts(calls) == 1 and os.readlink(prefix / "current") == str(prefix / "releases" / OLD)
    if behaviour == "crash":
        assert "openclaw-gateway.service is not healthy: the gateway exited while starting" in done.stderr


# --- firewall: apply, confirm, roll back ---------------------------------------------------------------------

NFT = shutil.which("nft")
FIREWALL_NEEDS = "needs root, nft and unshare to run the apply script in a scratch network namespace"


@pytest.mark.skipif(os.geteuid() != 0 or not NFT or not shutil.which("unshare"), reason=FIREWALL_NEEDS)
def test_the_apply_script_loads_confirms_and_rolls_back(tmp_path, stand_ins):
    env, calls = stand_ins
    data = {**nftables.script_data(), "path": str(tmp_path / "apply"), "run_dir": str(tmp_path / "run"),
            "persisted": str(tmp_path / "persisted.nft"), "marker": str(tmp_path / "applied")}
    script = executable(tmp_path / "apply", render("firewall", "openclaw-kit-firewall-apply.j2", **data))
    first, second = tmp_path / "first.nft", tmp_path / "second.nft"
    first.write_text(nftables.ruleset(firewall_settings()))
    second.write_text(nftables.ruleset(firewall_settings(sshd_port=2222)))
    listing = f"{nftables.FINGERPRINT}"
    steps = (f"{script} --timeout 30 {first} && {script} --confirm && echo \"first $({listing})\" && "
             f"{script} --timeout 30 {second} && echo \"second $({listing})\" && {script} --rollback && "
             f"echo \"back $({listing})\" && {{ {script} --confirm; echo \"confirm-after-rollback $?\"; }}")
    done = subprocess.run(["unshare", "-n", "sh", "-c", steps], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    values = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert values["first"] != values["second"] and values["back"] == values["first"]
    assert values["confirm-after-rollback"] == "3", "nothing to confirm once rolled back"
    assert (tmp_path / "persisted.nft").read_text() == first.read_text()
    assert (tmp_path / "applied").read_text().split() == [nftables.hashlib.sha256(first.read_bytes()).hexdigest(), values["first"]]
    armed = [line for line in calls.read_text().splitlines() if line.startswith("systemd-run")]
    assert len(armed) == 2 and all("--on-active=30s" in line and line.endswith(f"{script} --rollback") for line in armed)


@pytest.mark.skipif(os.geteuid() != 0 or not NFT or not shutil.which("unshare"), reason=FIREWALL_NEEDS)
def test_the_apply_script_refuses_a_ruleset_nft_rejects(tmp_path, stand_ins):
    env, calls = stand_ins
    data = {**nftables.script_data(), "path": str(tmp_path / "apply"), "run_dir": str(tmp_path / "run")}
    script = executable(tmp_path / "apply", render("firewall", "openclaw-kit-firewall-apply.j2", **data))
    (tmp_path / "bad.nft").write_text("table inet openclaw_kit { chain input { no such thing; } }\n")
    refused = subprocess.run(["unshare", "-n", str(script), str(tmp_path / "bad.nft")], capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "rejected by nft -c; the running ruleset is unchanged" in refused.stderr
    assert "systemd-run" not in (calls.read_text() if calls.exists() else "")


# --- backup: the off-host job ---------------------------------------------------------------------------------

FAKE_OFFSITE_RESTIC = """#!/bin/bash
echo "$*" >> "$CALLS"
case "$1" in
  cat) [ -e "$REPOSITORY" ] || { printf '%s\\n' "$CAT_ERROR" >&2; exit 1; } ;;
  init) [ -z "$INIT_ERROR" ] || { printf '%s\\n' "$INIT_ERROR" >&2; exit 1; }; touch "$REPOSITORY" ;;
  backup) echo '{"message_type":"status","percent_done":0.5}'
          echo "{\\"message_type\\":\\"summary\\",\\"snapshot_id\\":\\"$4-0001\\"}" ;;
esac
"""
NO_REPOSITORY = "Fatal: unable to open config file: Lstat: file does not exist\nIs there a repository at the following location?"


@pytest.fixture
def offsite_root(tmp_path):
    for directory in ("store", "audit"):
        (tmp_path / directory).mkdir()
    for name, age in (("2026-11-30T03-37-00.000+00-00-openclaw-backup.tar.gz", 86400), ("2026-12-01T03-37-00.000+00-00-openclaw-backup.tar.gz", 0)):
        (tmp_path / "store" / name).write_text("archive")
        os.utime(tmp_path / "store" / name, (time.time() - age, time.time() - age))
    for name in ("audit.log", "audit.log-20261130-000000", "audit.log-20261201-000000"):
        (tmp_path / "audit" / name).write_text("{}\n")
    return tmp_path


def offsite_script(root: Path, restic: Path) -> Path:
    """The off-host job, rendered to use `restic` and root's store/ and audit/."""
    return executable(root / "offsite", render("backup", "openclaw-kit-offsite-backup.j2", **{
        **backup.offsite_data(backup_settings(BACKUP_SFTP)), "restic": restic, "store": root / "store",
        "local_backup_lock": root / "backup.lock", "audit_dir": root / "audit"}))


def run_offsite(root: Path, *args: str, cat_error: str = NO_REPOSITORY, init_error: str = "") -> subprocess.CompletedProcess:
    script = offsite_script(root, executable(root / "restic", FAKE_OFFSITE_RESTIC))
    env = {**os.environ, "CALLS": str(root / "calls"), "REPOSITORY": str(root / "repository"), "CAT_ERROR": cat_error,
           "INIT_ERROR": init_error}
    return run(script, *args, env=env)


def test_the_offsite_job_initialises_a_missing_repository_copies_the_newest_archive_and_the_rotated_audit_files(offsite_root):
    done = run_offsite(offsite_root)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    newest = str(offsite_root / "store" / "2026-12-01T03-37-00.000+00-00-openclaw-backup.tar.gz")
    assert result == {"archive": newest, "state_snapshot": "gateway-state-0001", "audit_snapshot": "audit-log-0001", "audit_files": 2}
    calls = (offsite_root / "calls").read_text().splitlines()
    assert calls[:3] == ["cat config", "init", f"backup --json --tag gateway-state {newest}"]
    assert calls[3] == f"backup --json --tag audit-log {offsite_root}/audit/audit.log-20261130-000000 {offsite_root}/audit/audit.log-20261201-000000"
    assert calls[4:] == ["forget --group-by host,tags --tag gateway-state --keep-daily 7 --keep-weekly 4 --keep-monthly 12",
                         "forget --group-by host,tags --tag audit-log --keep-within 2555d", "prune"]
    # The next run finds the repository and does not initialise it again.
    (offsite_root / "calls").unlink()
    assert run_offsite(offsite_root).returncode == 0
    assert "init" not in (offsite_root / "calls").read_text().splitlines()


def test_a_repository_restic_cannot_open_is_an_error_never_a_new_repository(offsite_root):
    done = run_offsite(offsite_root, cat_error="Fatal: wrong password or no key found")
    assert done.returncode == 1
    assert done.stderr == ("openclaw-kit-offsite-backup: restic cannot open the off-host repository (check offsite_backup: "
                           "repository, password, sftp_host_key, and this host's key authorized on the target); "
                           "restic says: Fatal: wrong password or no key found\n")
    assert (offsite_root / "calls").read_text().splitlines() == ["cat config"]


def test_open_only_initialises_a_missing_repository_and_stops(offsite_root):
    done = run_offsite(offsite_root, "--open-only")
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert (offsite_root / "calls").read_text().splitlines() == ["cat config", "init"]


# restic 0.17 and newer retry for 15 minutes before they say so (the job stops them sooner).
RETRIED = ("Stat(<config/>) returned error, retrying after 1.2s: Stat: {why}\n"
           "Stat(<config/>) returned error, retrying after 2.9s: Stat: {why}\n"
           "Fatal: unable to open config file: context canceled\nIs there a repository at the following location?")


def test_an_error_restic_retried_is_an_error_with_its_reason_never_a_new_repository(offsite_root):
    signature = "The request signature we calculated does not match the signature you provided."
    done = run_offsite(offsite_root, "--open-only", cat_error=RETRIED.format(why=signature))
    assert done.returncode == 1
    assert done.stderr.startswith("openclaw-kit-offsite-backup: restic cannot open the off-host repository")
    assert done.stderr.endswith(f"restic says: Stat: {signature}\n")
    assert (offsite_root / "calls").read_text().splitlines() == ["cat config"]


def test_a_bucket_restic_retried_for_is_made_by_init(offsite_root):
    done = run_offsite(offsite_root, "--open-only", cat_error=RETRIED.format(why="The specified bucket does not exist"))
    assert done.returncode == 0, done.stderr
    assert (offsite_root / "calls").read_text().splitlines() == ["cat config", "init"]


def test_an_init_the_server_refuses_is_an_error_with_its_reason(offsite_root):
    # Older restic (Debian 12's 0.14) calls any failure to open "no repository here": a refused key too.
    refused = NO_REPOSITORY.replace("Lstat: file does not exist", "Stat: The AWS Access Key Id you provided does not exist")
    done = run_offsite(offsite_root, "--open-only", cat_error=refused, init_error="client.BucketExists: Access Denied.")
    assert done.returncode == 1
    assert "restic cannot initialise the off-host repository" in done.stderr
    assert done.stderr.endswith("restic says: client.BucketExists: Access Denied.\n")


def test_the_offsite_job_without_a_local_archive_is_an_error(offsite_root):
    for archive in (offsite_root / "store").iterdir():
        archive.unlink()
    done = run_offsite(offsite_root)
    assert done.returncode == 1 and "the local backup has not run" in done.stderr


# --- backup: restore -------------------------------------------------------------------------------------------

# restic's `restore SNAPSHOT --target DIR ...`: the snapshot holds one archive, as the off-host job stores it.
FAKE_RESTORE_RESTIC = """#!/bin/bash
echo "$@" >> "$CALLS"
[ "$1" = restore ] || exit 3
target=$4
mkdir -p "$target/var/backups/openclaw"
cp "$ARCHIVE" "$target/var/backups/openclaw/2026-12-01T03-37-00.000Z-openclaw-backup.tar.gz"
"""
# OpenClaw's `backup restore ARCHIVE --target DIR`: the archive's root, its manifest, payload/posix/<path>.
FAKE_RESTORE_CLI = """#!/bin/bash
echo "cli $*" >> "$CALLS"
[ "$1 $2" = "backup restore" ] && [ "$4" = --target ] || exit 3
root="$5/2026-12-01T03-37-00.000Z-openclaw-backup"
mkdir -p "$root/payload/posix$STATE_DIR"
tar -xzf "$3" -C "$root/payload/posix$STATE_DIR"
printf '{"schemaVersion":1,"archiveRoot":"2026-12-01T03-37-00.000Z-openclaw-backup","assets":[{"kind":"state","sourcePath":"%s","archivePath":"2026-12-01T03-37-00.000Z-openclaw-backup/payload/posix%s"}]}' \\
  "$STATE_DIR" "$STATE_DIR" > "$root/manifest.json"
"""
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the script sets ownership (install -o, chown): needs root")


@pytest.fixture
def restore_root(tmp_path, stand_ins):
    """Stand-ins for restic and OpenClaw's CLI next to the systemctl one; a current state and a saved one."""
    executable(tmp_path / "bin" / "restic", FAKE_RESTORE_RESTIC)
    executable(tmp_path / "bin" / "cli", FAKE_RESTORE_CLI)
    state = tmp_path / "state"
    state.mkdir()
    (state / "openclaw.json").write_text('{"gateway": {"port": 1}, "agents": {"list": ["old"]}}')
    (state / "marker").write_text("current\n")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "openclaw.json").write_text('{"gateway": {"port": 2}, "agents": {"list": ["restored-agent"]}}')
    (saved / "marker").write_text("restored\n")
    subprocess.run(["tar", "-czf", str(tmp_path / "archive.tar.gz"), "-C", str(saved), "."], check=True)
    (tmp_path / "desired.json").write_text('// the kit\'s sections\n{"gateway": {"port": 18789}}\n')
    (tmp_path / "backups").mkdir()
    return tmp_path


def run_restore(root: Path, env: dict, health: str, *args: str, restic: Path | None = None) -> subprocess.CompletedProcess:
    state = root / "state"
    data = {**backup.restore_data(backup_settings(BACKUP_SFTP)), "restic": restic or root / "bin/restic", "cli": root / "bin/cli",
            "merge": Path(jsonconfig.__file__), "desired_config": root / "desired.json", "state_dir": state,
            "live_config": state / "openclaw.json", "service_user": "root", "work_parent": root / "backups",
            "health_wait": health}
    script = executable(root / "openclaw-kit-restore", render("backup", "openclaw-kit-restore.j2", **data))
    env = {**env, "CALLS": str(root / "calls.log"), "ARCHIVE": str(root / "archive.tar.gz"), "STATE_DIR": str(state)}
    return run(script, *args, env=env)


@needs_root
def test_restore_puts_the_restored_state_in_place_with_the_kits_config_sections(restore_root, stand_ins):
    root, (env, calls) = restore_root, stand_ins
    done = run_restore(root, env, f"grep -q restored {root}/state/marker", "--host", "old-gw")
    assert done.returncode == 0, done.stderr
    state = root / "state"
    assert (state / "marker").read_text() == "restored\n"
    config = json.loads((state / "openclaw.json").read_text())
    # OpenClaw's own sections come from the backup; the kit's from this host's desired config.
    assert config == {"gateway": {"port": 18789}, "agents": {"list": ["restored-agent"]}}
    assert oct(state.stat().st_mode & 0o777) == "0o700" and oct((state / "openclaw.json").stat().st_mode & 0o777) == "0o600"
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("restore latest --target ") and lines[0].endswith("--tag gateway-state --host old-gw")
    assert lines[1].startswith("cli backup restore ") and " --target " in lines[1]
    assert lines.index("systemctl stop openclaw-gateway.service") < lines.index("systemctl start openclaw-gateway.service")
    previous = [p for p in (root / "backups").iterdir() if p.name.startswith("openclaw-state-before-restore-")]
    assert len(previous) == 1 and (previous[0] / "marker").read_text() == "current\n"
    assert [p.name for p in (root / "backups").iterdir() if p.name.startswith("openclaw-restore.")] == [], "work directory left behind"
    assert "restored snapshot latest (of host old-gw)" in done.stdout


@needs_root
def test_a_named_snapshot_is_restored_without_a_host_filter(restore_root, stand_ins):
    env, calls = stand_ins
    done = run_restore(restore_root, env, "true", "4f1c2a9e")
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines()[0].endswith("--tag gateway-state")
    assert run_restore(restore_root, env, "true", "a", "b").returncode == 2


@needs_root
def test_a_gateway_that_does_not_come_up_gets_its_previous_state_back(restore_root, stand_ins):
    env, calls = stand_ins
    done = run_restore(restore_root, env, "false")
    assert done.returncode == 1
    assert "the gateway did not come up with the restored state; the previous state is back" in done.stderr
    assert (restore_root / "state" / "marker").read_text() == "current\n"
    assert calls.read_text().splitlines()[-1] == "systemctl start openclaw-gateway.service"


@needs_root
def test_an_archive_openclaw_refuses_leaves_the_running_gateway_alone(restore_root, stand_ins):
    env, calls = stand_ins
    executable(restore_root / "bin" / "cli", "#!/bin/bash\necho 'archive verification failed' >&2\nexit 1\n")
    done = run_restore(restore_root, env, "true")
    assert done.returncode == 1 and "openclaw backup restore refused the archive" in done.stderr
    assert (restore_root / "state" / "marker").read_text() == "current\n"
    assert "systemctl stop" not in calls.read_text()


REAL_RESTIC = shutil.which("restic")


@needs_root
@pytest.mark.skipif(REAL_RESTIC is None, reason="restic is not installed (./kit installs it)")
def test_the_offsite_job_and_restore_with_this_machines_restic(restore_root, stand_ins):
    """The kit's wrapper, off-host job and restore with a real restic and a local repository: on CI's
    Debian 12 that is restic 0.14, the oldest a supported system has (the sandbox hosts run 0.18)."""
    root, (env, _) = restore_root, stand_ins
    (root / "bin" / "restic").unlink()  # the stand-in: the kit's wrapper runs the real one
    store, audit = root / "store", root / "audit"
    store.mkdir()
    audit.mkdir()
    shutil.copy(root / "archive.tar.gz", store / "2026-12-01T03-37-00.000+00-00-openclaw-backup.tar.gz")
    (audit / "audit.log-20261201-000000").write_text("{}\n")
    password = root / "restic-password"
    password.write_text("correct horse battery staple\n")
    wrapper = executable(root / "openclaw-kit-restic", render(
        "backup", "openclaw-kit-restic.j2", repository=str(root / "repository"), password_file=str(password),
        s3_env=None, ca_file=None, sftp_command=None))
    offsite = offsite_script(root, wrapper)

    opened = run(offsite, "--open-only", env=env)
    assert opened.returncode == 0 and (root / "repository" / "config").is_file(), opened.stderr
    for _ in range(2):
        done = run(offsite, env=env)
        assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["audit_files"] == 1 and result["audit_snapshot"]
    # What verify asks. (Retention keeps one or both of the day's two: restic 0.16 and newer also keep
    # the oldest snapshot while the policy has fewer days than it asks for.)
    listed = run(wrapper, "snapshots", "--json", "--tag", backup.STATE_TAG, "--host", os.uname().nodename, env=env)
    newest = max(json.loads(listed.stdout), key=lambda snapshot: snapshot["time"])
    assert newest["id"].startswith(result["state_snapshot"]), listed.stdout

    restored = run_restore(root, env, f"grep -q restored {root}/state/marker", restic=wrapper)
    assert restored.returncode == 0, restored.stderr
    assert (root / "state" / "marker").read_text() == "restored\n"

    password.write_text("not the password\n")
    refused = run(offsite, env=env)
    assert refused.returncode == 1 and "restic cannot open the off-host repository" in refused.stderr
    assert "wrong password or no key found" in refused.stderr and "not the password" not in refused.stderr


# --- wireguard: the mesh key and applying a new configuration -----------------------------------------------


def mesh_settings():
    from openclaw_kit.settings import validate_hosts
    from tests.unit.fake_host import ENV

    return validate_hosts({"gw1": mesh_host("10.99.0.1")}, ENV)["gw1"]


def test_the_mesh_key_is_made_root_only_once(tmp_path, stand_ins):
    env, calls = stand_ins
    executable(tmp_path / "bin" / "wg", f'#!/bin/sh\necho "wg $*" >> {calls}\necho private-key-$$\n')
    key = tmp_path / "wg0.key"
    script = executable(tmp_path / "make-key", "#!/bin/sh\n" + render("wireguard", "make-key.sh.j2", key_path=str(key)))
    assert run(script, env=env).returncode == 0
    first = key.read_text()
    assert first.startswith("private-key-") and oct(key.stat().st_mode & 0o777) == "0o600"
    assert run(script, env=env).returncode == 0
    assert key.read_text() == first, "an existing key was replaced"
    assert calls.read_text().splitlines() == ["wg genkey"]
    rotate = executable(tmp_path / "rotate-key",
                        "#!/bin/sh\n" + render("wireguard", "make-key.sh.j2", key_path=str(key), replace=True))
    assert run(rotate, env=env).returncode == 0
    assert key.read_text() != first and oct(key.stat().st_mode & 0o777) == "0o600", "key_rotation made no new key"
    assert not (tmp_path / "wg0.key.new").exists()


@pytest.mark.parametrize("addresses, expected", [
    ("4: wg0    inet 10.99.0.1/24 scope global wg0\\       valid_lft forever",
     ["ip -o addr show dev wg0", "systemctl reload wg-quick@wg0.service",
      "wg set wg0 private-key /etc/wireguard/wg0.key"]),
    ("4: wg0    inet 10.99.0.9/24 scope global wg0\\       valid_lft forever",
     ["ip -o addr show dev wg0", "systemctl restart wg-quick@wg0.service"]),
    ("", ["ip -o addr show dev wg0", "systemctl restart wg-quick@wg0.service"]),
])
def test_the_mesh_config_is_synced_in_place_and_restarted_only_for_a_new_address(tmp_path, stand_ins, addresses,
                                                                                  expected):
    env, calls = stand_ins
    for name, output in (("ip", addresses), ("wg", "")):
        executable(tmp_path / "bin" / name, f'#!/bin/sh\necho "{name} $*" >> {calls}\nprintf "%s\\n" \'{output}\'\n')
    script = executable(tmp_path / "apply", "#!/bin/sh\n" + wireguard.apply_command(mesh_settings()))
    done = run(script, env=env)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == expected


def test_a_failed_reload_fails_the_mesh_apply(tmp_path, stand_ins):
    env, calls = stand_ins
    executable(tmp_path / "bin" / "ip", "#!/bin/sh\necho '4: wg0    inet 10.99.0.1/24 scope global wg0'\n")
    executable(tmp_path / "bin" / "wg", f'#!/bin/sh\necho "wg $*" >> {calls}\n')
    script = executable(tmp_path / "apply", "#!/bin/sh\n" + wireguard.apply_command(mesh_settings()))
    done = run(script, env={**env, "FAIL_SYSTEMCTL": "reload failed"})
    assert done.returncode != 0
    assert "wg set" not in calls.read_text(), "the key was handed to an interface whose reload failed"
