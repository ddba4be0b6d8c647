"""IPv6 Neighbor Discovery (RFC 4861) solicitations and advertisements over
Ethernet: pure encode/decode of frames, no sockets."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .arp import MalformedPacket

ETH_P_IPV6 = 0x86DD
ETH_HEADER = struct.Struct("!6s6sH")
IPV6_HEADER = struct.Struct("!IHBB16s16s")
ICMPV6 = 58
NS_TYPE = 135
NA_TYPE = 136
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
FLAG_ROUTER = 0x80000000
FLAG_SOLICITED = 0x40000000
FLAG_OVERRIDE = 0x20000000
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
NS_MIN_LEN = ETH_HEADER.size + IPV6_HEADER.size + 24


@dataclass(frozen=True)
class NeighborSolicitation:
    eth_src: bytes
    src_ip: ipaddress.IPv6Address
    dst_ip: ipaddress.IPv6Address
    target: ipaddress.IPv6Address
    source_lladdr: bytes | None


def solicited_node(ip: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The solicited-node multicast group ff02::1:ffXX:XXXX of ``ip``."""
    return ipaddress.IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + ip.packed[-3:])


def multicast_mac(group: ipaddress.IPv6Address) -> bytes:
    return b"\x33\x33" + group.packed[-4:]


def checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, payload: bytes) -> int:
    """ICMPv6 checksum over the IPv6 pseudo-header and ``payload``."""
    data = src.packed + dst.packed + struct.pack("!I3xB", len(payload), ICMPV6) + payload
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _options(data: bytes) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    pos = 0
    while pos + 2 <= len(data):
        kind, units = data[pos], data[pos + 1]
        if units == 0:
            raise MalformedPacket("ND option with zero length")
        end = pos + units * 8
        if end > len(data):
            raise MalformedPacket("ND option runs past the packet")
        opts.setdefault(kind, data[pos + 2 : end])
        pos = end
    return opts


def decode_ns(frame: bytes) -> NeighborSolicitation:
    """Decode an Ethernet/IPv6/ICMPv6 neighbor solicitation; raise ``MalformedPacket`` otherwise."""
    if len(frame) < NS_MIN_LEN:
        raise MalformedPacket(f"NS frame too short ({len(frame)} bytes)")
    _dst_mac, eth_src, ethertype = ETH_HEADER.unpack_from(frame, 0)
    if ethertype != ETH_P_IPV6:
        raise MalformedPacket(f"not IPv6 (ethertype {ethertype:#06x})")
    vtf, plen, nexthdr, hlim, src, dst = IPV6_HEADER.unpack_from(frame, ETH_HEADER.size)
    if vtf >> 28 != 6 or nexthdr != ICMPV6:
        raise MalformedPacket("not ICMPv6 in IPv6")
    start = ETH_HEADER.size + IPV6_HEADER.size
    payload = frame[start : start + plen]
    if len(payload) != plen or plen < 24:
        raise MalformedPacket("IPv6 payload length does not match the frame")
    if payload[0] != NS_TYPE or payload[1] != 0:
        raise MalformedPacket("not a neighbor solicitation")
    if hlim != 255:
        raise MalformedPacket("NS hop limit is not 255")
    src_ip = ipaddress.IPv6Address(src)
    dst_ip = ipaddress.IPv6Address(dst)
    if checksum(src_ip, dst_ip, payload[:2] + b"\x00\x00" + payload[4:]) != struct.unpack_from("!H", payload, 2)[0]:
        raise MalformedPacket("bad ICMPv6 checksum")
    target = ipaddress.IPv6Address(payload[8:24])
    if target.is_multicast:
        raise MalformedPacket("NS target is multicast")
    opts = _options(payload[24:])
    lladdr = opts.get(OPT_SOURCE_LLADDR)
    return NeighborSolicitation(eth_src, src_ip, dst_ip, target, lladdr[:6] if lladdr else None)


def encode_na(
    *,
    mac: bytes,
    target: ipaddress.IPv6Address,
    dst_mac: bytes,
    dst_ip: ipaddress.IPv6Address,
    solicited: bool,
) -> bytes:
    """A neighbor advertisement for ``target`` at ``mac``, override flag set."""
    flags = FLAG_OVERRIDE | (FLAG_SOLICITED if solicited else 0)
    body = struct.pack("!BBHI16s", NA_TYPE, 0, 0, flags, target.packed) + bytes([OPT_TARGET_LLADDR, 1]) + mac
    csum = checksum(target, dst_ip, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    ip6 = IPV6_HEADER.pack(6 << 28, len(body), ICMPV6, 255, target.packed, dst_ip.packed)
    return ETH_HEADER.pack(dst_mac, mac, ETH_P_IPV6) + ip6 + body


def reply_to(ns: NeighborSolicitation, mac: bytes) -> bytes:
    """The solicited NA answering ``ns``; to all-nodes when the asker has no address yet (DAD)."""
    if ns.src_ip.is_unspecified:
        return encode_na(mac=mac, target=ns.target, dst_mac=ALL_NODES_MAC, dst_ip=ALL_NODES, solicited=False)
    dst_mac = ns.source_lladdr or ns.eth_src
    return encode_na(mac=mac, target=ns.target, dst_mac=dst_mac, dst_ip=ns.src_ip, solicited=True)


def unsolicited(target: ipaddress.IPv6Address, mac: bytes) -> bytes:
    """Unsolicited NA to all nodes, overriding cached entries (the IPv6 gratuitous ARP)."""
    return encode_na(mac=mac, target=target, dst_mac=ALL_NODES_MAC, dst_ip=ALL_NODES, solicited=False)


def encode_ns(*, mac: bytes, src_ip: ipaddress.IPv6Address, target: ipaddress.IPv6Address) -> bytes:
    """A multicast NS for ``target`` (used by test clients to see who answers)."""
    group = solicited_node(target)
    body = struct.pack("!BBHI16s", NS_TYPE, 0, 0, 0, target.packed) + bytes([OPT_SOURCE_LLADDR, 1]) + mac
    csum = checksum(src_ip, group, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    ip6 = IPV6_HEADER.pack(6 << 28, len(body), ICMPV6, 255, src_ip.packed, group.packed)
    return ETH_HEADER.pack(multicast_mac(group), mac, ETH_P_IPV6) + ip6 + body


def decode_na(frame: bytes) -> tuple[ipaddress.IPv6Address, bytes | None]:
    """Target and target link-layer address of an NA frame (for test clients)."""
    if len(frame) < NS_MIN_LEN:
        raise MalformedPacket("NA frame too short")
    _d, _s, ethertype = ETH_HEADER.unpack_from(frame, 0)
    _v, plen, nexthdr, _h, _src, _dst = IPV6_HEADER.unpack_from(frame, ETH_HEADER.size)
    start = ETH_HEADER.size + IPV6_HEADER.size
    payload = frame[start : start + plen]
    if ethertype != ETH_P_IPV6 or nexthdr != ICMPV6 or len(payload) < 24 or payload[0] != NA_TYPE:
        raise MalformedPacket("not a neighbor advertisement")
    lladdr = _options(payload[24:]).get(OPT_TARGET_LLADDR)
    return ipaddress.IPv6Address(payload[8:24]), (lladdr[:6] if lladdr else None)
