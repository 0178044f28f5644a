"""Settings from inside a pyinfra run (deploy.py): validated once per run, for every host."""

from __future__ import annotations

from typing import Any

from openclaw_kit.platform import system_of
from openclaw_kit.secrets import controller_env
from openclaw_kit.settings.host import HostSettings
from openclaw_kit.settings.inventory import validate_hosts

_validated: dict[int, dict[str, HostSettings]] = {}
_locks: dict[int, Any] = {}


def settings_for(host, inventory) -> HostSettings:
    """
    This host's settings; on the first call of a run, every host of the inventory is validated.

    pyinfra prepares all hosts (running deploy.py once per host) before it executes anything,
    and a SettingsError raised here aborts that preparation, so a bad host anywhere means zero
    changes everywhere. Only facts that cannot change during a run (kernel, distribution) are read.
    """
    import gevent.lock

    key = id(inventory)
    lock = _locks.setdefault(key, gevent.lock.Semaphore())
    with lock:  # the hosts' deploy files run concurrently as greenlets: validate once
        if key not in _validated:
            hosts = list(inventory.iter_activated_hosts())
            systems = {each.name: system_of(each) for each in hosts}
            _validated[key] = validate_hosts({each.name: each.data.dict() for each in hosts}, controller_env(), systems)
    return _validated[key][host.name]


