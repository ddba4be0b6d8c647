"""BgpSpeaker against scripted peers: announcements as diffs, reload with least churn, stop."""

from __future__ import annotations

import asyncio
import ipaddress

from lbspeaker.bgp import codec
from lbspeaker.bgp.config import parse_bgp_config
from lbspeaker.bgp.manager import Announcement, BgpSpeaker

from .test_session import FakePeer, handshake, next_update, read_msg


def config(port_a: int, port_b: int, hold_a: int = 90, community_b: str = "64500:1") -> dict[str, object]:
    return {
        "asn": 64501, "router_id": "198.51.100.11",
        "peers": [
            {"name": "a", "address": "127.0.0.1", "asn": 64500, "port": port_a, "hold_time": hold_a, "ttl": 64,
             "connect_retry_time": 0.1, "connect_retry_max": 0.2},
            {"name": "b", "address": "127.0.0.2", "asn": 64500, "port": port_b, "ttl": 64,
             "connect_retry_time": 0.1, "connect_retry_max": 0.2},
        ],
        "advertisements": [{"peers": ["a"]}, {"peers": ["b"], "communities": [community_b]}],
    }


def test_reload_resets_only_changed_peer_and_diffs_routes() -> None:
    async def main() -> None:
        pa, pb = FakePeer("127.0.0.1"), FakePeer("127.0.0.2")
        await pa.start()
        await pb.start()
        sp = BgpSpeaker(parse_bgp_config(config(pa.port, pb.port)))
        await sp.start()
        sp.set_announcements([Announcement("web", ipaddress.ip_address("203.0.113.1"))])
        ra, wa = await pa.accept()
        await handshake(ra, wa)
        rb, wb = await pb.accept()
        await handshake(rb, wb)
        ua = await next_update(ra)
        ub = await next_update(rb)
        assert ua.nlri == ub.nlri == (ipaddress.ip_network("203.0.113.1/32"),)
        # Peer a: hold time changes (session parameter) -> reset. Peer b: community changes -> UPDATE only.
        sp.apply_config(parse_bgp_config(config(pa.port, pb.port, hold_a=30, community_b="64500:2")))
        for _unused in range(20):
            msg = await read_msg(ra)
            if isinstance(msg, codec.Notification):
                break
        assert msg == codec.Notification(6, 6)
        ra2, wa2 = await pa.accept()
        ours = await handshake(ra2, wa2)
        assert ours.hold_time == 30
        for _unused in range(20):
            u = await next_update(rb)
            c = u.attribute(codec.ATTR_COMMUNITIES)
            if c is not None and c.value == (64500 << 16 | 2).to_bytes(4, "big"):
                break
        else:
            raise AssertionError("community change not sent to b")
        status = {p["name"]: p for p in sp.status()["peers"]}
        assert status["b"]["state"] == "Established"
        established = sp.metric_samples("n1")["bgp_established_total"]
        assert ((("node", "n1"), ("peer", "127.0.0.2"), ("name", "b")), 1) in established
        # The daemon withdraws a Local IP: only a withdraw goes out.
        sp.set_announcements([])
        for _unused in range(20):
            u = await next_update(rb)
            if u.withdrawn:
                break
        assert u.withdrawn == (ipaddress.ip_network("203.0.113.1/32"),)
        await sp.stop()
        for p in (pa, pb):
            assert p.server is not None
            p.server.close()

    asyncio.run(asyncio.wait_for(main(), 60))
