import ipaddress

import pytest
from lbspeaker import arp, ndp

MAC = bytes.fromhex("020000000001")
CLIENT = bytes.fromhex("020000000099")
VIP4 = ipaddress.IPv4Address("198.51.100.100")
VIP6 = ipaddress.IPv6Address("2001:db8:1::100")
C6 = ipaddress.IPv6Address("2001:db8:1::50")


def test_arp_request_reply_roundtrip():
    req = arp.decode(arp.request_for(VIP4, ipaddress.IPv4Address("198.51.100.50"), CLIENT))
    assert req.op == arp.OP_REQUEST and req.target_ip == VIP4 and req.sender_mac == CLIENT
    reply = arp.decode(arp.reply_to(req, MAC))
    assert reply.op == arp.OP_REPLY
    assert reply.sender_ip == VIP4 and reply.sender_mac == MAC
    assert reply.eth_dst == CLIENT and reply.target_ip == req.sender_ip


def test_gratuitous_arp_request_and_reply():
    request, reply = (arp.decode(f) for f in arp.gratuitous(VIP4, MAC))
    assert request.op == arp.OP_REQUEST and reply.op == arp.OP_REPLY
    for p in (request, reply):
        assert p.sender_ip == p.target_ip == VIP4 and p.sender_mac == MAC and p.eth_dst == arp.BROADCAST


@pytest.mark.parametrize("cut", [0, 13, 14, 27, 41])
def test_truncated_arp_is_malformed(cut):
    frame = arp.request_for(VIP4, VIP4, CLIENT)
    with pytest.raises(arp.MalformedPacket):
        arp.decode(frame[:cut])


def test_arp_for_other_protocols_is_refused():
    frame = bytearray(arp.request_for(VIP4, VIP4, CLIENT))
    frame[16:18] = b"\x86\xdd"  # ptype
    with pytest.raises(arp.MalformedPacket):
        arp.decode(bytes(frame))


def test_solicited_node_group():
    assert str(ndp.solicited_node(VIP6)) == "ff02::1:ff00:100"
    assert ndp.multicast_mac(ndp.solicited_node(VIP6)) == bytes.fromhex("3333ff000100")


def test_ns_roundtrip_and_na_reply():
    ns = ndp.decode_ns(ndp.encode_ns(mac=CLIENT, src_ip=C6, target=VIP6))
    assert ns.target == VIP6 and ns.source_lladdr == CLIENT and ns.src_ip == C6
    frame = ndp.reply_to(ns, MAC)
    target, lladdr = ndp.decode_na(frame)
    assert target == VIP6 and lladdr == MAC
    assert frame[:6] == CLIENT
    # checksum verifies: recompute over the ICMPv6 body with the checksum zeroed
    body = frame[54:]
    assert ndp.checksum(VIP6, C6, body[:2] + b"\0\0" + body[4:]) == int.from_bytes(body[2:4], "big")
    flags = int.from_bytes(body[4:8], "big")
    assert flags & ndp.FLAG_SOLICITED and flags & ndp.FLAG_OVERRIDE


def test_unsolicited_na_overrides_to_all_nodes():
    frame = ndp.unsolicited(VIP6, MAC)
    assert frame[:6] == ndp.ALL_NODES_MAC
    flags = int.from_bytes(frame[58:62], "big")
    assert flags & ndp.FLAG_OVERRIDE and not flags & ndp.FLAG_SOLICITED


@pytest.mark.parametrize("cut", [0, 20, 54, 77, 85])
def test_truncated_ns_is_malformed(cut):
    frame = ndp.encode_ns(mac=CLIENT, src_ip=C6, target=VIP6)
    with pytest.raises(arp.MalformedPacket):
        ndp.decode_ns(frame[:cut])


def test_ns_with_bad_checksum_or_hop_limit_is_refused():
    frame = bytearray(ndp.encode_ns(mac=CLIENT, src_ip=C6, target=VIP6))
    frame[56] ^= 0xFF
    with pytest.raises(arp.MalformedPacket):
        ndp.decode_ns(bytes(frame))
    frame = bytearray(ndp.encode_ns(mac=CLIENT, src_ip=C6, target=VIP6))
    frame[21] = 64
    with pytest.raises(arp.MalformedPacket):
        ndp.decode_ns(bytes(frame))


def test_ns_option_with_zero_length_is_refused():
    frame = bytearray(ndp.encode_ns(mac=CLIENT, src_ip=C6, target=VIP6))
    frame[79] = 0  # option length
    with pytest.raises(arp.MalformedPacket):
        ndp.decode_ns(bytes(frame))
