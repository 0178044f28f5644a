"""The kit, in order. `pyinfra inventories/prod.py deploy.py` runs it against your hosts.

Every host's settings are validated first (settings_for); any problem on any host stops the run
before a single host is changed.
"""

from pyinfra import host, inventory

from roles.base import base
from roles.firewall import firewall
from roles.logs import logs
from roles.openclaw import openclaw
from roles.settings import settings_for

settings = settings_for(host, inventory)

base(settings)
firewall(settings)
openclaw(settings)
logs(settings)
