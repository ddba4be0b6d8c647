"""Coverage-guided fuzz targets (atheris): every decoder that reads the network, and the config parser.

Each target feeds the fuzzer's bytes to one decoder; the decoder's own error
type is the only exception allowed (anything else, a hang or a crash is a
finding). Run by ``run.py`` (``make fuzz``, and for a few seconds each in the
speaker's tests); the committed seed corpus is in ``corpus/<target>/``
(``seed.py`` writes it from valid messages).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

import yaml
from lbspeaker import arp, config, membership, ndp
from lbspeaker.bgp import bfd, codec
from lbspeaker.errors import ConfigError

SECRET = b"k" * 32


def _membership(data: bytes) -> None:
    """As it arrives, and signed (an authenticated peer's junk must be refused as cleanly)."""
    for datagram in (data, data + hmac.digest(SECRET, data, "sha256")):
        try:
            membership.decode(datagram, SECRET)
        except membership.BadMessage:
            pass


def _arp(data: bytes) -> None:
    try:
        arp.decode(data)
    except arp.MalformedPacket:
        pass


def _ndp(data: bytes) -> None:
    for decode in (ndp.decode_ns, ndp.decode_na):
        try:
            decode(data)
        except arp.MalformedPacket:
            pass


def _bgp(data: bytes) -> None:
    try:
        codec.split_messages(data)
    except codec.BgpDecodeError:
        pass
    try:
        codec.decode_message(data)
    except codec.BgpDecodeError:
        pass


def _bfd(data: bytes) -> None:
    try:
        bfd.decode_packet(data)
    except bfd.BfdDecodeError:
        pass


def _config(data: bytes) -> None:
    """The speaker's config file: YAML text (yaml's own error or ours, nothing else)."""
    try:
        raw = yaml.safe_load(data.decode("utf-8", errors="replace"))
    except yaml.YAMLError:
        return
    try:
        config.parse(raw, check_interfaces=False)
    except ConfigError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "membership": _membership,
    "arp": _arp,
    "ndp": _ndp,
    "bgp": _bgp,
    "bfd": _bfd,
    "config": _config,
}


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per target: where the fuzzer starts."""
    vip4, vip6 = ipaddress.ip_address("198.51.100.100"), ipaddress.ip_address("2001:db8:1::100")
    client4, client6 = ipaddress.ip_address("198.51.100.50"), ipaddress.ip_address("2001:db8:1::50")
    mac = b"\2" * 6
    hb = membership.Message(membership.HEARTBEAT, "node1", 5, 9, frozenset({"apps/web"}), True,
                            frozenset({4, 6}), (("node2", 1),))
    ctx = codec.UpdateContext(64501, False, True, ipaddress.IPv4Address("198.51.100.11"),
                              ipaddress.IPv6Address("2001:db8:1::11"))
    nets = [ipaddress.ip_network("203.0.113.10/32"), ipaddress.ip_network("2001:db8:ff::10/128")]
    updates = [m for n in nets for m in codec.encode_announce([n], codec.RouteAttributes(), ctx)]
    cfg = {
        "node": "node1",
        "nodes": [{"name": "node1", "address": "127.0.0.1"}, {"name": "node2", "address": "198.51.100.12"}],
        "membership": {"secret": "s" * 32, "interval_ms": 75},
        "interfaces": ["eth0"],
        "services": [
            {"name": "apps/web", "addresses": [str(vip4), str(vip6)]},
            {"name": "apps/local", "addresses": ["198.51.100.101"], "external_traffic_policy": "Local",
             "health_check": {"type": "tcp", "port": 8080}},
            {"name": "apps/bgp", "addresses": ["203.0.113.10"], "mode": "bgp"},
        ],
        "bgp": {"asn": 64501, "router_id": "198.51.100.11", "peers": [{"address": "198.51.100.1", "asn": 64500}]},
    }
    return {
        "membership": [membership.encode(hb, SECRET), membership.encode(hb, SECRET)[:-32]],
        "arp": [arp.request_for(vip4, client4, mac)],
        "ndp": [ndp.encode_ns(mac=mac, src_ip=client6, target=vip6)],
        "bgp": [*updates, codec.encode_keepalive()],
        "bfd": [bfd.encode_packet(bfd.BfdPacket(bfd.BfdState.UP, 3, 1, 2, 100_000, 100_000))],
        "config": [yaml.safe_dump(cfg).encode()],
    }
