"""The kit, in order. `pyinfra inventories/prod.py deploy.py` runs it against your hosts.

Every host's settings are validated first (settings_for); any problem on any host stops the run
before a single host is changed.
"""

from pyinfra import host, inventory

from roles.base import base
from roles.fail2ban import fail2ban
from roles.firewall import firewall
from roles.nginx import nginx
from roles.openclaw import openclaw
from roles.settings import settings_for

settings = settings_for(host, inventory)

base(settings)
firewall(settings)
openclaw(settings)
nginx(settings)
# After nginx: its jails read nginx's access log, which must exist when fail2ban starts them.
fail2ban(settings)
