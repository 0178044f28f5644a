"""The roles the mesh tests need (base: apt through the proxy; firewall; wireguard), without the
gateway: a third sandbox host would otherwise install Node.js and OpenClaw just to join a mesh."""

from pyinfra import host, inventory

from openclaw_kit.settings import settings_for
from roles.base import base
from roles.firewall import firewall
from roles.wireguard import wireguard

settings = settings_for(host, inventory)
base(settings)
firewall(settings)
wireguard(settings)
