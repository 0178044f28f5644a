"""Every file placed on a host comes from templates/<role>/; this is the one way in."""

import posixpath
import shlex

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra import host
from pyinfra.operations import files

from openclaw_kit.paths import TEMPLATES
from openclaw_kit.platform import platform_of

# Directories every Debian/Ubuntu host has (base-files, apt, systemd, cron: the kit installs cron
# before it writes there). Files placed in them skip pyinfra's parent-directory check, one SSH
# round trip each on every run; other parents are still checked and created.
SYSTEM_DIRS = {"/etc", "/etc/apt/apt.conf.d", "/etc/cron.d", "/etc/systemd/system", "/usr/local/sbin"}


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
    # An explicit name keeps the template's data out of pyinfra's output (upstream issue #1896).
    return files.template(
        name=name,
        src=str(TEMPLATES / role / src),
        dest=dest,
        mode=mode,
        user=user,
        group=group or platform_of(host).root_group,
        create_remote_dir=posixpath.dirname(dest) not in SYSTEM_DIRS,
        **data,
    )


def render(role: str, src: str, **data) -> str:
    """A template rendered on the controller, for content the kit must compare or validate itself."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES / role),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=src.endswith(".sh.j2"),
        lstrip_blocks=src.endswith(".sh.j2"),
    )
    environment.filters["quote"] = shlex.quote  # for shell scripts
    return environment.get_template(src).render(**data)
