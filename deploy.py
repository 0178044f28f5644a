"""The kit, in order. `pyinfra inventories/prod.py deploy.py` runs it against your hosts.

Every host's settings are validated first (settings_for); any problem on any host stops the run
before a single host is changed. The run ends with a table of changed/unchanged/failed operations
per host and role (openclaw_kit.drift.summary_at_exit).
"""

import atexit

from pyinfra import host, inventory

from openclaw_kit.connection import send_without_delay
from openclaw_kit.drift import summary_at_exit
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import settings_for
from roles.audit import audit
from roles.backup import backup
from roles.base import base
from roles.base_macos import base_macos
from roles.fail2ban import fail2ban
from roles.firewall import firewall
from roles.logs import logs
from roles.nginx import nginx
from roles.openclaw import openclaw
from roles.openclaw_macos import openclaw_macos
from roles.tls import tls
from roles.wireguard import wireguard

send_without_delay(host)
settings = settings_for(host, inventory)

# deploy.py runs once per host: keep a single registration.
atexit.unregister(summary_at_exit)
atexit.register(summary_at_exit)

if platform_of(host).family == "macos":
    # macOS (tested on recorded facts only): base, the firewall on pf and the gateway as a LaunchDaemon;
    # the other roles are Linux-only, and settings only they read are refused for a Mac.
    base_macos(settings)
    firewall(settings)
    openclaw_macos(settings)
else:
    base(settings)
    firewall(settings)
    # After the firewall, which opens its UDP port and makes its interface a private zone.
    wireguard(settings)
    openclaw(settings)
    nginx(settings)
    # After nginx: its jails read nginx's access log, which must exist when fail2ban starts them.
    fail2ban(settings)
    logs(settings)
    backup(settings)  # after logs: it copies the local backup off the host
    audit(settings)  # after the roles whose files it watches
    # Last: it needs the domain's DNS and port 80 from the ACME server's side. Should that fail, the
    # host is already complete, served on its self-signed bootstrap certificate.
    tls(settings)
