"""ARP (RFC 826) over Ethernet: pure encode/decode of frames, no sockets."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_HEADER = struct.Struct("!6s6sH")
ARP_BODY = struct.Struct("!HHBBH6s4s6s4s")
ARP_FRAME_LEN = ETH_HEADER.size + ARP_BODY.size  # 42 bytes before padding
OP_REQUEST = 1
OP_REPLY = 2
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6


class MalformedPacket(ValueError):
    """A frame could not be decoded; the responder counts and drops it."""


@dataclass(frozen=True)
class ArpPacket:
    eth_src: bytes
    eth_dst: bytes
    op: int
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_mac: bytes
    target_ip: ipaddress.IPv4Address


def decode(frame: bytes) -> ArpPacket:
    """Decode an Ethernet/IPv4 ARP frame; raise ``MalformedPacket`` otherwise."""
    if len(frame) < ARP_FRAME_LEN:
        raise MalformedPacket(f"ARP frame too short ({len(frame)} bytes)")
    eth_dst, eth_src, ethertype = ETH_HEADER.unpack_from(frame, 0)
    if ethertype != ETH_P_ARP:
        raise MalformedPacket(f"not ARP (ethertype {ethertype:#06x})")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = ARP_BODY.unpack_from(frame, ETH_HEADER.size)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        raise MalformedPacket("ARP for something other than Ethernet/IPv4")
    if op not in (OP_REQUEST, OP_REPLY):
        raise MalformedPacket(f"unknown ARP operation {op}")
    return ArpPacket(eth_src, eth_dst, op, sha, ipaddress.IPv4Address(spa), tha, ipaddress.IPv4Address(tpa))


def encode(pkt: ArpPacket) -> bytes:
    body = ARP_BODY.pack(
        1, 0x0800, 6, 4, pkt.op, pkt.sender_mac, pkt.sender_ip.packed, pkt.target_mac, pkt.target_ip.packed
    )
    return ETH_HEADER.pack(pkt.eth_dst, pkt.eth_src, ETH_P_ARP) + body


def reply_to(request: ArpPacket, mac: bytes) -> bytes:
    """The unicast reply telling the requester that ``request.target_ip`` is at ``mac``."""
    return encode(
        ArpPacket(
            eth_src=mac,
            eth_dst=request.sender_mac,
            op=OP_REPLY,
            sender_mac=mac,
            sender_ip=request.target_ip,
            target_mac=request.sender_mac,
            target_ip=request.sender_ip,
        )
    )


def gratuitous(ip: ipaddress.IPv4Address, mac: bytes) -> tuple[bytes, bytes]:
    """Gratuitous ARP request and reply for ``ip`` at ``mac`` (both, as some hosts heed only one)."""
    request = ArpPacket(mac, BROADCAST, OP_REQUEST, mac, ip, ZERO_MAC, ip)
    reply = ArpPacket(mac, BROADCAST, OP_REPLY, mac, ip, BROADCAST, ip)
    return encode(request), encode(reply)


def request_for(ip: ipaddress.IPv4Address, src_ip: ipaddress.IPv4Address, mac: bytes) -> bytes:
    """A broadcast who-has ``ip`` (used by test clients to see who answers)."""
    return encode(ArpPacket(mac, BROADCAST, OP_REQUEST, mac, src_ip, ZERO_MAC, ip))
