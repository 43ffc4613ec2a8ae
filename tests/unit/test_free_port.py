"""Ports for test servers lie outside the range outgoing connections draw from: a port
from that range was taken by some connection before the service bound it, under parallel
test runs ("address already in use", seen in a full run with two workers)."""

from __future__ import annotations

import socket

from switchboard.runtime.embedded import ephemeral_range, free_port


def test_free_ports_lie_below_theephemeral_range_and_can_be_bound() -> None:
    low, _ = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert 1024 <= port < low
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_handed_out() -> None:
    low, _ = ephemeral_range()
    listeners = []
    try:
        for port in range(max(1024, low // 3), low):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
            except OSError:
                s.close()
                continue
            listeners.append(s)
            if len(listeners) >= 200:
                break
        taken = {s.getsockname()[1] for s in listeners}
        assert all(free_port() not in taken for _ in range(50))
    finally:
        for s in listeners:
            s.close()


def test_ports_asked_for_before_any_is_bound_all_differ() -> None:
    # A NATS node's client and cluster ports, asked for one after the other and bound
    # later by the server, once came back equal ("address already in use").
    ports = [free_port() for _ in range(400)]
    assert len(set(ports)) == len(ports)
