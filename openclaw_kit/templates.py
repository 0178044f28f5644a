"""Every file placed on a host comes from templates/<role>/; this is the one way in."""

import os
import posixpath
import shlex
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra import host

from openclaw_kit import placed
from openclaw_kit.paths import TEMPLATES
from openclaw_kit.platform import platform_of

# Directories every Debian/Ubuntu host has (base-files, apt, systemd, cron: the kit installs cron
# before it writes there). Files placed in them are never given a parent directory; other parents
# are created when missing.
SYSTEM_DIRS = {"/etc", "/etc/apt/apt.conf.d", "/etc/cron.d", "/etc/systemd/system", "/usr/local/sbin"}
# `openclaw-kit render` sets it to a directory: each template the deploy renders is also written there.
REVIEW_DIR = "OPENCLAW_KIT_RENDER_INTO"


def template(
    *,
    name: str,
    role: str,
    src: str,
    dest: str,
    mode: str = "644",
    user: str = "root",
    group: str | None = None,
    **data,
):
    """A file on the host from templates/<role>/<src>; owned by root and the platform's root group by default."""
    if review := os.environ.get(REVIEW_DIR):
        from pyinfra import inventory, state
        from pyinfra.api.util import get_template

        # As files.template renders it: the data, and pyinfra's host, state and inventory.
        text = get_template(str(TEMPLATES / role / src)).render(
            {**data, "host": host, "state": state, "inventory": inventory})
        _keep_for_review(Path(review), f"{role}/{src}", dest.lstrip("/"), text)
    # An explicit name keeps the template's data out of pyinfra's output (upstream issue #1896).
    return placed.template(
        name=name,
        src=str(TEMPLATES / role / src),
        dest=dest,
        mode=mode,
        user=user,
        group=group or platform_of(host).root_group,
        create_remote_dir=posixpath.dirname(dest) not in SYSTEM_DIRS,
        **data,
    )


def _rendered(role: str, src: str, data: dict) -> str:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES / role),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=src.endswith(".sh.j2"),
        lstrip_blocks=src.endswith(".sh.j2"),
    )
    environment.filters["quote"] = shlex.quote  # for shell scripts
    return environment.get_template(src).render(**data)


def render(role: str, src: str, **data) -> str:
    """A template rendered on the controller, for content the kit must compare or validate itself."""
    text = _rendered(role, src, data)
    if review := os.environ.get(REVIEW_DIR):
        _keep_for_review(Path(review), f"{role}/{src}", f"rendered/{role}/{src.removesuffix('.j2')}", text)
    return text


def _keep_for_review(review: Path, template_path: str, relative: str, text: str) -> None:
    """The host's file under review/<host>/ (a template rendered again with other data: .2, .3, ...),
    and a line in review/<host>/templates.txt naming the template it came from."""
    host_dir = review / host.name.removeprefix("@fake/")
    path = host_dir / relative
    count = 1
    while path.exists() and path.read_text() != text:
        count += 1
        path = path.with_name(f"{Path(relative).name}.{count}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with (host_dir / "templates.txt").open("a") as index:
        index.write(f"templates/{template_path} -> {path.relative_to(host_dir)}\n")


def render_command(role: str, src: str, **data) -> str:
    """A shell command from a .sh.j2 template, as pyinfra runs it: rendered, without the file's final newline."""
    return render(role, src, **data).removesuffix("\n")
