"""Placing a rendered template with one fact command, in pyinfra's style.

pyinfra's files.template asks three facts for every file (File, Sha1File and the parent's
Directory), three SSH round trips per file on every run, converged or not. PlacedFile runs the same
three facts' own commands in one shell and hands each fact's output to that fact's own parser, so
the answers are pyinfra's; template() decides from them as files.put does, and hands anything
unusual (the path is not a regular file, no sha1 tool, a parent that is not a directory) to
files.put itself.
"""

from __future__ import annotations

import posixpath
from io import StringIO

from jinja2 import TemplateRuntimeError, TemplateSyntaxError, UndefinedError
from pyinfra import host, state
from pyinfra.api import FactBase, FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.util import get_file_sha1, get_template
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.operations import files
from pyinfra.operations.util import files as file_utils
from pyinfra.operations.util.files import ensure_mode_int

# Printed between the facts' outputs; none of them prints a line like it.
SEPARATOR = "--- openclaw-kit placed ---"


class PlacedFile(FactBase):
    """
    What placing a file at ``path`` needs to know, from one command:

    .. code:: python

        {
            "file": {"user": "root", "group": "root", "mode": 644, ...},  # pyinfra's File fact
            "sha1": "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed",           # pyinfra's Sha1File fact
            "directory": {"user": "root", "group": "root", "mode": 755, ...},  # Directory of the parent
        }

    Each value is what that pyinfra fact returns on its own (None: missing; False: there but of
    another type).
    """

    def __init__(self):
        self.parts = (File(), Sha1File(), Directory())

    @staticmethod
    def default():
        return {"file": None, "sha1": None, "directory": None}

    def command(self, path):
        file_fact, sha1_fact, directory_fact = self.parts
        commands = (file_fact.command(path), sha1_fact.command(path), directory_fact.command(posixpath.dirname(path)))
        bits: list = []
        for command in commands:
            if bits:
                bits += [";", "echo", f"'{SEPARATOR}'", ";"]
            bits.append(command)
        return StringCommand(*bits)

    def process(self, output):
        groups: list[list[str]] = [[]]
        for line in output:
            if line == SEPARATOR:
                groups.append([])
            else:
                groups[-1].append(line)
        if len(groups) != len(self.parts):
            return self.default()
        file_data, sha1, directory = (
            fact.process(lines) if lines else fact.default() for fact, lines in zip(self.parts, groups, strict=True)
        )
        return {"file": file_data, "sha1": sha1, "directory": directory}


@operation()
def template(
    src: str,
    dest: str,
    user: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    create_remote_dir: bool = True,
    jinja_env_kwargs: dict | None = None,
    **data,
):
    """
    Render a jinja2 template and place it on the host, as ``files.template`` does, asking the host
    one fact (PlacedFile) instead of three.

    + src: template filename
    + dest: remote path of the file
    + user, group, mode: owner and mode of the file
    + create_remote_dir: create the parent directory when it is missing (owned by user and group)
    + jinja_env_kwargs: keyword arguments of the jinja2 Environment (``trim_blocks``, ...)
    + data: the template's variables (``host``, ``state`` and ``inventory`` are added, as pyinfra does)

    The same commands as ``files.template``: an upload followed by chown and chmod for a missing or
    changed file, chmod or chown alone when only those differ, ``mkdir -p`` and chown for a missing
    parent; nothing on a converged host.

    **Example:**

    .. code:: python

        placed.template(
            name="fail2ban jail /etc/fail2ban/jail.d/kit.conf",
            src="templates/fail2ban/jail.conf.j2",
            dest="/etc/fail2ban/jail.d/kit.conf",
            user="root",
            group="root",
            mode="644",
            bantime=600,
        )
    """
    data.setdefault("host", host)
    data.setdefault("state", state)
    data.setdefault("inventory", state.inventory)
    try:
        output = get_template(src, dict(jinja_env_kwargs or {})).render(data)
    except (TemplateRuntimeError, TemplateSyntaxError, UndefinedError):
        # pyinfra's own message points at the template's line.
        yield from files.template._inner(src=src, dest=dest, user=user, group=group, mode=mode,
                                         create_remote_dir=create_remote_dir, jinja_env_kwargs=jinja_env_kwargs, **data)
        return
    content = StringIO(output)
    content.template = src  # type: ignore[attr-defined]  # as files.template sets it, for pyinfra's messages
    mode = ensure_mode_int(mode)
    placed = host.get_fact(PlacedFile, path=dest)
    remote, directory = placed["file"], placed["directory"]

    unusual = remote is False or (remote and not placed["sha1"]) or (create_remote_dir and directory is False)
    if unusual or state.config.DIFF:  # files.put knows what to do (and prints the diff)
        yield from files.put._inner(src=content, dest=dest, user=user, group=group, mode=mode, add_deploy_dir=False,
                                    create_remote_dir=create_remote_dir)
        return

    parent = posixpath.dirname(dest)
    if create_remote_dir and parent and directory is None:
        # files.directory for a missing parent, as files.put asks for it (no mode).
        yield StringCommand("mkdir", "-p", QuoteString(parent))
        if user or group:
            yield file_utils.chown(parent, user, group)

    temp_dir = (host.current_op_global_arguments or {}).get("_temp_dir")
    if not remote or placed["sha1"] != get_file_sha1(content):
        temp_file = host.get_temp_filename(dest, temp_directory=temp_dir)
        yield FileUploadCommand(content, dest, remote_temp_filename=temp_file)
        if user or group:
            yield file_utils.chown(dest, user, group)
        if mode:
            yield file_utils.chmod(dest, mode)
        return

    changed = False
    if mode and remote["mode"] != mode:
        yield file_utils.chmod(dest, mode)
        changed = True
    if (user and remote["user"] != user) or (group and remote["group"] != group):
        yield file_utils.chown(dest, user, group)
        changed = True
    if not changed:
        host.noop(f"file {dest} is already uploaded")
