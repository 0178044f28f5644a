"""`openclaw-kit`: the kit's commands beside the deploy itself, which stays `pyinfra INVENTORY deploy.py`.

    openclaw-kit init DIR                   deploy.py and an example inventory in a new directory
    openclaw-kit validate INVENTORY         every host's settings, no host contacted
    openclaw-kit render INVENTORY DIR       every file the deploy would place, per host, for review
    openclaw-kit verify INVENTORY [ARGS]    the hosts are in the promised state (pytest ARGS)
    openclaw-kit drift INVENTORY            what a deploy would change, per host
    openclaw-kit token                      a new gateway token
    openclaw-kit versions [--offline]       the pins and the newest versions
    openclaw-kit record-facts INVENTORY HOST [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openclaw_kit import paths

# What `render` shows the deploy instead of a real host: a fresh one of the release named (the
# facts a dry run reads first; every other command answers nothing, as on a host the kit never touched).
RELEASES = {
    "debian12": ("debian", "12", "bookworm", "Debian GNU/Linux"),
    "debian13": ("debian", "13", "trixie", "Debian GNU/Linux"),
    "ubuntu2404": ("ubuntu", "24.04", "noble", "Ubuntu"),
}


def fresh_host_facts(release: str) -> dict:
    distro, version, codename, name = RELEASES[release]
    return {
        "uname -s": "Linux",
        "uname -m": "x86_64",
        "command -v useradd": "/usr/sbin/useradd",
        "ip -o addr show": ["1: lo    inet 127.0.0.1/8 scope host lo", "2: eth0    inet 192.0.2.10/24 scope global"],
        "-release": ["/etc/os-release", f'NAME="{name}"', f"ID={distro}", f'VERSION_ID="{version}"',
                     f"VERSION_CODENAME={codename}", "---"],
    }


def inventory_data(path: str) -> dict[str, dict]:
    """Host name -> its data (group data merged), as pyinfra builds the inventory for a deploy."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    if not Path(path).is_file():
        raise SystemExit(f"openclaw-kit: {path}: no such inventory file")
    with ctx_state.use(State()):
        return {each.name: each.data.dict() for each in make_inventory(path)}


def init(args) -> int:
    target = Path(args.dir)
    files = {paths.KIT_DEPLOY: target / "deploy.py", paths.EXAMPLE_INVENTORY: target / "inventories" / "prod.py"}
    existing = [str(dest) for dest in files.values() if dest.exists()]
    if existing:
        print(f"openclaw-kit init: {', '.join(existing)} exist(s); nothing was written", file=sys.stderr)
        return 2
    for source, dest in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    print(f"wrote {target}/deploy.py and {target}/inventories/prod.py. Next, in {target}:\n"
          "  edit inventories/prod.py (your hosts and settings; docs/settings.md lists them)\n"
          "  openclaw-kit token   (for OPENCLAW_GATEWAY_TOKEN in .env or the environment)\n"
          "  openclaw-kit validate inventories/prod.py\n"
          "  pyinfra inventories/prod.py deploy.py")
    return 0


def validate(args) -> int:
    from openclaw_kit.secrets import controller_env
    from openclaw_kit.settings import SettingsError, validate_hosts

    hosts = inventory_data(args.inventory)
    try:
        validate_hosts(hosts, controller_env())
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1
    # The operating system is known only on the host: the deploy checks it before any change.
    print(f"{args.inventory}: the settings of {len(hosts)} host(s) are valid: {', '.join(hosts)}")
    return 0


def render(args) -> int:
    from openclaw_kit.templates import REVIEW_DIR

    hosts = inventory_data(args.inventory)
    unknown = sorted(set(args.limit or []) - set(hosts))
    if unknown:
        print(f"openclaw-kit render: --limit {', '.join(unknown)}: not a host of {args.inventory}", file=sys.stderr)
        return 2
    chosen = [name for name in hosts if not args.limit or name in args.limit]
    out = Path(args.dir).resolve()
    earlier = [str(out / name) for name in chosen if (out / name).exists()]
    if earlier:
        print(f"openclaw-kit render: {', '.join(earlier)} exist(s) (an earlier render?); remove first", file=sys.stderr)
        return 2
    facts = fresh_host_facts(args.release)
    fake = [(f"@fake/{name}", {**hosts[name], "fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": facts})
            for name in chosen]
    with tempfile.TemporaryDirectory() as scratch:
        inventory = Path(scratch) / "inventory.py"
        inventory.write_text(f"hosts = {fake!r}\n")
        # A dry run: the deploy runs on the controller and renders every file; nothing is executed.
        run = subprocess.run([sys.executable, "-m", "pyinfra", "--dry", str(inventory), str(paths.deploy_file())],
                             env={**os.environ, REVIEW_DIR: str(out)}, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"openclaw-kit render: the dry run failed (pyinfra exit {run.returncode}):\n"
              f"{(run.stdout + run.stderr)[-3000:]}", file=sys.stderr)
        return 1
    for name in chosen:
        host_dir = out / name
        count = sum(1 for each in host_dir.rglob("*") if each.is_file())
        print(f"{host_dir}: {count} file(s), as the deploy would write them to a fresh {args.release} host")
    return 0


def verify(args, pytest_args: list[str]) -> int:
    import pytest

    if not Path(args.inventory).is_file():
        print(f"openclaw-kit verify: {args.inventory}: no such inventory file", file=sys.stderr)
        return 2
    options = ["-p", "no:cacheprovider"]  # nothing written beside the checks (an installed wheel)
    if paths.KIT == paths.PACKAGED:
        # Not a pytest configuration found above site-packages (say, a project holding the virtualenv).
        options += ["-c", os.devnull, "--rootdir", str(paths.KIT)]
    return pytest.main([str(paths.VERIFY), "--inventory", args.inventory, *options, *pytest_args])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="openclaw-kit",
        description="The kit's commands. The deploy itself is pyinfra's: `pyinfra INVENTORY deploy.py` "
                    "(`openclaw-kit init DIR` writes a deploy.py and an example inventory).")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str):
        return commands.add_parser(name, help=help_, description=help_)

    each = command("init", "write deploy.py and an example inventory (inventories/prod.py) into a new directory")
    each.add_argument("dir")
    each = command("validate", "validate every host's settings in INVENTORY (no host is contacted)")
    each.add_argument("inventory")
    each = command("render", "render every file the deploy would place on each host of INVENTORY into "
                             "DIR/<host>/, for review (a dry run on a stand-in fresh host: nothing is contacted)")
    each.add_argument("inventory")
    each.add_argument("dir")
    each.add_argument("--limit", action="append", metavar="HOST", help="only this host (repeatable)")
    each.add_argument("--release", choices=sorted(RELEASES), default="debian13",
                      help="the fresh host's release (default: debian13)")
    each = command("verify", "check that INVENTORY's hosts are in the promised state; further arguments go to pytest")
    each.add_argument("inventory")
    each = command("drift", "what a deploy would change, per host (exit 1 when any host drifted)")
    each.add_argument("inventory")
    command("token", "print a new gateway token (for OPENCLAW_GATEWAY_TOKEN in .env), the rotation steps on stderr")
    each = command("versions", "the OpenClaw, Node.js and npm versions the kit pins, and the newest that exist")
    each.add_argument("--offline", action="store_true", help="do not ask the npm registry")
    # record-facts parses its own arguments (openclaw_kit.record_facts).
    each = command("record-facts", "record (read-only, scrubbed) what the kit reads from HOST of INVENTORY")
    each.add_argument("args", nargs=argparse.REMAINDER, help="INVENTORY HOST [--out DIR]")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, rest = parser().parse_known_args(argv)
    if rest and args.command != "verify":
        parser().error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "verify":
        return verify(args, rest)
    if args.command == "init":
        return init(args)
    if args.command == "validate":
        return validate(args)
    if args.command == "render":
        return render(args)
    if args.command == "drift":
        from openclaw_kit import drift

        return drift.main([args.inventory])
    if args.command == "token":
        from openclaw_kit.secrets import ROTATION_STEPS, generate_token

        print(generate_token())
        print(ROTATION_STEPS, file=sys.stderr)  # on stderr, so `$(openclaw-kit token)` captures the token alone
        return 0
    if args.command == "versions":
        from openclaw_kit import versions

        return versions.main(["--offline"] if args.offline else [])
    from openclaw_kit import record_facts

    return record_facts.main(args.args)


if __name__ == "__main__":
    sys.exit(main())
