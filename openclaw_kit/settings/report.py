"""Settings problems as one line each: host, setting path, value, rule. A secret's value never appears."""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from openclaw_kit.secrets import MASK, describe_literal, reference_name
from openclaw_kit.settings import backup, monitoring, openclaw, wireguard
from openclaw_kit.settings.host import HostSettings
from openclaw_kit.settings.rules import FieldError

# Each role's settings module names its secret fields; a value under any of them is never shown.
SECRET_FIELDS = openclaw.SECRET_FIELDS | backup.SECRET_FIELDS | wireguard.SECRET_FIELDS | monitoring.SECRET_FIELDS


def _show(value: Any, loc: tuple) -> str:
    if any(part in SECRET_FIELDS for part in loc if isinstance(part, str)):
        return describe_literal(value) if reference_name(value) is None else str(value)
    text = repr(without_password(value) if isinstance(value, str) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def without_password(value: str) -> str:
    """A URL's password masked (a proxy URL with credentials is refused, and its error shows the URL)."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not password:
        return value
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", f":{MASK}@", 1)).geturl()


def _loc_path(loc: tuple) -> str:
    return ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in loc).replace(".[", "[")


def problems(host_name: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        # pydantic adds union/choice names (e.g. "str", "function-after[...]") to the location.
        loc = tuple(
            p
            for p in item["loc"]
            if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "list", "dict", "bool")))
        )
        ctx_error = (item.get("ctx") or {}).get("error")
        if isinstance(ctx_error, FieldError):
            loc = loc + (ctx_error.field,)
            value, rule = ctx_error.value, ctx_error.rule
        elif item["type"] == "extra_forbidden":
            value = item["input"]
            siblings = _known_fields(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), siblings, n=1)
            rule = "unknown setting" + (
                f"; did you mean {close[0]}?" if close else f"; known here: {', '.join(sorted(siblings))}"
            )
        elif item["type"] == "missing":
            value, rule = None, "is required"
        else:
            value = item.get("input")
            rule = item["msg"].removeprefix("Value error, ")
        lines.append(
            f"host {host_name}: {_loc_path(loc)} = "
            f"{_show(value, loc) if item['type'] != 'missing' else '(missing)'}: {rule}"
        )
    return lines


def _known_fields(loc: tuple) -> list[str]:
    model: Any = HostSettings
    for part in loc:
        if not isinstance(part, str):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [
            a
            for a in getattr(annotation, "__args__", (annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not candidates:
            return []
        model = candidates[0]
    return list(model.model_fields)
