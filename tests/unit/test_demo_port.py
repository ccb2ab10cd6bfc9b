"""The demo's port: a re-run within a minute must not find its own TIME_WAIT sockets in the way."""

from __future__ import annotations

import socket

import pytest

from simgate.demo import DemoError, choose_port, port_is_free


def leave_time_wait() -> int:
    """A port whose server side closed a connection first: it sits in TIME_WAIT for a minute."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the active close: this end goes to TIME_WAIT
        client.recv(1)
        client.close()
    return port


def test_a_port_in_time_wait_is_free_for_the_demo() -> None:
    port = leave_time_wait()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the old check did, and why re-runs failed
    assert port_is_free(port)
    assert choose_port(port) == (port, None)


def test_a_port_someone_listens_on_is_taken() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        assert not port_is_free(port)
        with pytest.raises(DemoError, match=f"port {port} is in use"):
            choose_port(port)
