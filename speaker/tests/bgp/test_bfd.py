"""BFD codec and state machine (packets fed directly; the wire is covered by the interop tests)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from lbspeaker.bgp import bfd
from lbspeaker.bgp.bfd import BfdPacket, BfdSession, BfdState
from lbspeaker.bgp.config import BfdConfig


def test_packet_round_trip() -> None:
    p = BfdPacket(BfdState.UP, 3, 0x11223344, 0x55667788, 100_000, 100_000, 0, 0, poll=True)
    data = bfd.encode_packet(p)
    assert len(data) == 24 and data[0] == 0x20 and data[1] == 0xE0
    assert bfd.decode_packet(data) == p


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda d: d[:20], "less than"),
    (lambda d: bytes([0x40]) + d[1:], "version"),
    (lambda d: d[:2] + b"\x00" + d[3:], "multiplier"),
    (lambda d: d[:3] + b"\x30" + d[4:], "length"),
    (lambda d: d[:1] + bytes([d[1] | 1]) + d[2:], "multipoint"),
    (lambda d: d[:4] + b"\x00" * 4 + d[8:], "my discriminator"),
    (lambda d: d[:8] + b"\x00" * 4 + d[12:], "your discriminator"),
])
def test_invalid_packets(mutate, why) -> None:  # type: ignore[no-untyped-def]
    good = bfd.encode_packet(BfdPacket(BfdState.UP, 3, 1, 2, 100_000, 100_000))
    with pytest.raises(bfd.BfdDecodeError, match=why):
        bfd.decode_packet(mutate(good))


class FakeTransport:
    def register(self, session: BfdSession) -> None:
        pass

    def unregister(self, session: BfdSession) -> None:
        pass


def test_three_way_handshake_poll_and_detection() -> None:
    async def main() -> None:
        downs: list[str] = []
        s = BfdSession(ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.1"),
                       BfdConfig(True, 50, 50, 3), FakeTransport(), downs.append)  # type: ignore[arg-type]
        s.start()
        try:
            assert s.state == BfdState.DOWN and s.desired_min_tx_us == 1_000_000
            s.receive(BfdPacket(BfdState.DOWN, 3, 77, 0, 1_000_000, 50_000))
            assert s.state == BfdState.INIT and s.remote_discr == 77
            s.receive(BfdPacket(BfdState.UP, 3, 77, s.local_discr, 50_000, 50_000))
            assert s.state == BfdState.UP
            # Fast timers only after Up, announced with a poll sequence.
            assert s.desired_min_tx_us == 50_000 and s._poll
            s.receive(BfdPacket(BfdState.UP, 3, 77, s.local_discr, 50_000, 50_000, final=True))
            assert not s._poll
            assert s.detect_time_s() == pytest.approx(0.15)
            # Packets from another session (wrong discriminator) do not keep it alive.
            for _unused in range(10):
                s.receive(BfdPacket(BfdState.UP, 3, 99, 12345, 50_000, 50_000))
                await asyncio.sleep(0.03)
            assert s.state == BfdState.DOWN
            assert downs == ["detection time expired"]
        finally:
            s.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_peer_down_and_admin_down() -> None:
    async def main() -> None:
        downs: list[str] = []
        s = BfdSession(ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.1"),
                       BfdConfig(True, 300, 300, 3), FakeTransport(), downs.append)  # type: ignore[arg-type]
        s.start()
        try:
            s.receive(BfdPacket(BfdState.INIT, 3, 5, s.local_discr, 300_000, 300_000))
            assert s.state == BfdState.UP
            s.receive(BfdPacket(BfdState.DOWN, 3, 5, s.local_discr, 300_000, 300_000, diag=1))
            assert s.state == BfdState.DOWN and downs == ["peer signalled Down"]
            s.receive(BfdPacket(BfdState.DOWN, 3, 5, 0, 1_000_000, 300_000))
            s.receive(BfdPacket(BfdState.UP, 3, 5, s.local_discr, 300_000, 300_000))
            assert s.state == BfdState.UP
            s.receive(BfdPacket(BfdState.ADMIN_DOWN, 3, 5, s.local_discr, 300_000, 300_000))
            assert s.state == BfdState.DOWN and len(downs) == 2
        finally:
            s.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
