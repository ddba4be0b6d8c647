"""The session FSM against a scripted peer on loopback: diffs, errors, reconnects."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from lbspeaker.bgp import codec
from lbspeaker.bgp.codec import RouteAttributes
from lbspeaker.bgp.config import PeerConfig
from lbspeaker.bgp.session import BgpSession, State

LOOP = ipaddress.IPv4Address("127.0.0.1")
RID = ipaddress.IPv4Address("198.51.100.11")
PEER_RID = ipaddress.IPv4Address("198.51.100.1")
N1 = ipaddress.ip_network("203.0.113.1/32")
N2 = ipaddress.ip_network("203.0.113.2/32")


class FakePeer:
    """Accepts connections; each is a (reader, writer) pair handed to the test."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(lambda r, w: self.conns.put_nowait((r, w)), self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(self.conns.get(), 10)


async def read_msg(reader: asyncio.StreamReader) -> codec.Message:
    header = await asyncio.wait_for(reader.readexactly(19), 10)
    _msg_type, length = codec.decode_header(header)
    return codec.decode_message(header + await reader.readexactly(length - 19))


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asn: int = 64500,
                    hold: int = 90) -> codec.Open:
    ours = await read_msg(reader)
    assert isinstance(ours, codec.Open)
    caps = codec.Capabilities(four_octet_asn=asn, multiprotocol=(codec.IPV4_UNICAST, codec.IPV6_UNICAST))
    writer.write(codec.encode_open(codec.Open(asn, hold, PEER_RID, caps)))
    writer.write(codec.encode_keepalive())
    await writer.drain()
    return ours


async def next_update(reader: asyncio.StreamReader) -> codec.Update:
    for _unused in range(50):
        msg = await read_msg(reader)
        if isinstance(msg, codec.Update):
            return msg
    raise AssertionError("no UPDATE")


def session_for(peer: FakePeer, **kw: object) -> BgpSession:
    cfg = PeerConfig(address=LOOP, asn=64500, port=peer.port, connect_retry_time=0.1, connect_retry_max=0.2,
                     ttl=64, **kw)  # type: ignore[arg-type]
    return BgpSession(cfg, 64501, RID)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_open_announce_diff_and_cease() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer, graceful_restart=True, restart_time=30)
        s.set_routes({N1: RouteAttributes(), N2: RouteAttributes(communities=(5,))})
        s.start()
        r, w = await peer.accept()
        ours = await handshake(r, w)
        assert ours.asn == 64501 and ours.capabilities.four_octet_asn == 64501
        assert ours.capabilities.graceful_restart is not None
        assert ours.capabilities.graceful_restart.restart_time == 30
        assert set(ours.capabilities.multiprotocol) == {codec.IPV4_UNICAST, codec.IPV6_UNICAST}
        announced: set[object] = set()
        eor = 0
        while eor < 2:
            u = await next_update(r)
            announced |= set(u.nlri)
            eor += u.end_of_rib is not None
        assert announced == {N1, N2}
        assert s.state == State.ESTABLISHED and s.advertised == 2
        # A changed route set is a diff on the same session: only N2 withdrawn, N3 announced.
        n3 = ipaddress.ip_network("203.0.113.3/32")
        s.set_routes({N1: RouteAttributes(), n3: RouteAttributes()})
        seen_wd: set[object] = set()
        seen_ann: set[object] = set()
        while n3 not in seen_ann or N2 not in seen_wd:
            u = await next_update(r)
            seen_wd |= set(u.withdrawn)
            seen_ann |= set(u.nlri)
        assert N1 not in seen_ann and seen_wd == {N2}
        assert s.counters.established_transitions == 1
        stop = asyncio.create_task(s.stop())
        u = await next_update(r)
        assert set(u.withdrawn) == {N1, n3}
        note = await read_msg(r)
        assert note == codec.Notification(6, 2)
        await stop
        assert peer.server is not None
        peer.server.close()

    run(main())


@pytest.mark.parametrize(("garbage", "expected"), [
    (b"\x00" * 19, (1, 1)),
    (codec.MARKER + b"\x00\x12\x04", (1, 2)),
    (codec.MARKER + b"\x00\x13\x08", (1, 3)),
    (codec.MARKER + b"\x00\x14\x05\x00", (1, 2)),  # ROUTE-REFRESH of 1 byte
])
def test_malformed_message_notifies_and_reconnects(garbage: bytes, expected: tuple[int, int]) -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer)
        s.start()
        r, w = await peer.accept()
        await handshake(r, w)
        await next_update(r)  # End-of-RIB: Established
        w.write(garbage)
        await w.drain()
        for _unused in range(20):
            msg = await read_msg(r)
            if isinstance(msg, codec.Notification):
                break
        assert isinstance(msg, codec.Notification) and (msg.code, msg.subcode) == expected
        # The session resets cleanly and comes back.
        r2, w2 = await peer.accept()
        await handshake(r2, w2)
        await next_update(r2)
        assert s.state == State.ESTABLISHED
        assert "malformed" in s.last_error or s.last_error == ""
        assert s.counters.established_transitions == 2
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())


def test_routes_from_peer_are_accepted_and_ignored() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer)
        s.start()
        r, w = await peer.accept()
        await handshake(r, w)
        await next_update(r)
        ctx = codec.UpdateContext(64500, False, True, PEER_RID, ipaddress.IPv6Address("2001:db8:1::1"))
        for m in codec.encode_announce([ipaddress.ip_network("198.51.100.128/26")], RouteAttributes(), ctx):
            w.write(m)
        for m in codec.encode_announce([ipaddress.ip_network("2001:db8:2::/64")], RouteAttributes(), ctx):
            w.write(m)
        w.write(codec.encode_route_refresh(1, 1))
        await w.drain()
        for _unused in range(100):
            if s.counters.updates_received >= 2:
                break
            await asyncio.sleep(0.02)
        assert s.counters.prefixes_received == 2
        assert s.state == State.ESTABLISHED
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())


def test_wrong_peer_asn_is_refused() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer)
        s.start()
        r, w = await peer.accept()
        await handshake(r, w, asn=65000)
        msg = await read_msg(r)
        assert msg == codec.Notification(2, 2)
        for _unused in range(100):
            if s.last_error:
                break
            await asyncio.sleep(0.02)
        assert "65000" in s.last_error
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())


def test_hold_timer_expiry() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer, hold_time=3, keepalive_time=1)
        s.start()
        r, w = await peer.accept()
        await handshake(r, w, hold=3)
        # Stay silent: the speaker's hold timer (3 s) must fire.
        note = None
        for _unused in range(20):
            msg = await read_msg(r)
            if isinstance(msg, codec.Notification):
                note = msg
                break
        assert note == codec.Notification(4, 0)
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())


def test_peer_notification_backs_off_and_reconnects() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer)
        s.start()
        r, w = await peer.accept()
        await handshake(r, w)
        await next_update(r)
        w.write(codec.encode_notification(codec.Notification(6, 4)))
        await w.drain()
        w.close()
        r2, w2 = await peer.accept()
        assert "cease 6/4" in s.last_error
        await handshake(r2, w2)
        await next_update(r2)
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())


def test_malformed_update_is_counted_and_ignored() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer)
        s.set_routes({N1: RouteAttributes()})
        s.start()
        r, w = await peer.accept()
        await handshake(r, w)
        await next_update(r)
        # Attribute length overruns the attribute list: a broken UPDATE, framing intact.
        w.write(codec.MARKER + b"\x00\x1a\x02" + b"\x00\x00\x00\x09\x40\x01\x01")
        w.write(codec.encode_keepalive())
        await w.drain()
        for _unused in range(100):
            if s.counters.malformed_updates_received:
                break
            await asyncio.sleep(0.02)
        assert s.counters.malformed_updates_received == 1
        assert s.state == State.ESTABLISHED and s.advertised == 1
        assert "malformed UPDATE" in s.last_error
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())


def test_route_refresh_resends_the_family() -> None:
    async def main() -> None:
        peer = FakePeer()
        await peer.start()
        s = session_for(peer)
        n6 = ipaddress.ip_network("2001:db8:ff::1/128")
        s.set_routes({N1: RouteAttributes(), n6: RouteAttributes()})
        s.start()
        r, w = await peer.accept()
        await handshake(r, w)
        seen: set[object] = set()
        while len(seen) < 2:  # IPv6 has no next hop on an IPv4 session without next_hop_ipv6
            u = await next_update(r)
            if u.end_of_rib is not None:
                seen.add(u.end_of_rib)
        assert "next_hop_ipv6" in s.last_error
        w.write(codec.encode_route_refresh(codec.AFI_IPV4, codec.SAFI_UNICAST))
        await w.drain()
        u = await next_update(r)
        assert u.nlri == (N1,)
        await s.stop()
        assert peer.server is not None
        peer.server.close()

    run(main())
