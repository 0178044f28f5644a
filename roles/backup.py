"""Role backup: the daily archive of the gateway's state copied off the host, encrypted, with retention.

restic (Debian's) copies the newest verified archive of role logs' local backup, and the audit
log's rotated files, to a repository on another host (SFTP, with a key made on this host and the
target's host key checked strictly) or in an S3-compatible store (its CA from s3_ca_file where
private). The repository is initialised by the first run that finds none; for S3 that is the
deploy, which also fails on a key, password or CA restic is refused with. The job runs daily
through the kit's job runner, after the local backup, so its outcome is a line in the audit log.
`openclaw-kit-restore [SNAPSHOT]` brings the gateway's state back from the repository onto this host.
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, python, server
from pyinfra.operations.util import any_changed

from openclaw_kit.gateway import systemd_health_wait_command
from openclaw_kit.layout import (
    AUDIT_DIR,
    AUDIT_LOG,
    BACKUP_STORE,
    GATEWAY_CLI,
    GATEWAY_CONFIG_MERGE,
    GATEWAY_DESIRED_CONFIG,
    GATEWAY_LIVE_CONFIG,
    GATEWAY_SERVICE,
    GATEWAY_STATE_DIR,
    GATEWAY_USER,
    JOB_RUNNER,
    KIT_CONFIG_DIR,
)
from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.secrets import private_file, secret_file
from openclaw_kit.settings import HostSettings
from openclaw_kit.settings.backup import OffsiteBackup
from openclaw_kit.templates import template

CONFIG_DIR = f"{KIT_CONFIG_DIR}/backup"  # root-only: password, S3 credentials, SSH key
PASSWORD_FILE = f"{CONFIG_DIR}/restic-password"
S3_ENV = f"{CONFIG_DIR}/s3.env"
S3_CA_FILE = f"{CONFIG_DIR}/s3-ca.pem"  # s3_ca_file's certificates, restic's --cacert
OPENED = f"{CONFIG_DIR}/s3-repository-opened"  # the deploy's last try to open the S3 repository worked
SSH_KEY = f"{CONFIG_DIR}/id_ed25519"
KNOWN_HOSTS = f"{CONFIG_DIR}/known_hosts"
RESTIC = "/usr/local/sbin/openclaw-kit-restic"
OFFSITE = "/usr/local/sbin/openclaw-kit-offsite-backup"
RESTORE = "/usr/local/sbin/openclaw-kit-restore"
CRON_FILE = "/etc/cron.d/openclaw-kit-backup"
# The local backup runs at 03:37 (role logs); the copy half an hour later, and it also waits for
# the local job's lock should that still be running.
SCHEDULE = "7 4 * * *"
LOCAL_BACKUP_LOCK = "/run/lock/openclaw-kit-job-backup.lock"
# Seconds restic may take to open the repository (it retries a refused key for 15 minutes).
OPEN_TIMEOUT = 60
STATE_TAG = "gateway-state"
AUDIT_TAG = "audit-log"


@deploy("backup")
def backup(settings: HostSettings):
    offsite = settings.offsite_backup
    if offsite is None:
        files.file(name=f"No off-host backup scheduled ({CRON_FILE})", path=CRON_FILE, present=False)
        return
    private_dir = f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}"
    root_group = platform_of(host).root_group

    install_missing(["openssh-client", "python3"])
    # Without Recommends: restic's is fuse, for `restic mount`, which the kit does not use.
    install_missing(["restic"])

    files.directory(
        name=f"Off-host backup config {CONFIG_DIR}", path=CONFIG_DIR, user="root", group=root_group, mode="700"
    )
    password = private_file(
        name=f"Repository password {PASSWORD_FILE}",
        path=PASSWORD_FILE,
        content=offsite.password,
        user="root",
        group=root_group,
        private_dir=private_dir,
    )
    if offsite.sftp:
        files.file(name=f"No S3 credentials {S3_ENV}", path=S3_ENV, present=False)
        files.file(name=f"No S3 repository mark {OPENED}", path=OPENED, present=False)
        ssh_key(offsite)
        repository_inputs = []
    else:
        repository_inputs = [
            secret_file(
                name=f"S3 credentials {S3_ENV}",
                path=S3_ENV,
                values=offsite.secrets(),
                user="root",
                group=root_group,
                private_dir=private_dir,
            )
        ]
    if offsite.s3_ca_file:
        repository_inputs.append(
            files.put(
                name=f"S3 server's CA {S3_CA_FILE}",
                src=offsite.s3_ca_file,
                dest=S3_CA_FILE,
                user="root",
                group=root_group,
                mode="644",
            )
        )
    else:
        files.file(name=f"No S3 server's CA {S3_CA_FILE}", path=S3_CA_FILE, present=False)

    wrapper = template(
        name=f"restic wrapper {RESTIC}",
        role="backup",
        src="openclaw-kit-restic.j2",
        dest=RESTIC,
        mode="750",
        **restic_data(offsite),
    )
    offsite_job = template(
        name=f"Off-host backup job {OFFSITE}",
        role="backup",
        src="openclaw-kit-offsite-backup.j2",
        dest=OFFSITE,
        mode="750",
        **offsite_data(settings),
    )
    template(
        name=f"Restore command {RESTORE}",
        role="backup",
        src="openclaw-kit-restore.j2",
        dest=RESTORE,
        mode="750",
        **restore_data(settings),
    )

    if not offsite.sftp:
        open_repository(repository_inputs + [password, wrapper, offsite_job])

    cron_op = template(
        name=f"Cron job {CRON_FILE}",
        role="backup",
        src="cron.j2",
        dest=CRON_FILE,
        schedule=SCHEDULE,
        command=cron_command(),
        audit_log=AUDIT_LOG,
    )
    # Like role logs: a new schedule runs once now; a failure (e.g. the key not yet authorized on
    # the target) is an outcome in the audit log, not a failed deploy.
    server.shell(
        name="Run the off-host backup once (outcome in the audit log)",
        commands=[f"{cron_command()} || true"],
        _if=cron_op.did_change,
    )


def open_repository(inputs: list) -> None:
    """S3: the deploy opens the repository (initialising one that is missing), so a wrong key, password
    or CA fails the deploy with restic's reason. SFTP cannot: the host's new key is not yet authorized
    there on the first run. Opened again only when the last deploy's try failed (no OPENED mark) or
    something restic opens it with changed: the store is not asked while pyinfra gathers facts."""
    opened = host.get_fact(File, path=OPENED)
    server.shell(
        name="Off-host repository opens (initialised when missing)",
        commands=[f"rm -f {OPENED} && {OFFSITE} --open-only && touch {OPENED}"],
        _if=any_changed(*inputs) if opened else None,
    )


def ssh_key(offsite: OffsiteBackup) -> None:
    """The host's own SSH key for the SFTP target, made on the host; the deploy shows its public half."""
    target = offsite.sftp
    template(
        name=f"SFTP target's host key {KNOWN_HOSTS}",
        role="backup",
        src="known_hosts.j2",
        dest=KNOWN_HOSTS,
        mode="600",
        host_pattern=known_hosts_pattern(target["host"], offsite.sftp_port),
        host_key=offsite.sftp_host_key,
    )
    public_key = host.get_fact(PublicKey, path=f"{SSH_KEY}.pub")
    if public_key:
        show_public_key(public_key, offsite)
        return
    keygen_op = server.shell(
        name=f"Make this host's SSH key for the SFTP target {SSH_KEY}",
        commands=[
            f"rm -f {SSH_KEY} {SSH_KEY}.pub && "
            f"ssh-keygen -q -t ed25519 -N '' -C openclaw-kit-backup@$(hostname) -f {SSH_KEY}"
        ],
    )

    def show_new_key():
        # Facts are not cached in pyinfra 3: this reads the key made a moment ago.
        show_public_key(host.get_fact(PublicKey, path=f"{SSH_KEY}.pub") or "(unreadable)", offsite)

    python.call(
        name="Show the new SSH key to authorize on the SFTP target", function=show_new_key, _if=keygen_op.did_change
    )


def show_public_key(public_key: str, offsite: OffsiteBackup) -> None:
    target = offsite.sftp
    logger.warning(
        f"{host.name}: off-host backups log in to {target['user']}@{target['host']} with this key; "
        f"authorize it there (docs/backup.md): {public_key}"
    )


def known_hosts_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def restic_data(offsite: OffsiteBackup) -> dict:
    sftp_command = None
    if offsite.sftp:
        target = offsite.sftp
        # Strict host-key checking against the one key from settings, this host's key only.
        sftp_command = (
            f"ssh -i {SSH_KEY} -p {offsite.sftp_port} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={KNOWN_HOSTS} -o ConnectTimeout=30 "
            f"{target['user']}@{target['host']} -s sftp"
        )
    return dict(
        repository=offsite.repository,
        password_file=PASSWORD_FILE,
        s3_env=None if offsite.sftp else S3_ENV,
        ca_file=S3_CA_FILE if offsite.s3_ca_file else None,
        sftp_command=sftp_command,
    )


def offsite_data(settings: HostSettings) -> dict:
    offsite = settings.offsite_backup
    return dict(
        restic=RESTIC,
        store=BACKUP_STORE,
        local_backup_lock=LOCAL_BACKUP_LOCK,
        audit_dir=AUDIT_DIR,
        audit_name=AUDIT_LOG.rsplit("/", 1)[1],
        state_tag=STATE_TAG,
        audit_tag=AUDIT_TAG,
        keep_daily=offsite.keep_daily,
        keep_weekly=offsite.keep_weekly,
        keep_monthly=offsite.keep_monthly,
        audit_retention_days=settings.audit_retention_days,
        open_timeout=OPEN_TIMEOUT,
        # What the error after a refused repository tells to check (shell-quoted).
        causes=shlex.quote(
            "offsite_backup: repository, password, "
            + ("sftp_host_key, and this host's key authorized on the target" if offsite.sftp
               else "s3_access_key_id, s3_secret_access_key, s3_ca_file")
        ),
    )


def restore_data(settings: HostSettings) -> dict:
    return dict(
        restic=RESTIC,
        cli=GATEWAY_CLI,
        merge=GATEWAY_CONFIG_MERGE,
        desired_config=GATEWAY_DESIRED_CONFIG,
        state_dir=GATEWAY_STATE_DIR,
        live_config=GATEWAY_LIVE_CONFIG,
        service=GATEWAY_SERVICE,
        service_user=GATEWAY_USER,
        state_tag=STATE_TAG,
        work_parent="/var/backups",
        health_wait=systemd_health_wait_command(settings.gateway_port),
    )


def cron_command() -> str:
    return f"{JOB_RUNNER} offsite-backup --result-json -- {OFFSITE}"


class PublicKey(FactBase):
    """The first line of a public key file, or None when there is none."""

    def command(self, path: str) -> str:
        return f"head -n 1 {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None
