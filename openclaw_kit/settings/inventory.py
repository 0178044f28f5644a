"""A whole inventory's settings validated at once: every problem of every host, before any change."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from openclaw_kit.errors import SettingsError
from openclaw_kit.platform import System, platform_of_system, system_problem
from openclaw_kit.settings.host import HostSettings
from openclaw_kit.settings.platforms import platform_problems
from openclaw_kit.settings.report import problems as report_problems
from openclaw_kit.settings.wireguard import mesh_problems


@lru_cache(maxsize=1)
def connection_keys() -> frozenset[str]:
    """pyinfra's own per-host keys (ssh_user, docker_identifier, ...), which are not kit settings."""
    from typing import get_type_hints

    from pyinfra.api.connectors import get_all_connectors

    keys: set[str] = set()
    for connector in get_all_connectors().values():
        keys.update(get_type_hints(connector.data_cls))
    return frozenset(keys)


def kit_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The kit's part of a host's data: pyinfra's connection keys and `_global` arguments removed."""
    return {key: value for key, value in data.items() if key not in connection_keys() and not key.startswith("_")}


def validate_hosts(
    hosts: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, str],
    systems: Mapping[str, System | None] | None = None,
) -> dict[str, HostSettings]:
    """Settings for every host, or one SettingsError listing every problem of every host."""
    settings: dict[str, HostSettings] = {}
    problems: list[str] = []
    for name, data in hosts.items():
        own = kit_settings(data)
        system = (systems or {}).get(name)
        if system is not None and (problem := system_problem(system)):
            problems.append(f"host {name}: operating system = {system.distribution or system.kernel!r}: {problem}")
        try:
            settings[name] = HostSettings.model_validate(own, context={"env": env, "ssh_user": data.get("ssh_user")})
        except ValidationError as error:
            problems.extend(report_problems(name, error))
        else:
            platform = platform_of_system(system) if system is not None else None
            if platform is not None:
                problems.extend(platform_problems(name, platform, settings[name]))
    if not problems:  # the rules across hosts, once every host's own settings are valid
        problems.extend(mesh_problems(settings))
    if problems:
        raise SettingsError(problems)
    return settings


