"""Role wireguard: a WireGuard mesh between the inventory's hosts, plus the admins' laptops.

Each host's private key is made on the host (`wg genkey`, 0600, root) and never read back: the
config has no PrivateKey line, wg-quick's PostUp hands the key file to the interface. Only public
keys travel, read from the hosts in the same run:

- every host's key exists when pyinfra plans (the usual case): its public key is a fact, and the
  configs are planned like any file, so a run with nothing new changes nothing;
- some host has no key yet (a new host, or a deleted key = rotation): the missing keys are made,
  then every host's public key is read at run time (`python.call`), and the configs are written
  by operations started from a second callback, which pyinfra 3 executes on the spot. pyinfra
  runs each operation on every host before the next one, so all keys are read before any config
  is written, and one run connects every peer.

wg-quick@<interface> brings the interface up at boot, not systemd-networkd: networkd creates only
kernel WireGuard devices, wg-quick falls back to the userspace wireguard-go where the kernel has no
module (chosen from facts; container hosts, older kernels).
"""

from __future__ import annotations

import base64
import io
import ipaddress
from typing import Any

import gevent.lock
from pyinfra import host, inventory, logger, state
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files, python, server, systemd

from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.secrets import Secret, private_file
from openclaw_kit.settings import HostSettings, SettingsError, settings_for
from openclaw_kit.templates import render, template

CONFIG_DIR = "/etc/wireguard"


def key_path(interface: str) -> str:
    return f"{CONFIG_DIR}/{interface}.key"


def config_path(interface: str) -> str:
    return f"{CONFIG_DIR}/{interface}.conf"


def rotation_path(interface: str) -> str:
    """The key_rotation label the key was made for (not secret)."""
    return f"{CONFIG_DIR}/{interface}.key.rotation"


def unit(interface: str) -> str:
    return f"wg-quick@{interface}.service"


def override_path(interface: str) -> str:
    return f"/etc/systemd/system/{unit(interface)}.d/openclaw-kit.conf"


class WireGuardPublicKey(FactBase):
    """The public key of this host's mesh private key; None while there is no key (or no `wg`)."""

    def requires_command(self, interface: str) -> str:
        return "wg"

    def command(self, interface: str) -> str:
        # Only the public key leaves the host: `wg pubkey` reads the private key on stdin.
        return f"if [ -s {key_path(interface)} ]; then wg pubkey < {key_path(interface)}; fi"

    def process(self, output) -> str | None:
        text = "".join(output).strip()
        return text if is_public_key(text) else None


class KeyRotation(FactBase):
    """The key_rotation label recorded beside this host's mesh key; None without one."""

    def command(self, interface: str) -> str:
        return f"cat {rotation_path(interface)} 2>/dev/null || true"

    def process(self, output) -> str | None:
        return "".join(output).strip() or None


class KitMeshInterfaces(FactBase):
    """The interfaces whose wg-quick config the kit wrote (its header names the kit)."""

    def command(self) -> str:
        return f"grep -l '^# Managed by openclaw-kit' {CONFIG_DIR}/*.conf 2>/dev/null || true"

    @staticmethod
    def default() -> list[str]:  # no output (no such config) gives the default, not process([])
        return []

    def process(self, output) -> list[str]:
        return [line.strip().rsplit("/", 1)[1][: -len(".conf")] for line in output if line.strip().endswith(".conf")]


class KernelWireGuard(FactBase):
    """True when the kernel has WireGuard (loaded, or a module modprobe would load)."""

    def command(self) -> str:
        return ("if [ -d /sys/module/wireguard ] || modprobe -n -q wireguard 2>/dev/null; "
                "then echo yes; else echo no; fi")

    def process(self, output) -> bool:
        return "".join(output).strip() == "yes"


class AddressNetworks(FactBase):
    """(interface, network) of every address the host has, from `ip -o addr`."""

    def command(self) -> str:
        return "ip -o addr show"

    def process(self, output) -> list[tuple[str, str]]:
        found = []
        for line in output:
            words = line.split()
            if len(words) > 3 and words[2] in ("inet", "inet6"):
                found.append((words[1], str(ipaddress.ip_interface(words[3]).network)))
        return found


def is_public_key(text: str) -> bool:
    try:
        return len(text) == 44 and len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


@deploy("WireGuard mesh")
def wireguard(settings: HostSettings):
    mesh = settings.private_network
    if mesh is None:
        for interface in host.get_fact(KitMeshInterfaces):
            leave_mesh(interface)
        return
    refuse_network_clash(settings)
    members = mesh_members()
    if members is None:
        logger.warning(f"{host.name}: the WireGuard mesh is left as it is: this run does not include every host "
                       "of the mesh (--limit, or a host that could not connect), so the peer lists would be incomplete")
        return

    kernel = host.get_fact(KernelWireGuard)
    # No Recommends: wireguard-tools recommends the DKMS module and its compiler toolchain.
    install_missing(["wireguard-tools"] + ([] if kernel else ["wireguard-go"]))
    files.directory(name=f"{CONFIG_DIR}, root only", path=CONFIG_DIR, mode="700", user="root",
                    group=platform_of(host).root_group)

    override = template(name=f"{unit(mesh.interface)} uses wireguard-go (no kernel WireGuard)" if not kernel
                        else f"{unit(mesh.interface)} uses kernel WireGuard", role="wireguard",
                        src="userspace.conf.j2", dest=override_path(mesh.interface),
                        userspace=not kernel)
    systemd.daemon_reload(name="Reload systemd for the wg-quick override", _if=override.did_change)

    keys = {name: key for name, (_, key) in members.items()}
    if all(keys.values()):
        changed = write_config(settings, keys)
        enabled_and_running(mesh.interface)
        server.shell(name=f"Apply the mesh configuration to {mesh.interface}", commands=[apply_command(settings)],
                     _if=changed)
        return
    new_key = not keys[host.name]
    if new_key:
        rotate = rotation_due(settings)
        make_key = render("wireguard", "make-key.sh.j2", key_path=key_path(mesh.interface), replace=rotate)
        server.shell(name=f"Make this host's mesh private key {key_path(mesh.interface)}"
                          + (f" (key_rotation {mesh.key_rotation!r})" if rotate else ""), commands=[make_key])
        if mesh.key_rotation:
            files.put(name=f"The key_rotation label of the new key {rotation_path(mesh.interface)}",
                      src=io.StringIO(mesh.key_rotation + "\n"), dest=rotation_path(mesh.interface), user="root",
                      group=platform_of(host).root_group, mode="600")
    python.call(name="Read this host's mesh public key", function=read_public_key)
    python.call(name="Mesh configuration with every host's public key", function=write_config_at_run_time,
                new_key=new_key)
    enabled_and_running(mesh.interface)


def rotation_due(settings: HostSettings, on=None) -> bool:
    """key_rotation names a label the host's key was not made for: the next key replaces it."""
    on = on or host
    mesh = settings.private_network
    return bool(mesh.key_rotation) and on.get_fact(KeyRotation, interface=mesh.interface) != mesh.key_rotation


def leave_mesh(interface: str) -> None:
    """The host is no longer in the mesh (no private_network): its interface goes down for good and the
    kit's files go, the private key too (a key without a mesh is only a liability; should the host
    rejoin, it makes a new one and every peer follows in that run). wireguard-tools stays installed."""
    systemd.service(name=f"{unit(interface)} stopped and disabled (no private_network)", service=unit(interface),
                    running=False, enabled=False)
    for path in (config_path(interface), key_path(interface), rotation_path(interface)):
        files.file(name=f"No {path} (no private_network)", path=path, present=False)
    override = files.file(name=f"No {override_path(interface)}", path=override_path(interface), present=False)
    systemd.daemon_reload(name="Reload systemd without the wg-quick override", _if=override.did_change)


def enabled_and_running(interface: str):
    return systemd.service(name=f"{unit(interface)} enabled and running", service=unit(interface), running=True,
                           enabled=True)


# --- the members and their public keys ----------------------------------------------------------

_members: dict[int, dict[str, tuple[HostSettings, str | None]] | None] = {}
_run_time_keys: dict[int, dict[str, str | None]] = {}
_lock = gevent.lock.Semaphore()


def mesh_members() -> dict[str, tuple[HostSettings, str | None]] | None:
    """Host name -> (settings, public key or None) of every mesh host; None when some are not in this run."""
    with _lock:  # the hosts' deploy files run concurrently: read every host's key once
        if id(inventory) not in _members:
            in_run = set(inventory.iter_activated_hosts())
            mesh_hosts = [each for each in inventory if each.data.get("private_network")]
            if any(each not in in_run or not state.is_host_in_limit(each) for each in mesh_hosts):
                _members[id(inventory)] = None
            else:
                members = {}
                for each in mesh_hosts:
                    each_settings = settings_for(each, inventory)
                    interface = each_settings.private_network.interface
                    key = each.get_fact(WireGuardPublicKey, interface=interface)
                    # A rotation is due: as if the key were gone (the path a deleted key takes).
                    members[each.name] = (each_settings, None if rotation_due(each_settings, each) else key)
                _members[id(inventory)] = members
    return _members[id(inventory)]


def refuse_network_clash(settings: HostSettings) -> None:
    """The mesh must not overlap a network the host already has (on another interface)."""
    mesh = ipaddress.ip_network(settings.private_network.cidr)
    for interface, network in host.get_fact(AddressNetworks):
        if interface != settings.private_network.interface and ipaddress.ip_network(network).overlaps(mesh):
            raise SettingsError([f"host {host.name}: private_network.cidr = {str(mesh)!r}: overlaps {network} on the "
                                 f"host's interface {interface}; the mesh needs a network of its own"])


# Callbacks of python.call: pyinfra runs them with `host` set to the executing host; an exception fails it.


def read_public_key() -> None:
    interface = settings_for(host, inventory).private_network.interface
    key = host.get_fact(WireGuardPublicKey, interface=interface)
    if key is None:
        raise RuntimeError(f"no mesh key in {key_path(interface)} after making one")
    _run_time_keys.setdefault(id(inventory), {})[host.name] = key


def write_config_at_run_time(new_key: bool) -> None:
    settings = settings_for(host, inventory)
    keys = _run_time_keys.get(id(inventory), {})
    missing = [name for name in _members[id(inventory)] if not keys.get(name)]
    if missing:
        raise RuntimeError(f"no mesh public key from {', '.join(missing)}: the mesh configuration is not written")
    changed = write_config(settings, keys)
    # A new private key is used from now on, even where the config (which never holds it) is the same.
    if changed() or new_key:
        server.shell(name=f"Apply the mesh configuration to {settings.private_network.interface}",
                     commands=[apply_command(settings)])


# --- the configuration ------------------------------------------------------------------------------


def peers(
    settings: HostSettings, keys: dict[str, str | None], members: dict[str, tuple[HostSettings, Any]]
) -> list[dict]:
    """Every other mesh host (with its endpoint) and every admin peer (they roam: no endpoint)."""
    found = []
    for name, (other, _) in sorted(members.items()):
        if name == host.name:
            continue
        net = other.private_network
        endpoint = net.endpoint or name
        found.append(dict(name=name, public_key=keys[name], address=net.address,
                          endpoint=f"[{endpoint}]:{net.port}" if ":" in endpoint else f"{endpoint}:{net.port}"))
    for admin in settings.admin_peers:
        found.append(dict(name=admin.name, public_key=admin.public_key, address=admin.address, endpoint=None))
    return found


def config_text(settings: HostSettings, peer_list: list[dict]) -> str:
    mesh = settings.private_network
    network = ipaddress.ip_network(mesh.cidr)
    return render("wireguard", "wg.conf.j2", address=f"{mesh.address}/{network.prefixlen}", port=mesh.port,
                  key_path=key_path(mesh.interface), peers=peer_list, host_bits=network.max_prefixlen,
                  preshared_key=mesh.preshared_key.reveal() if mesh.preshared_key else None)


def write_config(settings: HostSettings, keys: dict[str, str | None]):
    """The config as a 0600 file whose content is never shown (it may hold the preshared key); its op's did_change."""
    mesh = settings.private_network
    text = config_text(settings, peers(settings, keys, _members[id(inventory)]))
    op = private_file(name=f"Mesh configuration {config_path(mesh.interface)}", path=config_path(mesh.interface),
                      content=Secret("wireguard config", text), user="root", group=platform_of(host).root_group,
                      private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}")
    return op.did_change


def apply_command(settings: HostSettings) -> str:
    """Peers and keys change in place (`wg syncconf`: live tunnels stay up); a new address needs a restart."""
    return render("wireguard", "apply.sh.j2", **apply_data(settings))


def apply_data(settings: HostSettings) -> dict:
    mesh = settings.private_network
    return dict(interface=mesh.interface, unit=unit(mesh.interface), key_path=key_path(mesh.interface),
                address=f"{mesh.address}/{ipaddress.ip_network(mesh.cidr).prefixlen}")
