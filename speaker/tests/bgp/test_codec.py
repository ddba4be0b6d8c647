"""BGP codec: round trips, what the routers will see, and malformed input."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from lbspeaker.bgp import codec
from lbspeaker.bgp.codec import BgpDecodeError, RouteAttributes, UpdateContext
from lbspeaker.core.advertisements import WELL_KNOWN_COMMUNITIES

RID = ipaddress.IPv4Address("198.51.100.11")
CTX_EBGP = UpdateContext(64501, False, True, ipaddress.IPv4Address("198.51.100.11"),
                         ipaddress.IPv6Address("2001:db8:1::11"))
CTX_IBGP = UpdateContext(64500, True, True, ipaddress.IPv4Address("198.51.100.11"), None)


def full_caps() -> codec.Capabilities:
    return codec.Capabilities(
        four_octet_asn=4200000001,
        multiprotocol=(codec.IPV4_UNICAST, codec.IPV6_UNICAST),
        route_refresh=True,
        graceful_restart=codec.GracefulRestart(120, False, ((1, 1, True), (2, 1, True))),
    )


def test_open_round_trip_with_four_octet_asn() -> None:
    msg = codec.Open(4200000001, 90, RID, full_caps())
    data = codec.encode_open(msg)
    # The 2-octet "My AS" carries AS_TRANS; the real ASN rides in the capability.
    assert struct.unpack("!H", data[20:22])[0] == codec.AS_TRANS
    assert codec.decode_message(data) == msg


def test_open_keeps_unknown_capabilities() -> None:
    caps = codec.Capabilities(four_octet_asn=64501, unknown=((73, b"host"), (200, b"")))
    decoded = codec.decode_message(codec.encode_open(codec.Open(64501, 3, RID, caps)))
    assert isinstance(decoded, codec.Open)
    assert decoded.capabilities.unknown == ((73, b"host"), (200, b""))
    assert decoded.asn == 64501


def test_open_without_four_octet_capability_uses_my_as() -> None:
    decoded = codec.decode_message(codec.encode_open(codec.Open(64500, 0, RID)))
    assert isinstance(decoded, codec.Open)
    assert decoded.asn == 64500 and decoded.capabilities.four_octet_asn is None


@pytest.mark.parametrize(("mutate", "code", "subcode"), [
    (lambda d: b"\x00" + d[1:], 1, 1),  # bad marker
    (lambda d: d[:16] + struct.pack("!H", 18) + d[18:], 1, 2),  # length below the header
    (lambda d: d[:16] + struct.pack("!H", 5000) + d[18:], 1, 2),  # length above 4096
    (lambda d: d[:18] + b"\x09" + d[19:], 1, 3),  # unknown type
])
def test_bad_header(mutate, code, subcode) -> None:  # type: ignore[no-untyped-def]
    data = mutate(codec.encode_keepalive())
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_message(data)
    assert (err.value.code, err.value.subcode) == (code, subcode)


def test_keepalive_with_body_is_bad_length() -> None:
    data = codec.MARKER + struct.pack("!HB", 20, 4) + b"\x00"
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_message(data)
    assert (err.value.code, err.value.subcode) == (1, 2)


def test_length_field_disagrees_with_data() -> None:
    data = codec.encode_open(codec.Open(64501, 90, RID, full_caps()))
    with pytest.raises(BgpDecodeError):
        codec.decode_message(data[:-3])


def test_open_bad_version_hold_and_router_id() -> None:
    good = codec.encode_open(codec.Open(64501, 90, RID))
    body = bytearray(good[19:])
    body[0] = 3
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_open(bytes(body))
    assert (err.value.code, err.value.subcode) == (2, 1)
    body = bytearray(good[19:])
    body[3:5] = struct.pack("!H", 2)
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_open(bytes(body))
    assert (err.value.code, err.value.subcode) == (2, 6)
    body = bytearray(good[19:])
    body[5:9] = b"\x00\x00\x00\x00"
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_open(bytes(body))
    assert (err.value.code, err.value.subcode) == (2, 3)


def test_open_truncated_capability() -> None:
    body = struct.pack("!BHH4sB", 4, 64501, 90, RID.packed, 4) + bytes([2, 2, 65, 4])
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_open(body)
    assert err.value.code == 2


def test_open_parameter_length_mismatch() -> None:
    body = struct.pack("!BHH4sB", 4, 64501, 90, RID.packed, 10) + bytes([2, 0])
    with pytest.raises(BgpDecodeError):
        codec.decode_open(body)


def test_announce_ipv4_attributes() -> None:
    attrs = RouteAttributes(communities=(64500 << 16 | 100, WELL_KNOWN_COMMUNITIES["no-export"]),
                            large_communities=((64500, 1, 2),))
    nets = [ipaddress.ip_network("203.0.113.10/32"), ipaddress.ip_network("203.0.113.0/24")]
    (msg,) = codec.encode_announce(nets, attrs, CTX_EBGP)
    update = codec.decode_message(msg)
    assert isinstance(update, codec.Update)
    assert update.nlri == tuple(nets)
    assert update.attribute(codec.ATTR_ORIGIN).value == b"\x00"  # type: ignore[union-attr]
    as_path = update.attribute(codec.ATTR_AS_PATH)
    assert as_path is not None and codec.decode_as_path(as_path.value, True) == (64501,)
    assert update.attribute(codec.ATTR_NEXT_HOP).value == bytes([198, 51, 100, 11])  # type: ignore[union-attr]
    assert update.attribute(codec.ATTR_LOCAL_PREF) is None  # never on eBGP
    comms = update.attribute(codec.ATTR_COMMUNITIES)
    assert comms is not None and set(struct.unpack("!2I", comms.value)) == {0xFBF40064, 0xFFFFFF01}
    large = update.attribute(codec.ATTR_LARGE_COMMUNITIES)
    assert large is not None and struct.unpack("!3I", large.value) == (64500, 1, 2)


def test_ibgp_has_local_pref_and_empty_as_path() -> None:
    (msg,) = codec.encode_announce([ipaddress.ip_network("203.0.113.1/32")], RouteAttributes(local_pref=250),
                                   CTX_IBGP)
    update = codec.decode_message(msg)
    assert isinstance(update, codec.Update)
    assert update.attribute(codec.ATTR_LOCAL_PREF).value == struct.pack("!I", 250)  # type: ignore[union-attr]
    assert update.attribute(codec.ATTR_AS_PATH).value == b""  # type: ignore[union-attr]


def test_two_octet_peer_gets_as_trans_and_as4_path() -> None:
    ctx = UpdateContext(4200000001, False, False, ipaddress.IPv4Address("198.51.100.11"), None)
    (msg,) = codec.encode_announce([ipaddress.ip_network("203.0.113.1/32")], RouteAttributes(), ctx)
    update = codec.decode_message(msg)
    assert isinstance(update, codec.Update)
    assert codec.decode_as_path(update.attribute(codec.ATTR_AS_PATH).value, False) == (codec.AS_TRANS,)  # type: ignore[union-attr]
    assert codec.decode_as_path(update.attribute(codec.ATTR_AS4_PATH).value, True) == (4200000001,)  # type: ignore[union-attr]


def test_ipv6_announce_and_withdraw_use_mp_attributes() -> None:
    nets = [ipaddress.ip_network("2001:db8:ff::10/128"), ipaddress.ip_network("2001:db8:ff::/112")]
    (msg,) = codec.encode_announce(nets, RouteAttributes(), CTX_EBGP)
    update = codec.decode_message(msg)
    assert isinstance(update, codec.Update)
    assert update.mp_reach == tuple(nets) and update.nlri == ()
    assert update.mp_next_hops == (ipaddress.IPv6Address("2001:db8:1::11"),)
    assert update.attribute(codec.ATTR_NEXT_HOP) is None
    (wd,) = codec.encode_withdraw(nets)
    update = codec.decode_message(wd)
    assert isinstance(update, codec.Update)
    assert update.mp_unreach == tuple(nets)


def test_many_prefixes_split_into_messages_within_4096_bytes() -> None:
    nets = [ipaddress.ip_network(f"10.{i >> 8}.{i & 255}.0/32", strict=False)
            for i in range(10000)]
    for encoder in (lambda: codec.encode_announce(nets, RouteAttributes(communities=(1,)), CTX_EBGP),
                    lambda: codec.encode_withdraw(nets)):
        msgs = encoder()
        assert all(len(m) <= codec.MAX_MESSAGE_LEN for m in msgs)
        got = []
        for m in msgs:
            u = codec.decode_message(m)
            assert isinstance(u, codec.Update)
            got.extend(u.nlri or u.withdrawn)
        assert got == nets
    v6 = [ipaddress.ip_network(f"2001:db8:ff::{i:x}/128") for i in range(3000)]
    msgs = codec.encode_announce(v6, RouteAttributes(), CTX_EBGP)
    assert all(len(m) <= codec.MAX_MESSAGE_LEN for m in msgs)
    assert sum(len(codec.decode_message(m).mp_reach) for m in msgs) == 3000  # type: ignore[union-attr]


def test_end_of_rib_markers() -> None:
    v4 = codec.decode_message(codec.encode_end_of_rib(codec.AFI_IPV4))
    v6 = codec.decode_message(codec.encode_end_of_rib(codec.AFI_IPV6))
    assert isinstance(v4, codec.Update) and v4.end_of_rib == codec.IPV4_UNICAST
    assert isinstance(v6, codec.Update) and v6.end_of_rib == codec.IPV6_UNICAST


@pytest.mark.parametrize("body", [
    b"\x00",  # shorter than 4
    b"\x00\x05\x00\x00",  # withdrawn length overruns
    b"\x00\x00\x00\x09\x40\x01",  # attribute length overruns
    b"\x00\x00\x00\x03\x40\x01\x05\x00",  # attribute value truncated
    b"\x00\x00\x00\x02\x40\x01",  # attribute header truncated
    b"\x00\x00\x00\x00\x21\x0a",  # prefix length 33
    b"\x00\x00\x00\x00\x18\x0a",  # prefix truncated
    b"\x00\x00\x00\x04\x80\x0e\x01\x00",  # MP_REACH too short
    b"\x00\x00\x00\x09\x80\x0e\x06\x00\x02\x01\x10\x00\x00",  # MP_REACH next hop overruns
])
def test_malformed_update(body: bytes) -> None:
    with pytest.raises(BgpDecodeError) as err:
        codec.decode_update(body)
    assert err.value.code == 3


def test_routes_from_peer_with_unknown_attributes_are_decoded() -> None:
    # An UPDATE a router may send us: unknown optional transitive attribute 99, extended length.
    attrs = bytes([0x40, 1, 1, 0]) + bytes([0xD0, 99, 0, 3]) + b"abc"
    body = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs + bytes([24, 198, 51, 100])
    update = codec.decode_update(body)
    assert update.nlri == (ipaddress.ip_network("198.51.100.0/24"),)
    assert update.attribute(99) == codec.PathAttribute(0xD0, 99, b"abc")


def test_notification_and_route_refresh() -> None:
    note = codec.Notification(6, 2, b"bye")
    assert codec.decode_message(codec.encode_notification(note)) == note
    assert codec.decode_message(codec.encode_route_refresh(2, 1)) == codec.RouteRefresh(2, 1)
    with pytest.raises(BgpDecodeError):
        codec.decode_body(codec.MSG_NOTIFICATION, b"\x06")
    with pytest.raises(BgpDecodeError):
        codec.decode_body(codec.MSG_ROUTE_REFRESH, b"\x00\x01\x00")


def test_split_messages_keeps_partial_tail() -> None:
    stream = codec.encode_keepalive() + codec.encode_open(codec.Open(64501, 90, RID, full_caps()))
    msgs, rest = codec.split_messages(stream[:-5])
    assert msgs == [codec.Keepalive()] and rest == stream[19:-5]
    msgs, rest = codec.split_messages(stream)
    assert len(msgs) == 2 and rest == b""
