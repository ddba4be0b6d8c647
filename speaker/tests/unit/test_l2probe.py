"""speaker/tests/l2probe.py: the drain of frames that arrived while the ARP prober was idle is bounded."""

from __future__ import annotations

import socket

import l2probe
import pytest


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    return a, b


def test_the_queued_frames_are_drained_and_counted() -> None:
    a, b = pair()
    with a, b:
        for _frame in range(5):
            b.send(b"frame")
        assert l2probe.drain(a, limit=10) == 5
        assert l2probe.drain(a, limit=10) == 0


def test_a_flood_that_never_stops_is_an_error_not_a_hang() -> None:
    a, b = pair()
    with a, b:
        for _frame in range(11):
            b.send(b"frame")
        with pytest.raises(RuntimeError, match=r"more than 10 frames queued"):
            l2probe.drain(a, limit=10)
