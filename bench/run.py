"""How long the kit takes on real sandbox hosts, and what a no-op run costs.

    .venv/bin/python -m bench.run [--quick] [--reuse] [--keep] [--repeat N] [--json PATH]

Full run, on a slot with no sandbox yet (e.g. OPENCLAW_SANDBOX_SLOT=3):
  1. fresh provision of one new host (packages through the sandbox's proxy);
  2. no-op re-run of deploy.py on that host, and its floor: a pyinfra run of `true` on it;
  3. no-op re-runs on 1, 4 and 8 hosts at once (the 7 extra hosts are deployed once, unmeasured);
  4. the controller's peak memory (max RSS of the pyinfra process) and CPU time for every run, and
     how busy the whole machine was (the sandbox hosts share its cores);
  5. operations (pyinfra's --json) and SSH commands and uploads (pyinfra's --debug) per no-op run;
  6. how long every verify check takes on one host (`pytest tests/verify --limit HOST`).
It brings the sandbox down at the end (--keep leaves it up).

--reuse: use the slot's sandbox as it is (no fresh-provision figure); hosts it lacks are added and
removed again at the end. --quick (CI): one host of the slot's sandbox (brought up, deployed and
taken down again when there is none), the no-op run, the floor and verify only.

Every run is a real `python -m pyinfra` subprocess, as a user would start it; wall times are the
median of --repeat runs. Secrets come from the environment or .env, as for any deploy; nothing
here prints pyinfra's output except the last lines of a failed run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sandbox

REPO = Path(__file__).resolve().parents[1]
INVENTORY = "inventories/sandbox.py"
DEPLOY = "deploy.py"
HOST_COUNTS = (1, 4, 8)
TARGETS = {"noop_vs_floor": 4.0, "noop_8_vs_1": 2.5, "verify_s_per_host": 15.0}
# Fresh hosts deployed at once while setting up the 8: on a loaded 2-core machine, 8 first starts of
# OpenClaw at once overran the deploy's 90 s /healthz wait (its state migration timed out).
SETUP_BATCH = 2
# pyinfra --debug logs one line per command it runs over SSH (facts and operations alike) and one
# per file upload (SFTP); see pyinfra/connectors/ssh.py.
COMMAND_LINE = re.compile(r"Running command on (\S+):")
UPLOAD_LINE = re.compile(r"Attempting upload of ")


class BenchError(Exception):
    """A measurement could not be taken; one line for humans."""

    report: dict | None = None  # what was measured before it failed


@dataclass
class Run:
    wall: float          # seconds
    cpu: float           # CPU seconds of the pyinfra process (user + system): the controller's own work
    machine_busy: float  # share of the whole machine's CPU time that was busy during the run (0..1)
    max_rss_mb: float    # peak resident memory of the pyinfra process (the controller)
    stdout: str
    stderr: str


def cpu_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot, all cores (/proc/stat, minus idle and iowait).

    The sandbox hosts run on the controller's machine: with many hosts at once, their sshd and
    commands compete with the controller for the same cores, and this shows when they are all busy.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def pyinfra(args: list[str], hosts: list[str], env: dict) -> Run:
    """One `python -m pyinfra -y` run limited to hosts; fails on a non-zero exit."""
    argv = [sys.executable, "-m", "pyinfra", "-y", *[f"--limit={h}" for h in hosts], *args]
    # Files, not pipes: os.wait4 below must reap the child itself to get its rusage, and a full
    # pipe would block a child nobody reads.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started, busy_before = time.monotonic(), cpu_busy()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, busy = time.monotonic() - started, cpu_busy() - busy_before
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = Run(
            wall,
            usage.ru_utime + usage.ru_stime,
            busy / (wall * os.cpu_count()),
            usage.ru_maxrss / 1024,  # ru_maxrss: KiB
            out.read(),
            err.read(),
        )
    if proc.returncode != 0:
        # The whole log, for the reason (pyinfra prints it per host, far from the end).
        log = Path(tempfile.mkstemp(prefix="bench-failed-run-", suffix=".log")[1])
        log.write_text(run.stdout + run.stderr)
        tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
        raise BenchError(
            f"pyinfra {' '.join(args)} on {len(hosts)} host(s) exited {proc.returncode} (whole output: {log}):\n  "
            + "\n  ".join(tail)
        )
    return run


def deploy(hosts: list[str], env: dict, debug: bool = False) -> tuple[Run, dict]:
    """deploy.py on hosts with --json: the run and its operation counts."""
    run = pyinfra(["--json", *(["--debug"] if debug else []), INVENTORY, DEPLOY], hosts, env)
    result = json.loads(run.stdout[run.stdout.index("{") :])
    operations = result["results"]["operations"]
    return run, {
        "operations": len(operations),
        # An operation's "success" lists the hosts it changed.
        "changes": sum(len(op["success"]) for op in operations),
    }


def floor(hosts: list[str], env: dict) -> Run:
    """The least a pyinfra run against these hosts costs: start, inventory, connect, one command."""
    return pyinfra([INVENTORY, "exec", "--", "true"], hosts, env)


def measure_verify(host: str, env: dict, repeat: int) -> dict:
    """Every verify check against one host, as a user runs them: a pytest process of its own."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify",
            "--inventory", INVENTORY, "--limit", host]
    walls, passed = [], 0
    for _ in range(repeat):
        started = time.monotonic()
        run = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=1200)
        walls.append(time.monotonic() - started)
        if run.returncode != 0:
            tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
            raise BenchError(f"verify on {host} exited {run.returncode}:\n  " + "\n  ".join(tail))
        passed = int(re.search(r"(\d+) passed", run.stdout).group(1))
    return {"hosts": 1, "wall_s": round(statistics.median(walls), 2), "runs_s": [round(w, 2) for w in walls],
            "checks": passed, "load_1min": round(os.getloadavg()[0], 2)}


def ssh_traffic(run: Run, hosts: list[str]) -> dict:
    """Commands and uploads per host, from a --debug run's log."""
    commands = dict.fromkeys(hosts, 0)
    for match in COMMAND_LINE.finditer(run.stderr):
        if match.group(1) in commands:
            commands[match.group(1)] += 1
    per_host = sorted(commands.values())
    if not per_host or per_host[0] == 0:
        raise BenchError("no 'Running command on' lines in pyinfra's --debug output: did its log format change?")
    return {
        "commands_per_host": per_host[len(per_host) // 2],
        "uploads_per_host": len(UPLOAD_LINE.findall(run.stderr)) // len(hosts),
    }


def median_of(runs: list[Run]) -> dict:
    return {
        "wall_s": round(statistics.median(r.wall for r in runs), 2),
        "runs_s": [round(r.wall, 2) for r in runs],
        "controller_cpu_s": round(statistics.median(r.cpu for r in runs), 2),
        "machine_busy": round(statistics.median(r.machine_busy for r in runs), 2),
        "max_rss_mb": round(max(r.max_rss_mb for r in runs), 1),
        "load_1min": round(os.getloadavg()[0], 2),
    }


# --- the measurements ------------------------------------------------------------------------------


def measure_noop(hosts: list[str], env: dict, repeat: int, done: tuple[Run, dict] | None = None) -> dict:
    """repeat no-op runs of deploy.py (done: one already made, counted among them)."""
    runs, counts = ([done[0]], done[1]) if done else ([], None)
    while len(runs) < repeat:
        run, counts = deploy(hosts, env)
        if counts["changes"]:
            raise BenchError(
                f"a no-op re-run on {len(hosts)} host(s) changed {counts['changes']} thing(s): "
                "the kit is not idempotent here"
            )
        runs.append(run)
    return {"hosts": len(hosts), **median_of(runs), **counts}


def measure_floor(hosts: list[str], env: dict, repeat: int) -> dict:
    return {"hosts": len(hosts), **median_of([floor(hosts, env) for _ in range(repeat)])}


def settle(hosts: list[str], env: dict) -> tuple[dict | None, tuple[Run, dict]]:
    """Deploy until a run changes nothing, so later runs are true no-ops.

    Returns the figures of the deploy that changed something (None when the hosts were already
    deployed) and the run that changed nothing, itself a no-op run worth counting.
    """
    run, counts = deploy(hosts, env)
    if not counts["changes"]:
        return None, (run, counts)
    setup = {
        "hosts": len(hosts),
        "wall_s": round(run.wall, 2),
        "controller_cpu_s": round(run.cpu, 2),
        "machine_busy": round(run.machine_busy, 2),
        "max_rss_mb": round(run.max_rss_mb, 1),
        **counts,
    }
    run, counts = deploy(hosts, env)
    if counts["changes"]:
        raise BenchError(
            f"the second deploy on {len(hosts)} host(s) still changed {counts['changes']} thing(s): not idempotent"
        )
    return setup, (run, counts)


def bench(quick: bool, reuse: bool, keep: bool, repeat: int) -> dict:
    env = dict(os.environ)
    try:
        hosts_before = len(sandbox.load_state()["hosts"])
    except sandbox.SandboxError:
        hosts_before = 0
    was_up = hosts_before > 0
    if was_up and not (reuse or quick):
        raise BenchError(
            f"a sandbox is already up on slot {sandbox.SLOT}: the full run measures a fresh host on a slot of its own "
            "(choose another OPENCLAW_SANDBOX_SLOT, bring it down, or pass --reuse to skip the fresh provision)"
        )
    report: dict = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": {
            "cpus": os.cpu_count(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "pyinfra": importlib.metadata.version("pyinfra"),
            "python": sys.version.split()[0],
            "sandbox_slot": sandbox.SLOT,
        },
        "results": {},
    }
    results = report["results"]
    try:
        if not was_up:
            sandbox.up(1)
        addresses = lambda count: [h["address"] for h in sandbox.load_state()["hosts"]][:count]  # noqa: E731
        one = addresses(1)

        setup, done = settle(one, env)
        if setup:
            # On a host the bench just made, that first deploy is the fresh provision.
            results["fresh_provision" if not was_up else "setup_1"] = {
                **setup,
                "load_1min": round(os.getloadavg()[0], 2),
            }
        results["noop_1"] = measure_noop(one, env, repeat, done)
        results["floor_1"] = measure_floor(one, env, repeat)
        # Counted in runs of their own: --debug's log lines would add to the timed runs.
        results["noop_1"].update(ssh_traffic(deploy(one, env, debug=True)[0], one))
        results["floor_1"].update(ssh_traffic(pyinfra(["--debug", INVENTORY, "exec", "--", "true"], one, env), one))
        report["ratios"] = {"noop_vs_floor": round(results["noop_1"]["wall_s"] / results["floor_1"]["wall_s"], 2)}
        results["verify_1"] = measure_verify(one[0], env, repeat)

        if not quick:
            sandbox.up(max(HOST_COUNTS + (hosts_before,)))
            others = addresses(max(HOST_COUNTS))[1:]
            for i in range(0, len(others), SETUP_BATCH):
                deploy(others[i : i + SETUP_BATCH], env)  # unmeasured set-up; a no-op on hosts already deployed
            setup, _ = settle(addresses(max(HOST_COUNTS)), env)
            if setup:
                results[f"setup_{max(HOST_COUNTS)}"] = setup
            for count in HOST_COUNTS[1:]:
                results[f"noop_{count}"] = measure_noop(addresses(count), env, repeat)
            for count in HOST_COUNTS[1:]:
                report["ratios"][f"noop_{count}_vs_1"] = round(
                    results[f"noop_{count}"]["wall_s"] / results["noop_1"]["wall_s"], 2
                )
    except BenchError as e:
        e.report = report
        raise
    finally:
        if not was_up and not keep:
            sandbox.down()
        elif was_up and not keep and not quick and hosts_before < max(HOST_COUNTS):
            sandbox.up(hosts_before)
    return finish(report)


def finish(report: dict) -> dict:
    report["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    measured = dict(report.setdefault("ratios", {}))
    if "verify_1" in report["results"]:
        measured["verify_s_per_host"] = report["results"]["verify_1"]["wall_s"]
    report["targets"] = {name: {"limit": limit, "measured": measured[name], "met": measured[name] <= limit}
                         for name, limit in TARGETS.items() if name in measured}
    return report


# --- output ------------------------------------------------------------------------------------------


def table(report: dict) -> str:
    rows = [("measurement", "hosts", "wall s (median)", "runs s", "ratio", "controller CPU s", "machine busy",
             "max RSS MB", "ops/checks", "cmds/host", "uploads/host", "load")]
    labels = {"fresh_provision": "fresh provision", "floor_1": "floor: pyinfra exec -- true",
              "verify_1": "verify: every check"}
    ratios = report.get("ratios", {})
    for key, r in report["results"].items():
        label = labels.get(key, "no-op re-run" if key.startswith("noop_") else "setup deploy (not a figure)")
        ratio = ratios.get("noop_vs_floor") if key == "noop_1" else ratios.get(f"{key}_vs_1")
        runs = " ".join(f"{x:.1f}" for x in r.get("runs_s", []))
        rows.append((label, str(r["hosts"]), f"{r['wall_s']:.1f}", runs,
                     "" if ratio is None else (f"{ratio:.2f}x floor" if key == "noop_1" else f"{ratio:.2f}x 1 host"),
                     str(r.get("controller_cpu_s", "")), f"{r['machine_busy']:.0%}" if "machine_busy" in r else "",
                     str(r.get("max_rss_mb", "")), str(r.get("operations", r.get("checks", ""))),
                     str(r.get("commands_per_host", "")), str(r.get("uploads_per_host", "")),
                     str(r.get("load_1min", ""))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    m = report["machine"]
    lines.append(
        f"\n{m['cpus']} CPUs, load {m['load_at_start']} at start, {m.get('load_at_end')} at end; "
        f"pyinfra {m['pyinfra']}, "
        f"python {m['python']}, sandbox slot {m['sandbox_slot']}"
    )
    for name, target in report.get("targets", {}).items():
        lines.append(
            f"target {name} <= {target['limit']}: {target['measured']} ({'met' if target['met'] else 'MISSED'})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one host, no-op run and floor only (CI)")
    parser.add_argument(
        "--reuse", action="store_true", help="use the slot's running sandbox; no fresh-provision figure"
    )
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up at the end")
    parser.add_argument(
        "--repeat", type=int, default=None, metavar="N", help="runs per timed figure (default 3, quick 1)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    failed = None
    try:
        report = bench(args.quick, args.reuse, args.keep, repeat)
    except (BenchError, sandbox.SandboxError) as e:
        failed = e
        report = getattr(e, "report", None)
        if report is None:
            print(f"bench failed: {e}", file=sys.stderr)
            return 1
        report = finish(report)
        report["error"] = str(e)
    # What was measured is worth keeping even when a later step failed.
    print(table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        print(f"bench failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
