"""Which platform honours which setting: derived from the roles a platform runs, refused before any change.

A setting belongs to the role of the model it lives in (each model's ROLE); a field that more roles
read names them all (`json_schema_extra={"roles": [...]}`). A platform refuses a setting the
inventory gives when it runs none of the setting's roles, or when its row names the setting among
its `unhonoured_settings` (a mechanism of a role it runs that does not do what the setting asks);
one of its `one_value_settings` is refused with any other value.
A setting left out is never refused: its default is what the platform does anyway. Nor is a
required one, which cannot be left out (admin_email on macOS, where nothing reads it).
"""

from __future__ import annotations

from openclaw_kit.platform_types import Platform
from openclaw_kit.settings.host import HostSettings


def roles_of(setting: str) -> tuple[str, ...]:
    """The roles that read a top-level setting of HostSettings."""
    extra = HostSettings.model_fields[setting].json_schema_extra or {}
    if "roles" in extra:
        return tuple(extra["roles"])
    owner = next(model for model in HostSettings.__mro__ if setting in model.__dict__.get("__annotations__", {}))
    return (owner.ROLE,)


def refusal(platform: Platform, setting: str) -> str | None:
    """Why `platform` does not honour `setting` (the rule of the error), or None when it does."""
    roles = roles_of(setting)
    if not platform.roles & set(roles):
        if len(roles) == 1:
            return f"only role {roles[0]} reads it, which {platform.label} does not run (yet)"
        return f"only roles {', '.join(roles)} read it, none of which {platform.label} runs (yet)"
    return platform.unhonoured_settings.get(setting)


def platform_problems(name: str, platform: Platform, settings: HostSettings) -> list[str]:
    """One line per setting the inventory gave this host that its platform does not honour."""
    problems = [
        f"host {name}: {setting} = {getattr(settings, setting)!r}: {rule}; remove it for this {platform.label} host"
        for setting in HostSettings.model_fields
        if setting in settings.model_fields_set and not HostSettings.model_fields[setting].is_required()
        and (rule := refusal(platform, setting))
    ]
    problems.extend(
        f"host {name}: {setting} = {getattr(settings, setting)!r}: {why}"
        for setting, (value, why) in platform.one_value_settings.items()
        if getattr(settings, setting) != value
    )
    return problems
