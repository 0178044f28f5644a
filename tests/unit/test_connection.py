"""The controller's SSH socket: Nagle off, or every pyinfra command waits for a delayed ACK."""

import socket
from types import SimpleNamespace

import paramiko

from openclaw_kit.connection import send_without_delay


def host_on(transport) -> SimpleNamespace:
    # The attribute path pyinfra's SSH connector gives: host.connector.client (a paramiko SSHClient).
    return SimpleNamespace(name="gw1", connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))


def test_the_ssh_socket_sends_without_delay():
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as sock:
        transport = paramiko.Transport(sock)  # never started: only its socket matters here
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        send_without_delay(host_on(transport))
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_hosts_without_an_ssh_client_are_left_alone():
    send_without_delay(SimpleNamespace(name="@local", connector=SimpleNamespace()))  # @local, @docker: no client
    send_without_delay(host_on(None))  # not connected
