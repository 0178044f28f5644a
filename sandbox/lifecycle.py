"""What a user asks of the sandbox: whether it can run here, up, down and status."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from .bridge import _ensure_bridge, _remove_links
from .files import _locked, _remove_tree, _unmount_all
from .hosts import (
    STOP_TIMEOUT,
    _ensure_ssh_key,
    _host_ready,
    _kill_orphans,
    _nspawn_marker,
    _prepare_rootfs,
    _start_host,
    _stop_host,
    _wait_host,
    _write_known_hosts,
)
from .images import DEFAULT_DISTRO, DISTROS, _base_image
from .layout import BRIDGE, MACHINE_PREFIX, SandboxError, _host_address, _host_index, _host_name, _paths, state_dir
from .processes import _alive, _pids, _stop
from .services import _port_open, _register_dns, _render_service_configs, _service_pids, _service_specs, _start_service
from .state import _read_state, _save_state, load_state

MAX_HOSTS = 50                      # addresses .11 ... .60
# binary -> Debian package that provides it
REQUIRED_BINARIES = {
    "systemd-nspawn": "systemd-container",
    "systemctl": "systemd",
    "debootstrap": "debootstrap",
    "tinyproxy": "tinyproxy",
    "pebble": "pebble",
    "pebble-challtestsrv": "pebble",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "mount": "mount",
}


def available() -> tuple[bool, str]:
    """(True, "") if this machine can run the sandbox, else (False, why)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (containers, bridge and mounts need it)")
    missing: dict[str, list[str]] = {}
    for binary, package in REQUIRED_BINARIES.items():
        if not shutil.which(binary):
            missing.setdefault(package, []).append(binary)
    if missing:
        names = ", ".join(b for bins in missing.values() for b in bins)
        problems.append(f"missing {names}: apt-get install {' '.join(missing)}")
    if not Path("/proc/self/mountinfo").exists():
        problems.append("/proc is not mounted")
    if problems:
        return False, "sandbox unavailable: " + "; ".join(problems)
    return True, ""


# --------------------------------------------------------------------------
# public operations

def host_specs(hosts: int, distros: list[str] | str | None = None,
               root_login: list[bool] | bool = True) -> list[dict]:
    """What each of `hosts` hosts is: its distro (one for all, or one per host) and whether root
    may log in over SSH (else, as on a cloud image, only its admin user may)."""
    if not 1 <= hosts <= MAX_HOSTS:
        raise SandboxError(f"--hosts must be between 1 and {MAX_HOSTS}, not {hosts}")
    names = [distros] if isinstance(distros, str) else list(distros or [DEFAULT_DISTRO])
    logins = [root_login] if isinstance(root_login, bool) else list(root_login)
    for what, values in (("--distro", names), ("root_login", logins)):
        if len(values) not in (1, hosts):
            raise SandboxError(f"{what} gives {len(values)} values for {hosts} hosts: give one for all, "
                               "or one per host")
    for name in names:
        if name not in DISTROS:
            raise SandboxError(f"--distro {name!r}: unknown distro; choose from {', '.join(DISTROS)}")
    names, logins = names * (hosts // len(names)), logins * (hosts // len(logins))
    return [{"distro": d, "root_login": r} for d, r in zip(names, logins, strict=False)]


def up(hosts: int = 2, distros: list[str] | str | None = None, root_login: list[bool] | bool = True) -> dict:
    """Bring the sandbox to exactly `hosts` running hosts plus the services.

    Each host runs DEFAULT_DISTRO unless `distros` says otherwise (one for all hosts, or one per
    host); `root_login=False` makes hosts reachable only as their distro's admin user, like a
    cloud image. Hosts that already run as asked and answer are left alone (no reboot); missing
    or different ones are (re)created; hosts numbered above `hosts` are stopped and removed, so
    the state always matches the request. On failure everything this call made is removed again
    and SandboxError says why."""
    specs = host_specs(hosts, distros, root_login)
    ok, why = available()
    if not ok:
        raise SandboxError(why)
    with _locked(_paths()["lock"]):
        return _up_locked(specs)


def _up_locked(specs: list[dict]) -> dict:
    count = len(specs)
    prior = _read_state()
    fresh = not prior
    made_hosts: list[str] = []
    made_services: list[int] = []
    made_bridge = False
    host_list = [h for h in prior.get("hosts", []) if _host_index(h["name"]) <= count]
    services = dict(prior.get("services", {}))
    if fresh:
        _teardown()                        # leftovers of a sandbox whose state.json was lost
    try:
        # Extras first: `up --hosts 1` after 2 stops sbx2 so state matches the request.
        for h in prior.get("hosts", []):
            if _host_index(h["name"]) > count:
                _stop_host(h["name"], h.get("pid"))
        if len(host_list) != len(prior.get("hosts", [])):
            _save_state(host_list, services)

        _ensure_ssh_key()
        bases = {spec["distro"]: _base_image(spec["distro"]) for spec in specs}
        made_bridge = _ensure_bridge()

        _render_service_configs()
        for name, spec in _service_specs().items():
            if not _alive(services.get(name), spec["marker"]):
                # a stray copy (e.g. state.json lost) would hold the port
                _stop(_service_pids(spec), 5)
                services[name] = _start_service(name, spec)
                made_services.append(services[name])
                _save_state(host_list, services)

        # Keep hosts that run and answer; recreate the rest.
        keep = {}
        for h in host_list:
            spec = specs[_host_index(h["name"]) - 1]
            if (h.get("distro", "debian12") == spec["distro"]
                    and (h.get("ssh_user", "root") == "root") == spec["root_login"]
                    and _alive(h.get("pid"), _nspawn_marker(h["name"]))
                    and _host_ready(h["address"], user=h.get("ssh_user", "root"))[0]):
                keep[h["name"]] = h
        starting = []
        for i, spec in enumerate(specs, start=1):
            name, address = _host_name(i), _host_address(i)
            if name in keep:
                continue
            old = next((h for h in host_list if h["name"] == name), None)
            _stop_host(name, old and old.get("pid"))
            distro = DISTROS[spec["distro"]]
            root = _prepare_rootfs(name, address, bases[spec["distro"]], spec["distro"], spec["root_login"])
            made_hosts.append(name)
            pid = _start_host(name, root)
            keep[name] = {"name": name, "address": address, "pid": pid, "distro": spec["distro"],
                          "os": distro.label, "admin_user": distro.admin_user,
                          "ssh_user": "root" if spec["root_login"] else distro.admin_user}
            starting.append(keep[name])
            host_list = list(keep.values()) + [h for h in host_list if h["name"] not in keep]
            _save_state(host_list, services)
        host_list = list(keep.values())
        _write_known_hosts(host_list)
        _register_dns(host_list)
        for h in starting:                 # they boot in parallel; wait for each
            _wait_host(h["name"], h["address"], h["pid"], h["ssh_user"])
        return _save_state(host_list, services)
    except BaseException:
        # Undo what this call made; a fresh up leaves nothing behind at all.
        if fresh:
            _teardown()
        else:
            for name in made_hosts:
                _stop_host(name, None)
            _stop(made_services, 5)
            if made_bridge:
                subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
            host_list = [h for h in host_list if h["name"] not in made_hosts]
            services = {k: v for k, v in services.items() if v not in made_services}
            _write_known_hosts(host_list)
            _save_state(host_list, services)
        raise


def down() -> None:
    """Remove every container, mount, interface, process and rootfs of the sandbox.

    Keeps the base image cache and the SSH key pair. Works from a partial or
    missing state.json; a no-op when nothing is up."""
    if os.geteuid() != 0:
        raise SandboxError("sandbox down must run as root")
    if not state_dir().exists():
        _teardown()
        return
    with _locked(_paths()["lock"]):
        _teardown()


def _teardown() -> None:
    sd = state_dir()
    p = _paths(sd)
    state = _read_state()

    # Containers: the recorded nspawn pids plus any nspawn running a rootfs of ours.
    nspawn = {h.get("pid") for h in state.get("hosts", [])
              if _alive(h.get("pid"), _nspawn_marker(h.get("name", "")))}
    nspawn |= set(_pids(lambda a: "systemd-nspawn" in a[0]
                        and any(x.startswith(f"--machine={MACHINE_PREFIX}") for x in a)
                        and any(x.startswith(f"{p['hosts']}/") for x in a)))
    _stop(sorted(x for x in nspawn if x), STOP_TIMEOUT)
    _kill_orphans(p["hosts"])

    # Services: recorded pids plus anything started with our configs / addresses.
    specs = _service_specs()
    svc = {pid for name, pid in state.get("services", {}).items()
           if name in specs and _alive(pid, specs[name]["marker"])}
    for spec in specs.values():
        svc |= set(_service_pids(spec))
    _stop(sorted(svc), 10)

    _unmount_all(p["hosts"])               # all our mounts live there (never the state dir itself)
    _remove_links()

    _remove_tree(p["hosts"])
    for key in ("state", "known_hosts", "tinyproxy_conf", "pebble_conf", "pebble_ca",
                "pebble_cert", "pebble_key"):
        with contextlib.suppress(FileNotFoundError):
            p[key].unlink()


def status() -> dict:
    """Health of the sandbox: each host's process and SSH, each service's process and port."""
    report: dict = {"up": False, "healthy": False, "state": str(_paths()["state"]),
                    "error": None, "hosts": [], "services": {}}
    try:
        state = load_state()
    except SandboxError as e:
        report["error"] = str(e)
        return report
    report["up"] = True
    for h in state.get("hosts", []):
        alive = _alive(h.get("pid"), _nspawn_marker(h["name"]))
        ssh_ok, detail = (_host_ready(h["address"], timeout=10, user=h.get("ssh_user", "root")) if alive
                          else (False, "not running"))
        report["hosts"].append({**h, "alive": alive, "ssh": ssh_ok, "detail": detail})
    specs = _service_specs()
    for name, pid in state.get("services", {}).items():
        alive = name in specs and _alive(pid, specs[name]["marker"])
        listening = alive and all(_port_open(port) for port in specs[name]["ports"])
        report["services"][name] = {"pid": pid, "alive": alive, "listening": listening}
    report["healthy"] = (bool(report["hosts"])
                         and all(h["alive"] and h["ssh"] for h in report["hosts"])
                         and set(report["services"]) == set(specs)
                         and all(s["alive"] and s["listening"] for s in report["services"].values()))
    return report
