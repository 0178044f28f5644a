"""placed: PlacedFile on this machine's real files against pyinfra's own facts, and placed.template
as pyinfra tests its operations: recorded facts in, exact commands out."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import Config, FileUploadCommand, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, Sha1File

from openclaw_kit import placed
from openclaw_kit.placed import PlacedFile

DEST = "/etc/kit/app.conf"
STAT = "user={} group={} mode={} atime=1 mtime=1 ctime=1 size=1 {}"


def run_here(fact, path: str) -> object:
    """A fact's command run by this machine's shell, its output parsed by the fact, as pyinfra does."""
    command = fact.command(path)
    done = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    return fact.process(lines) if lines else fact.default()


@pytest.mark.parametrize("case", ["file", "missing", "directory at the path", "missing parent"])
def test_placed_file_answers_what_pyinfras_three_facts_answer(tmp_path, case):
    path = {"file": tmp_path / "app.conf", "missing": tmp_path / "app.conf",
            "directory at the path": tmp_path / "sub", "missing parent": tmp_path / "nowhere" / "app.conf"}[case]
    if case == "file":
        path.write_text("setting = 1\n")
        os.chmod(path, 0o640)
    if case == "directory at the path":
        path.mkdir()
    answer = run_here(PlacedFile(), str(path))
    assert answer == {"file": run_here(File(), str(path)), "sha1": run_here(Sha1File(), str(path)),
                      "directory": run_here(Directory(), str(path.parent))}
    if case == "file":
        assert answer["file"]["mode"] == 640 and answer["directory"]
        assert answer["sha1"] == hashlib.sha1(b"setting = 1\n").hexdigest()
    if case == "directory at the path":
        assert answer["file"] is False
    if case == "missing parent":
        assert answer["file"] is None and answer["sha1"] is None and answer["directory"] is None


def planned(template: Path, responses: dict, **arguments) -> list:
    """placed.template's commands on a fake Debian host answering `responses` (uploads as ("upload", text))."""
    inventory = Inventory(([("@fake/gw1", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": responses})], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@fake/gw1")
    found = []
    with ctx_state.use(state), ctx_host.use(host):
        placed.template(name=f"Config {DEST}", src=str(template), dest=DEST, **{"user": "root", "group": "root",
                                                                               "mode": "640", **arguments})
        for op_hash in state.get_op_order():
            data = state.get_op_data_for_host(host, op_hash)
            for command in data.command_generator():
                found.append(("upload", command.src.getvalue()) if isinstance(command, FileUploadCommand)
                             else command.get_raw_value())
            data.operation_meta.set_complete(True, found, CommandOutput([]))
    return found


def answer(content: str | None, mode="-rw-r-----", user="root", group="root", parent=True) -> dict:
    """What a host answers PlacedFile about DEST: the file holding `content` (None: no file) and its parent."""
    lines = [STAT.format(user, group, mode, DEST)] if content is not None else []
    lines += [placed.SEPARATOR]
    lines += [f"{hashlib.sha1(content.encode()).hexdigest()}  {DEST}"] if content is not None else []
    lines += [placed.SEPARATOR]
    lines += [STAT.format("root", "root", "drwxr-xr-x", "/etc/kit")] if parent else []
    return {re.compile(rf"sha1sum {re.escape(DEST)}\b"): lines}


@pytest.fixture
def template(tmp_path) -> Path:
    path = tmp_path / "app.conf.j2"
    path.write_text("{% if on %}\nport = {{ port }}\n{% endif %}\n")
    return path


RENDERED = "port = 8080\n"
TRIMMED = {"jinja_env_kwargs": {"trim_blocks": True, "lstrip_blocks": True}, "on": True, "port": 8080}


def test_a_placed_file_in_place_gets_no_command_from_one_fact(template):
    assert planned(template, answer(RENDERED), **TRIMMED) == []


def test_a_missing_file_in_a_missing_directory_is_made_as_files_template_makes_it(template):
    assert planned(template, answer(None, parent=False), **TRIMMED) == [
        "mkdir -p /etc/kit", "chown root:root /etc/kit",
        ("upload", RENDERED), f"chown root:root {DEST}", f"chmod 640 {DEST}",
    ]


def test_changed_content_is_uploaded_with_owner_and_mode(template):
    # Without trim_blocks the rendering keeps the block lines' newlines: the jinja options are honoured.
    assert planned(template, answer(RENDERED), on=True, port=8080) == [
        ("upload", "\nport = 8080\n\n"), f"chown root:root {DEST}", f"chmod 640 {DEST}",
    ]


@pytest.mark.parametrize(("live", "expected"), [
    (dict(mode="-rw-r--r--"), [f"chmod 640 {DEST}"]),
    (dict(user="admin"), [f"chown root:root {DEST}"]),
    (dict(mode="-rw-rw-rw-", group="staff"), [f"chmod 640 {DEST}", f"chown root:root {DEST}"]),
])
def test_only_the_owner_or_mode_that_differs_is_put_back(template, live, expected):
    assert planned(template, answer(RENDERED, **live), **TRIMMED) == expected


def test_a_parent_that_exists_is_left_alone_without_create_remote_dir(template):
    assert planned(template, answer(None, parent=False), create_remote_dir=False, **TRIMMED) == [
        ("upload", RENDERED), f"chown root:root {DEST}", f"chmod 640 {DEST}",
    ]
