"""Drift report: what a deploy would change, per host, without changing anything.

    openclaw-kit drift inventories/prod.py      (or: ./kit drift, python -m openclaw_kit.drift)

Runs `pyinfra --dry --json` (facts are read, nothing is executed; not with -y, which turns
pyinfra's change detection off and would report every host as converged), prints every operation that
would change each host and a per-role table (the deploy.py of the working directory, else the
kit's own: openclaw_kit.paths), and exits 1 when any host has drifted, 0 when every
host is converged, 2 when pyinfra itself failed. The same table ends a normal deploy
(`summary_at_exit`, registered by deploy.py), with the counts of what actually happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from openclaw_kit.paths import deploy_file

NO_ROLE = "(no role)"


def role_of(name: str) -> str:
    # Operations inside @deploy("role") are named "role | operation" by pyinfra.
    return name.split(" | ", 1)[0] if " | " in name else NO_ROLE


def drifted(plan: list[dict]) -> dict[str, list[str]]:
    """Host -> names of the operations that would change it. Conditional operations (`_if=`) only
    follow a change that is listed already, so they are not drift themselves."""
    changes: dict[str, list[str]] = defaultdict(list)
    for op in plan:
        for name in op["hosts_with_change"]:
            changes[name].append(op["name"])
    return dict(changes)


def plan_counts(plan: list[dict], hosts: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Host -> role -> {would change, conditional} from a dry run's plan. Conditional: operations
    that run only if an earlier one changes (a reload after a config change, say)."""
    counts: dict = {name: {} for name in hosts}
    for op in plan:
        for name in hosts:
            cells = counts[name].setdefault(role_of(op["name"]), {"would change": 0, "conditional": 0})
            cells["would change"] += name in op["hosts_with_change"]
            cells["conditional"] += name in op["hosts_with_conditional_change"]
    return counts


def result_counts(results: dict) -> dict[str, dict[str, dict[str, int]]]:
    """Host -> role -> {changed, unchanged, failed} from a run's results."""
    counts: dict = defaultdict(lambda: defaultdict(lambda: {"changed": 0, "unchanged": 0, "failed": 0}))
    for op in results["operations"]:
        role = role_of(op["name"])
        for column, key in (("changed", "success"), ("unchanged", "no_change"), ("failed", "error")):
            for name in op[key]:
                counts[name][role][column] += 1
    return counts


def table(counts: dict[str, dict[str, dict[str, int]]]) -> str:
    rows = [(name, role, *cells.values()) for name in sorted(counts) for role, cells in counts[name].items()]
    if not rows:
        return "(no operations)"
    columns = list(next(iter(next(iter(counts.values())).values())))
    header = ("host", "role", *columns)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])


def summary_at_exit() -> None:
    """Print the per-host, per-role table of a deploy that executed operations (to stderr: --json
    output stays parseable). Registered with atexit by deploy.py; pyinfra exits through sys.exit."""
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_state
    from pyinfra_cli.prints import build_results_json

    if not ctx_state.isset() or ctx_state.get().current_stage < StateStage.Execute:
        return  # a dry run, or stopped before anything ran (a settings error)
    sys.stdout.flush()  # after pyinfra's own results
    print("\n--> Per role:\n" + table(result_counts(build_results_json(ctx_state.get()))), file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: openclaw-kit drift INVENTORY", file=sys.stderr)
        return 2
    run = subprocess.run(
        [sys.executable, "-m", "pyinfra", "--dry", "--json", str(Path(argv[0]).resolve()), str(deploy_file())],
        capture_output=True,
        text=True,
    )
    try:
        output = json.loads(run.stdout[run.stdout.index("{") :])
    except ValueError:
        output = None
    if run.returncode != 0 or output is None:
        print(f"drift: pyinfra failed (exit {run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}", file=sys.stderr)
        return 2
    plan = output["plan"]
    hosts = inventory_hosts(argv[0])
    changes = drifted(plan)
    for name in hosts:
        if name in changes:
            print(f"{name}: DRIFTED, {len(changes[name])} operation(s) would change:")
            print("\n".join(f"  - {op}" for op in changes[name]))
        else:
            print(f"{name}: converged")
    print("\n" + table(plan_counts(plan, hosts)))
    return 1 if changes else 0


def inventory_hosts(path: str) -> list[str]:
    """The inventory's host names as pyinfra names them (the plan lists only hosts with changes)."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    with ctx_state.use(State()):
        return [each.name for each in make_inventory(path)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
