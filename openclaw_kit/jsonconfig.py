#!/usr/bin/python3
# Managed by openclaw-kit (openclaw_kit/jsonconfig.py): the same file is the controller's module and,
# on the host, the tool that merges the kit's sections into OpenClaw's config. Standard library only.
#   jsonconfig.py DESIRED LIVE OUT     OUT = LIVE with the top-level sections of DESIRED replaced
#   jsonconfig.py --digest LIVE KEY..  sha256 of LIVE's sections KEY.. (no values leave the host)
# OpenClaw rewrites its own config (meta, wizard, agents, ...); the kit owns only its sections.
"""The kit's part of OpenClaw's JSON config: read with comments, merged, compared by digest."""

import hashlib
import json
import os
import sys
from typing import Optional  # not `dict | None`: the host's /usr/bin/python3 is 3.9 on a Mac (the Command Line Tools')


def load_commented(text: str) -> dict:
    """JSON with whole-line // comments (valid JSON5, read by humans too), as the kit renders it."""
    return json.loads("".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("//")))


def digest(sections: dict) -> str:
    return hashlib.sha256(json.dumps(sections, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_live(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def merge(desired_path: str, live_path: str, out_path: str) -> None:
    with open(desired_path) as f:
        desired = load_commented(f.read())
    live = read_live(live_path) or {}
    live.update(desired)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # novermin: flags, not a union type
    with os.fdopen(fd, "w") as f:
        json.dump(live, f, indent=2)
        f.write("\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--digest"] and len(argv) >= 2:
        live = read_live(argv[1])
        print("unreadable" if live is None else digest({key: live.get(key) for key in argv[2:]}))
        return 0
    if len(argv) == 3:
        merge(*argv)
        return 0
    print(__doc__, "usage: jsonconfig.py DESIRED LIVE OUT | --digest LIVE KEY...", sep="\n", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
