"""Secrets: `${VAR}` references resolved on the controller, masked everywhere, written 0600.

A secret's value exists in three places only: the controller's environment (or the git-ignored
`.env` file), this process's memory inside a `Secret`, and a 0600 file on the host owned by the
service. `Secret` never shows its value through str(), repr() or format(), so an exception
message, a log line or an operation name that mentions one prints the mask instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets as _random
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File, Sha256File

REFERENCE = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")
# The working directory's, as pyinfra's inventory and deploy file are (a checkout, or `openclaw-kit init`'s).
DOTENV = Path(".env")
MASK = "***"


class Secret:
    """A resolved secret. Only `reveal()` gives the value."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str):
        self.name = name
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"${{{self.name}}}={MASK}"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.name == self.name and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):
        # Refuse pickling: nothing should carry a secret out of this process by accident.
        raise TypeError("a Secret cannot be pickled")


def read_dotenv(path: Path = DOTENV) -> dict[str, str]:
    """KEY=VALUE lines, `#` comments, optional single or double quotes around the value."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def controller_env(dotenv: Path = DOTENV) -> dict[str, str]:
    """The environment wins over `.env`, so CI can inject values without a file."""
    return {**read_dotenv(dotenv), **os.environ}


def reference_name(value: object) -> str | None:
    """The VAR of a `${VAR}` reference, or None when the value is not one."""
    if isinstance(value, str):
        match = REFERENCE.match(value)
        if match:
            return match.group(1)
    return None


def describe_literal(value: object) -> str:
    """How an error mentions a value that should have been a secret reference."""
    length = len(value) if isinstance(value, str) else 0
    return f"<literal value hidden, {length} characters>"


def generate_token() -> str:
    """32 random bytes as hex: the strength OpenClaw documents for gateway tokens."""
    return _random.token_hex(32)


ROTATION_STEPS = """\
To rotate the gateway token (or any secret: a bot token the same way, under its own name):
  1. Replace the value where the deploy reads it: OPENCLAW_GATEWAY_TOKEN=<the token above> in .env
     (chmod 600), or in the environment of the deploy, which wins over .env.
  2. Re-run the deploy: .venv/bin/pyinfra INVENTORY deploy.py
     It rewrites the host's 0600 /etc/openclaw/gateway.env, names what changed (by name only):
       openclaw | Secrets file /etc/openclaw/gateway.env (changed: OPENCLAW_GATEWAY_TOKEN)
     then restarts the gateway and waits for /healthz.
  3. Give the new token to the Control UI and every client: the old one now gets 401, and
     connections opened with it are closed. A second run changes nothing."""


def env_file_content(values: Mapping[str, Secret | str]) -> bytes:
    """A systemd EnvironmentFile; values are single-quoted, which systemd strips."""
    lines = []
    for key, value in values.items():
        raw = value.reveal() if isinstance(value, Secret) else value
        if "\n" in raw or "'" in raw:
            raise ValueError(f"{key}: a value for an environment file cannot contain a newline or a quote")
        lines.append(f"{key}='{raw}'\n")
    return "".join(lines).encode()


class EnvFileDigests(FactBase):
    """NAME -> salted sha256 of each `NAME='value'` line of an environment file ({} when there is
    none): which secrets differ is known without a value, or an unsalted hash of one, leaving the host."""

    def command(self, path: str, salt: str) -> str:
        q = shlex.quote
        # sha256sum on Linux, shasum on macOS (whose gateway has the same env file).
        sha256 = "if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi"
        digest = f"$(printf '%s%s' {q(salt)} \"$line\" | {sha256} | cut -c1-64)"
        return (
            f"if [ -f {q(path)} ]; then while IFS= read -r line || [ -n \"$line\" ]; do "
            f"printf '%s %s\\n' \"${{line%%=*}}\" \"{digest}\"; done < {q(path)}; fi"
        )

    def process(self, output) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in output if " " in line)


# One salt per run: the digests above are compared within a run, never kept.
DIGEST_SALT = _random.token_hex(16)


def line_digests(values: Mapping[str, Secret | str], salt: str = DIGEST_SALT) -> dict[str, str]:
    """What EnvFileDigests reads from a host whose file holds `values`."""
    lines = env_file_content(values).decode().splitlines()
    return {line.partition("=")[0]: hashlib.sha256(f"{salt}{line}".encode()).hexdigest() for line in lines}


def changed_names(on_host: Mapping[str, str], values: Mapping[str, Secret | str], salt: str = DIGEST_SALT) -> list[str]:
    """Names of the secrets that are new, different or gone on the host: what a rotation reports."""
    wanted = line_digests(values, salt)
    return sorted(name for name in {*on_host, *wanted} if on_host.get(name) != wanted.get(name))


@operation(is_idempotent=True)
def private_file(path: str, content: Secret, user: str, group: str, private_dir: str):
    """
    A file only `user` can read (mode 0600) whose content is never shown.

    pyinfra's files.put/template would print the content with --diff; this compares hashes only.
    The file is created empty with 0600 first, and the upload overwrites it in place (SFTP and
    `cp` keep an existing file's mode), so the content never sits in a readable file. A staging
    copy, needed when pyinfra uploads through sudo, lives in `private_dir` (0700). The content
    travels as a Secret, masked wherever pyinfra might print an argument.
    """
    data = content.reveal().encode()
    current = host.get_fact(File, path=path)
    same_content = bool(current) and host.get_fact(Sha256File, path=path) == hashlib.sha256(data).hexdigest()

    if not current or current.get("mode") != 600 or current.get("user") != user or current.get("group") != group:
        yield StringCommand("install", "-m", "600", "-o", user, "-g", group, "/dev/null", path) if not current else (
            StringCommand("chown", f"{user}:{group}", path, "&&", "chmod", "600", path)
        )
    if not same_content:
        # As the SSH user, not through sudo: it is where that user's SFTP upload lands.
        yield StringCommand("install", "-d", "-m", "700", private_dir, _sudo=False)
        yield FileUploadCommand(io.BytesIO(data), path, remote_temp_filename=f"{private_dir}/upload")


@operation(is_idempotent=True)
def secret_file(path: str, values: Mapping[str, Secret], user: str, group: str, private_dir: str):
    """`values` as a systemd environment file at `path`, mode 0600, never shown (see private_file)."""
    # Arguments stay Secrets (masked if pyinfra ever prints them); bytes exist only in here.
    content = Secret(", ".join(values), env_file_content(values).decode())
    yield from private_file._inner(path=path, content=content, user=user, group=group, private_dir=private_dir)


if __name__ == "__main__":
    # `python -m openclaw_kit.secrets token` (or `./kit token`) prints a fresh gateway token for your .env file.
    if sys.argv[1:] == ["token"]:
        print(generate_token())
        # On stderr, so `$(./kit token)` captures the token alone.
        print(ROTATION_STEPS, file=sys.stderr)
    else:
        sys.exit("usage: python -m openclaw_kit.secrets token")
