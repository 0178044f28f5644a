"""python -m sandbox up --hosts N [--distro D[,D...]] [--no-root-login] | down | status [--json]"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from . import DEFAULT_DISTRO, DISTROS, SandboxError, down, load_state, ssh_command, state_dir, status, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox",
                                     description="Local Debian and Ubuntu test hosts for the kit.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="boot N hosts (keeps running ones, stops extras)")
    p_up.add_argument("--hosts", type=int, default=2, metavar="N")
    p_up.add_argument("--distro", action="append", metavar="D[,D...]",
                      help=f"{' | '.join(DISTROS)} (default {DEFAULT_DISTRO}): one for every host, "
                           "or one per host in order (comma-separated or repeated)")
    p_up.add_argument("--no-root-login", action="store_true",
                      help="like a cloud image: only the distro's admin user (admin, ubuntu) logs in over SSH")
    sub.add_parser("down", help="remove everything the sandbox made (keeps base image, SSH key)")
    p_status = sub.add_parser("status", help="exit 0 if every host and service is healthy")
    p_status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            started = time.monotonic()
            distros = [d for value in args.distro or [] for d in value.split(",") if d]
            state = up(args.hosts, distros or None, root_login=not args.no_root_login)
            print(f"sandbox up with {len(state['hosts'])} host(s) "
                  f"in {time.monotonic() - started:.0f} s")
            for h in state["hosts"]:
                print(f"  {h['name']} ({h['os']}): {shlex.join(ssh_command(h['address'], state, h['ssh_user']))}")
            print(f"state: {state_dir() / 'state.json'}")
            return 0
        if args.command == "down":
            down()
            print("sandbox down")
            return 0
        report = status()
        if args.json:
            print(json.dumps(report, indent=2))
        elif not report["up"]:
            print(report["error"])
        else:
            for h in report["hosts"]:
                print(f"{h['name']} {h.get('os', 'Debian 12')} {h['address']} pid {h['pid']}: "
                      f"process {'alive' if h['alive'] else 'DEAD'}, "
                      f"ssh {'ok (' + h['detail'] + ')' if h['ssh'] else 'FAILING: ' + h['detail']}")
            for name, s in report["services"].items():
                print(f"{name} pid {s['pid']}: process {'alive' if s['alive'] else 'DEAD'}, "
                      f"{'listening' if s['listening'] else 'NOT listening'}")
            print("healthy" if report["healthy"] else "UNHEALTHY")
            print("reach the hosts with:")
            state = load_state()
            for h in state["hosts"]:
                print(f"  {h['name']}: {shlex.join(ssh_command(h['address'], state, h.get('ssh_user')))}")
        return 0 if report["healthy"] else 1
    except (SandboxError, OSError) as e:
        print(f"sandbox {args.command} failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sandbox {args.command} interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
