"""Role wireguard: the mesh is up, every other host of the inventory is a peer with a recent
handshake, admin peers are configured, and this host reaches every other one over the mesh.

Uses `wg show <interface> peers|latest-handshakes|public-key` only: `wg show ... dump` would print
the private key."""


import pytest

# WireGuard's Reject-After-Time: a session older than this carries no data. With the config's
# PersistentKeepalive, a working peer renews its handshake every two minutes.
RECENT_SECONDS = 180

def mesh_targets(request, target):
    if target.settings.private_network is None:
        pytest.skip("no private_network on this host")
    return [t for t in request.config._kit_targets if t.settings.private_network is not None and t.name != target.name]

def test_every_host_and_admin_peer_is_a_peer_with_a_recent_handshake(request, target):
    others = mesh_targets(request, target)
    interface = target.settings.private_network.interface
    assert target.host.service(f"wg-quick@{interface}").is_enabled
    expected = {other.host.check_output(f"wg show {interface} public-key"): other.name for other in others}
    admins = {peer.public_key: peer.name for peer in target.settings.admin_peers}
    handshakes = dict(line.split() for line in target.host.check_output(f"wg show {interface} latest-handshakes").splitlines())
    assert set(handshakes) == set(expected) | set(admins), "the peers are not the inventory's other hosts and admin_peers"
    now = int(target.host.check_output("date +%s"))  # the host's clock, as the handshake times are
    for key, name in expected.items():
        assert now - int(handshakes[key]) < RECENT_SECONDS, f"no handshake with {name} in the last {RECENT_SECONDS} s"

def test_reaches_every_other_host_over_the_mesh(request, target):
    for other in mesh_targets(request, target):
        address, port = other.settings.private_network.address, other.settings.sshd_port
        run = target.host.run(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}'")
        assert run.rc == 0, f"{target.name} cannot reach {other.name} at {address}:{port} over the mesh"
