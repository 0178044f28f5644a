"""Role openclaw: the gateway's service user, its directories and its secrets."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from roles.secrets import secret_file
from roles.settings import HostSettings

USER = "openclaw"
STATE_DIR = "/var/lib/openclaw"
CONFIG_DIR = "/etc/openclaw"
ENV_FILE = f"{CONFIG_DIR}/gateway.env"


@deploy("OpenClaw gateway")
def openclaw(settings: HostSettings):
    server.user(
        name=f"System user {USER}",
        user=USER,
        system=True,
        home=STATE_DIR,
        shell="/usr/sbin/nologin",
        create_home=False,
    )
    files.directory(name=f"State directory {STATE_DIR}", path=STATE_DIR, user=USER, group=USER, mode="700")
    # Readable by the service's group only: the config references secrets, it does not hold them.
    files.directory(name=f"Config directory {CONFIG_DIR}", path=CONFIG_DIR, user="root", group=USER, mode="750")
    secret_file(
        name=f"Secrets file {ENV_FILE}",
        path=ENV_FILE,
        values=settings.secrets(),
        user=USER,
        group=USER,
        private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}",
    )
