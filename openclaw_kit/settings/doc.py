"""docs/settings.md, written from the settings models: `python -m openclaw_kit.settings.doc > docs/settings.md`.

Per role (each model's ROLE, in the order deploy.py runs the roles), every setting with its type,
default, the platforms that honour it (settings/platforms.py) and its description (the model's).
Nested settings (channels, private_network, offsite_backup, ...) follow their parent, as
`parent.child`. tests/unit/test_settings_doc.py fails when the file is not this output.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo

from openclaw_kit.platform import PLATFORMS
from openclaw_kit.settings import rules
from openclaw_kit.settings.host import HostSettings
from openclaw_kit.settings.platforms import refusal

COMMAND = "python -m openclaw_kit.settings.doc > docs/settings.md"

INTRO = f"""\
# Settings reference

<!-- Written by `{COMMAND}` from the models in openclaw_kit/settings/: edit those, not this file. -->

Every key is validated before any change; an unknown key is an error (with a suggestion when it looks
like a typo). Required keys have no default. A setting the inventory gives a host whose platform does
not honour it (the platforms column) is refused for that host, before any change; a setting left out
is never refused.
"""


def sections() -> list[type[BaseModel]]:
    """The role models of HostSettings, in the order deploy.py runs their roles."""
    return [model for model in reversed(HostSettings.__mro__) if "ROLE" in model.__dict__]


def own_fields(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if name in model.__dict__.get("__annotations__", {})]


def describe_type(annotation: Any, metadata: list | tuple = ()) -> str:
    """A setting's type in words: `text`, `integer 1-65535`, `list of ...`, `one of ...`."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *more = get_args(annotation)
        return describe_type(base, [*metadata, *more])
    if origin in (Union, types.UnionType):
        choices = [arg for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(describe_type(choice, metadata) for choice in choices)
    if origin is Literal:
        values = [f"`{value}`" for value in get_args(annotation)]
        return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
    if origin is list:
        (item,) = get_args(annotation)
        counted = [constraint.min_length for constraint in _constraints(metadata)
                   if isinstance(constraint, annotated_types.MinLen)]
        return f"list of {describe_type(item)}" + (f", {counted[0]} or more" if counted else "")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if any(isinstance(item, AfterValidator) and item.func is rules.secret for item in metadata):
        return "secret reference `${VAR}`"
    if annotation is bool:
        return "`true` or `false`"
    if annotation is int:
        return "integer" + _bounds(metadata)
    if annotation is str:
        return "text"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata) -> Iterator[Any]:
    for item in metadata:
        if isinstance(item, FieldInfo):
            yield from item.metadata
        else:
            yield item


def _bounds(metadata) -> str:
    low = high = None
    for item in _constraints(metadata):
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low = item.gt + 1
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high = item.lt - 1
    if low is not None and high is not None:
        return f" {low}-{high}"
    if low is not None:
        return f" from {low}"
    if high is not None:
        return f" up to {high}"
    return ""


def describe_default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or isinstance(value, BaseModel):
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return ", ".join(f"`{item}`" for item in value) if value else "`[]`"
    return f"`{value}`"


def nested_model(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds (one, optional, or a list of them: suffix `[]`), or None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            if (found := nested_model(arg)) is not None:
                return found
        return None
    if origin is list:
        found = nested_model(get_args(annotation)[0])
        return (found[0], "[]") if found else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    return None


def labels(rows: list) -> str:
    """Platform rows by label; `all` for every row, and a whole family whose labels share a name by that name."""
    if len(rows) == len(PLATFORMS):
        return "all"
    names = []
    for row in rows:
        family = [other for other in PLATFORMS.values() if other.family == row.family]
        first_words = {other.label.split()[0] for other in family}
        name = first_words.pop() if len(first_words) == 1 and all(other in rows for other in family) else row.label
        if name not in names:
            names.append(name)
    return ", ".join(names)


def platforms_of(setting: str) -> str:
    """The platforms that honour a top-level setting (and those that honour one value of it only)."""
    honoured = [row for row in PLATFORMS.values() if refusal(row, setting) is None]
    text = labels(honoured)
    values = list(dict.fromkeys(row.one_value_settings[setting][0] for row in honoured
                                if setting in row.one_value_settings))
    for value in values:
        text += f"; {labels([row for row in honoured if row.one_value_settings.get(setting, (None,))[0] == value])}: " \
                f"`{value}` only"
    if HostSettings.model_fields[setting].is_required() and len(honoured) < len(PLATFORMS):
        text += " (required on all)"
    return text


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(model: type[BaseModel], names: list[str], prefix: str, platforms: str | None) -> Iterator[str]:
    for name in names:
        field = model.model_fields[name]
        where = platforms if platforms is not None else platforms_of(name)
        description = field.description or ""
        extra = field.json_schema_extra or {}
        if isinstance(extra, dict) and "roles" in extra:
            description += f" Read by roles {', '.join(extra['roles'])}."
        yield (f"| `{prefix}{name}` | {cell(describe_type(field.annotation, field.metadata))} | "
               f"{cell(describe_default(field))} | {cell(where)} | {cell(description)} |")
        if (nested := nested_model(field.annotation)) is not None:
            inner, suffix = nested
            yield from rows(inner, list(inner.model_fields), f"{prefix}{name}{suffix}.", where)


def document() -> str:
    parts = [INTRO]
    for model in sections():
        parts.append(f"\n## Role {model.ROLE}\n\n"
                     f"In `{model.__module__.replace('.', '/')}.py`, `{model.__name__}`.\n\n"
                     "| setting | type | default | platforms | description |\n| --- | --- | --- | --- | --- |\n")
        parts.append("".join(f"{line}\n" for line in rows(model, own_fields(model), "", None)))
    return "".join(parts)


if __name__ == "__main__":
    print(document(), end="")
