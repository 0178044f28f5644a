"""The kit, in order. `pyinfra inventories/prod.py deploy.py` runs it against your hosts.

Every host's settings are validated first (settings_for); any problem on any host stops the run
before a single host is changed. Each role then runs in this order on every host whose platform has
it (the platform table, openclaw_kit/platform.py; a Mac skips the Linux-only roles and says so). The
run ends with a table of changed/unchanged/failed operations per host and role
(openclaw_kit.drift.summary_at_exit).
"""

import atexit

from pyinfra import host, inventory

from openclaw_kit.connection import send_without_delay
from openclaw_kit.drift import summary_at_exit
from openclaw_kit.platform import roles_for
from openclaw_kit.settings import settings_for
from roles.audit import audit
from roles.backup import backup
from roles.base import base
from roles.fail2ban import fail2ban
from roles.firewall import firewall
from roles.logs import logs
from roles.monitoring import monitoring
from roles.nginx import nginx
from roles.openclaw import openclaw
from roles.tls import tls
from roles.wireguard import wireguard

send_without_delay(host)
settings = settings_for(host, inventory)

# deploy.py runs once per host: keep a single registration.
atexit.unregister(summary_at_exit)
atexit.register(summary_at_exit)

ROLES = [
    base,
    firewall,
    wireguard,  # after the firewall, which opens its UDP port and makes its interface a private zone
    openclaw,
    nginx,
    fail2ban,  # after nginx: its jails read nginx's access log, which must exist when fail2ban starts them
    logs,
    backup,  # after logs: it copies the local backup off the host
    audit,  # after the roles whose files it watches
    monitoring,  # after the roles whose state it watches (the gateway, nginx, the scheduled jobs)
    # Last: it needs the domain's DNS and port 80 from the ACME server's side. Should that fail, the
    # host is already complete, served on its self-signed bootstrap certificate.
    tls,
]
for role in roles_for(host, ROLES):
    role(settings)
