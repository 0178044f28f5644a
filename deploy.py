"""The kit, in order. `pyinfra inventories/prod.py deploy.py` runs it against your hosts.

Every host's settings are validated first (settings_for); any problem on any host stops the run
before a single host is changed.
"""

from pyinfra import host, inventory

from roles.base import base
from roles.firewall import firewall
from roles.nginx import nginx
from roles.openclaw import openclaw
from roles.settings import settings_for
from roles.tls import tls

settings = settings_for(host, inventory)

base(settings)
firewall(settings)
openclaw(settings)
nginx(settings)
# Last: it needs the domain's DNS and port 80 from the ACME server's side. Should that fail, the
# host is already complete, served on its self-signed bootstrap certificate.
tls(settings)
