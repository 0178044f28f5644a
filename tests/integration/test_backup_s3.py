"""Role backup to a real S3 API: moto's S3 server on the controller (the bridge address), over HTTPS with a
certificate from a CA this module makes (s3_ca_file), with IAM checking the keys. sbx1 is deployed with an
S3 offsite_backup: a wrong secret key fails the deploy with restic's reason; the right one initialises the
repository in the deploy; then one backup and restore round trip, verify, and a re-run that changes nothing.
No S3 credential or repository password appears in any output. The hosts may be those test_backup.py left."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from openclaw_kit.certificates import certificate_authority, pem, server_certificate
from openclaw_kit.layout import GATEWAY_CLI
from openclaw_kit.secrets import generate_token
from roles.backup import CRON_FILE, RESTIC, RESTORE, S3_CA_FILE, S3_ENV
from roles.logs import AUDIT_LOG
from roles.openclaw.systemd import STATE_DIR
from tests.integration.conftest import REPO, changed_hosts, run_pyinfra, ssh
from tests.integration.test_backup import agents, inventory_with_offsite, latest_outcome

pytestmark = pytest.mark.sandbox

PORT = 19443  # on the bridge address, which is the sandbox slot's own
BUCKET = "openclaw-kit-backups"
SECRETS = {"KIT_TEST_S3_KEY_ID", "KIT_TEST_S3_SECRET", "KIT_TEST_S3_RESTIC_PASSWORD"}
AGENT = f"s3probe{uuid.uuid4().hex[:8]}"
OPEN_STEP = "backup | Off-host repository opens (initialised when missing)"


@pytest.fixture(scope="module")
def s3(sandbox_state, tmp_path_factory):
    """moto's S3 (and IAM) server on the bridge address over HTTPS, and an IAM user's access key for it."""
    import boto3

    directory = tmp_path_factory.mktemp("s3")
    gateway = sandbox_state["gateway"]
    ca, ca_key = certificate_authority("openclaw-kit test S3 CA", days=2)
    cert, key = server_certificate([gateway], days=2, issuer=(ca, ca_key))
    (directory / "ca.pem").write_bytes(pem(ca))
    (directory / "cert.pem").write_bytes(cert)
    (directory / "key.pem").write_bytes(key)
    (directory / "key.pem").chmod(0o600)
    endpoint = f"https://{gateway}:{PORT}"
    # The first three requests (the IAM user, its policy, its key) need no credentials; every one
    # after them is checked against IAM, so a wrong key is refused as a real store would.
    with open(directory / "moto.log", "w") as log:
        server = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", gateway, "-p", str(PORT),
             "-c", str(directory / "cert.pem"), "-k", str(directory / "key.pem")],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((gateway, PORT), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (directory / "moto.log").read_text()[-2000:]
                time.sleep(0.3)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", verify=str(directory / "ca.pem"),
                           aws_access_key_id="unused", aws_secret_access_key="unused")
        iam.create_user(UserName="backup")
        iam.put_user_policy(UserName="backup", PolicyName="backups", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        access = iam.create_access_key(UserName="backup")["AccessKey"]
        yield {"endpoint": endpoint, "ca_file": str(directory / "ca.pem"),
               "key_id": access["AccessKeyId"], "secret": access["SecretAccessKey"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def s3_env(kit_env, s3):
    return {**kit_env, "KIT_TEST_S3_KEY_ID": s3["key_id"], "KIT_TEST_S3_SECRET": s3["secret"],
            "KIT_TEST_S3_RESTIC_PASSWORD": generate_token()}


@pytest.fixture(scope="module")
def source(sandbox_state):
    return sorted(host["address"] for host in sandbox_state["hosts"])[0]


def offsite(s3, source) -> dict:
    return {"repository": f"s3:{s3['endpoint']}/{BUCKET}/{source}", "password": "${KIT_TEST_S3_RESTIC_PASSWORD}",
            "s3_access_key_id": "${KIT_TEST_S3_KEY_ID}", "s3_secret_access_key": "${KIT_TEST_S3_SECRET}",
            "s3_ca_file": s3["ca_file"], "keep_daily": 3}


def assert_no_secret(env: dict, *outputs: str) -> None:
    for name in SECRETS:
        assert not any(env[name] in output for output in outputs), f"the value of {name} is in the output"


def test_a_wrong_secret_key_fails_the_deploy_with_the_reason_and_no_secret(sandbox_state, source, s3, s3_env, tmp_path):
    env = {**s3_env, "KIT_TEST_S3_SECRET": s3_env["KIT_TEST_S3_SECRET"][::-1]}
    inventory = inventory_with_offsite(tmp_path, offsite(s3, source))
    run = run_pyinfra(env, "--limit", source, inventory=inventory)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert OPEN_STEP in output
    # Debian 13's restic says so on opening; older ones when initialising (any failure looks like "no repository").
    assert "restic cannot open the off-host repository" in output or "restic cannot initialise the off-host repository" in output
    assert "s3_secret_access_key" in output and "signature" in output.lower(), output[-3000:]
    assert_no_secret(env, output)
    assert_no_secret(s3_env, output)


def test_backup_to_s3_then_wipe_and_restore_brings_the_state_back(sandbox_state, source, s3, s3_env, tmp_path):
    import boto3

    inventory = inventory_with_offsite(tmp_path, offsite(s3, source))
    outputs = []
    # The deploy places the credentials and the CA, and initialises the repository (none yet: a new bucket).
    run = run_pyinfra(s3_env, "--limit", source, inventory=inventory)
    outputs.append(run.stdout + run.stderr)
    assert run.returncode == 0, outputs[-1][-4000:]
    assert OPEN_STEP in outputs[-1]
    assert ssh(sandbox_state, source, f"stat -c '%U %a' {S3_ENV} {S3_CA_FILE}").stdout.split() == ["root", "600", "root", "644"]
    store = boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1", verify=s3["ca_file"],
                         aws_access_key_id=s3["key_id"], aws_secret_access_key=s3["secret"])
    assert f"{source}/config" in [item["Key"] for item in store.list_objects_v2(Bucket=BUCKET)["Contents"]]

    # State worth restoring; then the local backup and the off-host copy, exactly as cron runs them.
    ssh(sandbox_state, source, f"{GATEWAY_CLI} agents add {AGENT} --workspace {STATE_DIR}/workspace-{AGENT} --non-interactive --json")
    assert AGENT in agents(sandbox_state, source)
    cron = ssh(sandbox_state, source, f"cat /etc/cron.d/openclaw-kit-logs {CRON_FILE}").stdout
    commands = [line.split(None, 6)[6] for line in cron.splitlines() if line[:1].isdigit() and "backup" in line]
    for command in commands:
        done = ssh(sandbox_state, source, f"/bin/sh -c '{command}'", check=False)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"{command}: {outputs[-1][-2000:]} {latest_outcome(sandbox_state, source, 'offsite-backup')}"
    outcome = latest_outcome(sandbox_state, source, "offsite-backup")
    assert outcome["exit"] == 0 and outcome["result"]["state_snapshot"], outcome
    # Encrypted in the store: no object holds the archive's name in the clear.
    keys = [item["Key"] for item in store.list_objects_v2(Bucket=BUCKET, Prefix=f"{source}/")["Contents"]]
    assert any(key.startswith(f"{source}/data/") for key in keys) and any(key.startswith(f"{source}/snapshots/") for key in keys)
    assert not any(b"openclaw-backup" in store.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys)

    # Verify's checks, the snapshot's age among them, pass on sbx1 (none skipped: it has offsite_backup).
    verify = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/verify/test_backup.py",
                             "--inventory", inventory, "--limit", source], cwd=REPO, env=s3_env,
                            capture_output=True, text=True, timeout=600)
    outputs.append(verify.stdout + verify.stderr)
    assert verify.returncode == 0 and "3 passed" in verify.stdout and "skipped" not in verify.stdout, outputs[-1][-4000:]

    ssh(sandbox_state, source, f"systemctl stop openclaw-gateway && find {STATE_DIR} -mindepth 1 -delete")
    restore = ssh(sandbox_state, source, RESTORE, check=False)
    outputs.append(restore.stdout + restore.stderr)
    assert restore.returncode == 0, outputs[-1][-3000:]
    assert ssh(sandbox_state, source, "systemctl is-active openclaw-gateway").stdout.strip() == "active"
    assert AGENT in agents(sandbox_state, source)

    rerun = run_pyinfra(s3_env, "--json", "--limit", source, inventory=inventory)
    outputs.append(rerun.stdout + rerun.stderr)
    assert rerun.returncode == 0, outputs[-1][-4000:]
    assert changed_hosts(json.loads(rerun.stdout[rerun.stdout.index("{"):])) == {}
    outputs.append(ssh(sandbox_state, source, f"cat {AUDIT_LOG}; {RESTIC} snapshots").stdout)
    assert_no_secret(s3_env, *outputs)
