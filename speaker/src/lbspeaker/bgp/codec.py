"""BGP-4 message codec: pure functions between bytes and typed messages.

Covers what an announcing speaker needs (RFC 4271, 4760, 6793, 1997, 8092,
2918, 4724): framing, OPEN with capabilities, UPDATE with the attributes we
send, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH. Decoding is strict about the
framing and lenient about content we do not use: unknown capabilities and path
attributes are kept as raw bytes, never rejected. Every decoding failure is a
:class:`BgpDecodeError` carrying the NOTIFICATION code/subcode to send.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..core.dataplane import IPAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096
BGP_VERSION = 4
AS_TRANS = 23456

MSG_OPEN = 1
MSG_UPDATE = 2
MSG_NOTIFICATION = 3
MSG_KEEPALIVE = 4
MSG_ROUTE_REFRESH = 5

AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1
IPV4_UNICAST = (AFI_IPV4, SAFI_UNICAST)
IPV6_UNICAST = (AFI_IPV6, SAFI_UNICAST)

CAP_MULTIPROTOCOL = 1
CAP_ROUTE_REFRESH = 2
CAP_GRACEFUL_RESTART = 64
CAP_FOUR_OCTET_AS = 65
CAP_ENHANCED_ROUTE_REFRESH = 70

ATTR_ORIGIN = 1
ATTR_AS_PATH = 2
ATTR_NEXT_HOP = 3
ATTR_MED = 4
ATTR_LOCAL_PREF = 5
ATTR_COMMUNITIES = 8
ATTR_MP_REACH_NLRI = 14
ATTR_MP_UNREACH_NLRI = 15
ATTR_AS4_PATH = 17
ATTR_LARGE_COMMUNITIES = 32

FLAG_OPTIONAL = 0x80
FLAG_TRANSITIVE = 0x40
FLAG_PARTIAL = 0x20
FLAG_EXTENDED_LENGTH = 0x10

ORIGIN_IGP = 0
AS_SEQUENCE = 2

# NOTIFICATION error codes and the subcodes we emit (RFC 4271 section 4.5).
ERR_HEADER = 1
ERR_OPEN = 2
ERR_UPDATE = 3
ERR_HOLD_TIMER = 4
ERR_FSM = 5
ERR_CEASE = 6
SUB_CONNECTION_NOT_SYNCHRONIZED = 1
SUB_BAD_MESSAGE_LENGTH = 2
SUB_BAD_MESSAGE_TYPE = 3
SUB_UNSUPPORTED_VERSION = 1
SUB_BAD_PEER_AS = 2
SUB_BAD_BGP_IDENTIFIER = 3
SUB_UNACCEPTABLE_HOLD_TIME = 6
SUB_MALFORMED_ATTRIBUTE_LIST = 1
SUB_ATTRIBUTE_LENGTH_ERROR = 5
SUB_INVALID_NETWORK_FIELD = 10
SUB_MALFORMED_AS_PATH = 11
SUB_CEASE_ADMIN_SHUTDOWN = 2
SUB_CEASE_PEER_DECONFIGURED = 3
SUB_CEASE_ADMIN_RESET = 4
SUB_CEASE_OTHER_CONFIG_CHANGE = 6


class BgpDecodeError(ValueError):
    """Malformed input; ``code``/``subcode``/``data`` are what to NOTIFY."""

    def __init__(self, code: int, subcode: int, message: str, data: bytes = b"") -> None:
        self.code = code
        self.subcode = subcode
        self.data = data
        super().__init__(f"{message} (notification {code}/{subcode})")


@dataclass(frozen=True)
class GracefulRestart:
    """Graceful restart capability (RFC 4724)."""

    restart_time: int = 120
    restarting: bool = False
    # (afi, safi, forwarding_state_preserved)
    families: tuple[tuple[int, int, bool], ...] = ()


@dataclass(frozen=True)
class Capabilities:
    four_octet_asn: int | None = None
    multiprotocol: tuple[tuple[int, int], ...] = ()
    route_refresh: bool = False
    enhanced_route_refresh: bool = False
    graceful_restart: GracefulRestart | None = None
    unknown: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Open:
    asn: int  # the real ASN (from the 4-octet capability when present)
    hold_time: int
    router_id: ipaddress.IPv4Address
    capabilities: Capabilities = field(default_factory=Capabilities)
    version: int = BGP_VERSION


@dataclass(frozen=True)
class Keepalive:
    pass


@dataclass(frozen=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""

    def describe(self) -> str:
        names = {1: "message header error", 2: "OPEN message error", 3: "UPDATE message error",
                 4: "hold timer expired", 5: "FSM error", 6: "cease", 7: "route refresh error"}
        return f"{names.get(self.code, 'error')} {self.code}/{self.subcode}"


@dataclass(frozen=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0


@dataclass(frozen=True)
class PathAttribute:
    flags: int
    type_code: int
    value: bytes


@dataclass(frozen=True)
class Update:
    withdrawn: tuple[IPNetwork, ...] = ()
    attributes: tuple[PathAttribute, ...] = ()
    nlri: tuple[IPNetwork, ...] = ()
    # Decoded from MP_REACH_NLRI / MP_UNREACH_NLRI (any family we understand).
    mp_reach: tuple[IPNetwork, ...] = ()
    mp_next_hops: tuple[IPAddress, ...] = ()
    mp_unreach: tuple[IPNetwork, ...] = ()
    end_of_rib: tuple[int, int] | None = None

    def attribute(self, type_code: int) -> PathAttribute | None:
        for attr in self.attributes:
            if attr.type_code == type_code:
                return attr
        return None


Message = Open | Update | Notification | Keepalive | RouteRefresh


@dataclass(frozen=True)
class RouteAttributes:
    """What we attach to an advertised prefix, independent of the peer."""

    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    local_pref: int | None = None


# --------------------------------------------------------------------------
# Framing


def frame(msg_type: int, body: bytes) -> bytes:
    length = HEADER_LEN + len(body)
    if length > MAX_MESSAGE_LEN:
        raise ValueError(f"BGP message of {length} bytes exceeds {MAX_MESSAGE_LEN}")
    return MARKER + struct.pack("!HB", length, msg_type) + body


def decode_header(header: bytes) -> tuple[int, int]:
    """Validate a 19-byte header; return (message type, total length)."""
    if len(header) != HEADER_LEN:
        raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, f"header is {len(header)} bytes, not 19")
    if header[:16] != MARKER:
        raise BgpDecodeError(ERR_HEADER, SUB_CONNECTION_NOT_SYNCHRONIZED, "bad marker")
    length, msg_type = struct.unpack("!HB", header[16:19])
    minimum = {MSG_OPEN: 29, MSG_UPDATE: 23, MSG_NOTIFICATION: 21, MSG_KEEPALIVE: 19, MSG_ROUTE_REFRESH: 23}
    if msg_type not in minimum:
        raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_TYPE, f"unknown message type {msg_type}", bytes([msg_type]))
    if length < minimum[msg_type] or length > MAX_MESSAGE_LEN or (msg_type == MSG_KEEPALIVE and length != 19):
        raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, f"bad length {length} for type {msg_type}",
                             struct.pack("!H", length))
    return msg_type, length


def split_messages(buffer: bytes) -> tuple[list[Message], bytes]:
    """Decode every complete message in ``buffer``; return them and the rest."""
    messages: list[Message] = []
    offset = 0
    while len(buffer) - offset >= HEADER_LEN:
        msg_type, length = decode_header(buffer[offset:offset + HEADER_LEN])
        if len(buffer) - offset < length:
            break
        messages.append(decode_body(msg_type, buffer[offset + HEADER_LEN:offset + length]))
        offset += length
    return messages, buffer[offset:]


def decode_message(data: bytes) -> Message:
    """Decode exactly one whole message (header included)."""
    msg_type, length = decode_header(data[:HEADER_LEN])
    if length != len(data):
        raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, f"length field {length} but {len(data)} bytes")
    return decode_body(msg_type, data[HEADER_LEN:])


def decode_body(msg_type: int, body: bytes) -> Message:
    if msg_type == MSG_OPEN:
        return decode_open(body)
    if msg_type == MSG_UPDATE:
        return decode_update(body)
    if msg_type == MSG_NOTIFICATION:
        return decode_notification(body)
    if msg_type == MSG_KEEPALIVE:
        if body:
            raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, "KEEPALIVE with a body")
        return Keepalive()
    if msg_type == MSG_ROUTE_REFRESH:
        if len(body) != 4:
            raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, "ROUTE-REFRESH body is not 4 bytes")
        afi, subtype, safi = struct.unpack("!HBB", body)
        return RouteRefresh(afi, safi, subtype)
    raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_TYPE, f"unknown message type {msg_type}", bytes([msg_type]))


# --------------------------------------------------------------------------
# OPEN


def encode_capabilities(caps: Capabilities) -> bytes:
    out = bytearray()

    def cap(code: int, value: bytes) -> None:
        out.extend(struct.pack("!BB", code, len(value)) + value)

    for afi, safi in caps.multiprotocol:
        cap(CAP_MULTIPROTOCOL, struct.pack("!HBB", afi, 0, safi))
    if caps.route_refresh:
        cap(CAP_ROUTE_REFRESH, b"")
    if caps.enhanced_route_refresh:
        cap(CAP_ENHANCED_ROUTE_REFRESH, b"")
    if caps.graceful_restart is not None:
        gr = caps.graceful_restart
        value = struct.pack("!H", (0x8000 if gr.restarting else 0) | (gr.restart_time & 0x0FFF))
        for afi, safi, preserved in gr.families:
            value += struct.pack("!HBB", afi, safi, 0x80 if preserved else 0)
        cap(CAP_GRACEFUL_RESTART, value)
    if caps.four_octet_asn is not None:
        cap(CAP_FOUR_OCTET_AS, struct.pack("!I", caps.four_octet_asn))
    for code, value in caps.unknown:
        cap(code, value)
    return bytes(out)


def encode_open(msg: Open) -> bytes:
    caps = encode_capabilities(msg.capabilities)
    # One optional parameter (type 2) holding all capabilities; 255 bytes max.
    params = struct.pack("!BB", 2, len(caps)) + caps if caps else b""
    if len(params) > 255:
        raise ValueError("capabilities do not fit in an OPEN optional parameter")
    my_as = msg.asn if msg.asn <= 0xFFFF else AS_TRANS
    body = struct.pack("!BHH4sB", msg.version, my_as, msg.hold_time, msg.router_id.packed, len(params)) + params
    return frame(MSG_OPEN, body)


def _decode_capabilities(data: bytes) -> Capabilities:
    four: int | None = None
    mp: list[tuple[int, int]] = []
    rr = err = False
    gr: GracefulRestart | None = None
    unknown: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise BgpDecodeError(ERR_OPEN, 0, "truncated capability header")
        code, length = data[pos], data[pos + 1]
        value = data[pos + 2:pos + 2 + length]
        if len(value) != length:
            raise BgpDecodeError(ERR_OPEN, 0, f"capability {code} truncated")
        pos += 2 + length
        if code == CAP_MULTIPROTOCOL and length == 4:
            afi, _reserved, safi = struct.unpack("!HBB", value)
            mp.append((afi, safi))
        elif code == CAP_ROUTE_REFRESH:
            rr = True
        elif code == CAP_ENHANCED_ROUTE_REFRESH:
            err = True
        elif code == CAP_FOUR_OCTET_AS and length == 4:
            four = struct.unpack("!I", value)[0]
        elif code == CAP_GRACEFUL_RESTART and length >= 2 and (length - 2) % 4 == 0:
            (word,) = struct.unpack("!H", value[:2])
            fams = tuple(
                (struct.unpack("!H", value[i:i + 2])[0], value[i + 2], bool(value[i + 3] & 0x80))
                for i in range(2, length, 4)
            )
            gr = GracefulRestart(word & 0x0FFF, bool(word & 0x8000), fams)
        else:
            # Unknown capabilities (or known ones with an odd length) are kept, not refused.
            unknown.append((code, value))
    return Capabilities(four, tuple(mp), rr, err, gr, tuple(unknown))


def decode_open(body: bytes) -> Open:
    if len(body) < 10:
        raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, "OPEN shorter than 10 bytes")
    version, my_as, hold, router_id, params_len = struct.unpack("!BHH4sB", body[:10])
    if version != BGP_VERSION:
        raise BgpDecodeError(ERR_OPEN, SUB_UNSUPPORTED_VERSION, f"BGP version {version}", struct.pack("!H", 4))
    params = body[10:]
    if len(params) != params_len:
        raise BgpDecodeError(ERR_OPEN, 0, f"optional parameters length {params_len} but {len(params)} bytes")
    if hold in (1, 2):
        raise BgpDecodeError(ERR_OPEN, SUB_UNACCEPTABLE_HOLD_TIME, f"hold time {hold}")
    rid = ipaddress.IPv4Address(router_id)
    if int(rid) == 0:
        raise BgpDecodeError(ERR_OPEN, SUB_BAD_BGP_IDENTIFIER, "router id 0.0.0.0")
    cap_bytes = bytearray()
    pos = 0
    while pos < len(params):
        if pos + 2 > len(params):
            raise BgpDecodeError(ERR_OPEN, 0, "truncated optional parameter")
        ptype, plen = params[pos], params[pos + 1]
        value = params[pos + 2:pos + 2 + plen]
        if len(value) != plen:
            raise BgpDecodeError(ERR_OPEN, 0, "optional parameter overruns OPEN")
        if ptype == 2:
            cap_bytes.extend(value)
        pos += 2 + plen
    caps = _decode_capabilities(bytes(cap_bytes))
    asn = caps.four_octet_asn if caps.four_octet_asn is not None else my_as
    return Open(asn, hold, rid, caps, version)


# --------------------------------------------------------------------------
# NOTIFICATION, KEEPALIVE, ROUTE-REFRESH


def encode_keepalive() -> bytes:
    return frame(MSG_KEEPALIVE, b"")


def encode_notification(msg: Notification) -> bytes:
    return frame(MSG_NOTIFICATION, struct.pack("!BB", msg.code, msg.subcode) + msg.data[:4000])


def decode_notification(body: bytes) -> Notification:
    if len(body) < 2:
        raise BgpDecodeError(ERR_HEADER, SUB_BAD_MESSAGE_LENGTH, "NOTIFICATION shorter than 2 bytes")
    return Notification(body[0], body[1], bytes(body[2:]))


def encode_route_refresh(afi: int, safi: int) -> bytes:
    return frame(MSG_ROUTE_REFRESH, struct.pack("!HBB", afi, 0, safi))


# --------------------------------------------------------------------------
# Prefixes


def encode_prefix(net: IPNetwork) -> bytes:
    nbytes = (net.prefixlen + 7) // 8
    return bytes([net.prefixlen]) + net.network_address.packed[:nbytes]


def decode_prefixes(data: bytes, afi: int) -> tuple[IPNetwork, ...]:
    width = 32 if afi == AFI_IPV4 else 128
    out: list[IPNetwork] = []
    pos = 0
    while pos < len(data):
        plen = data[pos]
        if plen > width:
            raise BgpDecodeError(ERR_UPDATE, SUB_INVALID_NETWORK_FIELD, f"prefix length {plen} > {width}")
        nbytes = (plen + 7) // 8
        raw = data[pos + 1:pos + 1 + nbytes]
        if len(raw) != nbytes:
            raise BgpDecodeError(ERR_UPDATE, SUB_INVALID_NETWORK_FIELD, "truncated prefix")
        pos += 1 + nbytes
        padded = raw + b"\x00" * (width // 8 - nbytes)
        addr = ipaddress.IPv4Address(padded) if afi == AFI_IPV4 else ipaddress.IPv6Address(padded)
        # Host bits set beyond the length are tolerated (strict=False), as routers do.
        out.append(ipaddress.ip_network((addr, plen), strict=False))
    return tuple(out)


def afi_of(net: IPNetwork | IPAddress) -> int:
    return AFI_IPV4 if net.version == 4 else AFI_IPV6


# --------------------------------------------------------------------------
# UPDATE


def _attr(flags: int, type_code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | FLAG_EXTENDED_LENGTH, type_code, len(value)) + value
    return struct.pack("!BBB", flags & ~FLAG_EXTENDED_LENGTH, type_code, len(value)) + value


def encode_as_path(asns: Sequence[int], four_octet: bool) -> bytes:
    if not asns:
        return b""
    fmt = "!I" if four_octet else "!H"
    out = bytearray()
    for start in range(0, len(asns), 255):
        chunk = asns[start:start + 255]
        out += struct.pack("!BB", AS_SEQUENCE, len(chunk))
        for asn in chunk:
            out += struct.pack(fmt, asn if four_octet or asn <= 0xFFFF else AS_TRANS)
    return bytes(out)


@dataclass(frozen=True)
class UpdateContext:
    """Per-session facts the attributes depend on."""

    local_asn: int
    ibgp: bool
    four_octet: bool
    next_hop_v4: ipaddress.IPv4Address | None
    next_hop_v6: ipaddress.IPv6Address | None
    next_hop_v6_link_local: ipaddress.IPv6Address | None = None


def encode_path_attributes(attrs: RouteAttributes, ctx: UpdateContext, afi: int) -> bytes:
    """The attributes shared by a group of prefixes, minus the MP_REACH NLRI part."""
    path = [] if ctx.ibgp else [ctx.local_asn]
    out = bytearray(_attr(FLAG_TRANSITIVE, ATTR_ORIGIN, bytes([ORIGIN_IGP])))
    out += _attr(FLAG_TRANSITIVE, ATTR_AS_PATH, encode_as_path(path, ctx.four_octet))
    if not ctx.four_octet and any(a > 0xFFFF for a in path):
        out += _attr(FLAG_OPTIONAL | FLAG_TRANSITIVE, ATTR_AS4_PATH, encode_as_path(path, True))
    if afi == AFI_IPV4:
        if ctx.next_hop_v4 is None:
            raise ValueError("no IPv4 next hop for this session")
        out += _attr(FLAG_TRANSITIVE, ATTR_NEXT_HOP, ctx.next_hop_v4.packed)
    if ctx.ibgp:
        local_pref = 100 if attrs.local_pref is None else attrs.local_pref
        out += _attr(FLAG_TRANSITIVE, ATTR_LOCAL_PREF, struct.pack("!I", local_pref))
    if attrs.communities:
        out += _attr(FLAG_OPTIONAL | FLAG_TRANSITIVE, ATTR_COMMUNITIES,
                     b"".join(struct.pack("!I", c) for c in sorted(set(attrs.communities))))
    if attrs.large_communities:
        out += _attr(FLAG_OPTIONAL | FLAG_TRANSITIVE, ATTR_LARGE_COMMUNITIES,
                     b"".join(struct.pack("!III", *c) for c in sorted(set(attrs.large_communities))))
    return bytes(out)


def _mp_reach(ctx: UpdateContext, prefixes: bytes) -> bytes:
    if ctx.next_hop_v6 is None:
        raise ValueError("no IPv6 next hop for this session")
    nh = ctx.next_hop_v6.packed
    if ctx.next_hop_v6_link_local is not None:
        nh += ctx.next_hop_v6_link_local.packed
    return struct.pack("!HBB", AFI_IPV6, SAFI_UNICAST, len(nh)) + nh + b"\x00" + prefixes


def _chunks(prefixes: Iterable[IPNetwork], budget: int) -> Iterator[bytes]:
    """Pack encoded prefixes into blobs no larger than ``budget`` bytes."""
    cur = bytearray()
    for net in prefixes:
        enc = encode_prefix(net)
        if cur and len(cur) + len(enc) > budget:
            yield bytes(cur)
            cur = bytearray()
        cur += enc
    if cur:
        yield bytes(cur)


def encode_announce(prefixes: Sequence[IPNetwork], attrs: RouteAttributes, ctx: UpdateContext) -> list[bytes]:
    """UPDATE messages announcing ``prefixes`` (one family) with ``attrs``."""
    if not prefixes:
        return []
    afi = afi_of(prefixes[0])
    base = encode_path_attributes(attrs, ctx, afi)
    out = []
    if afi == AFI_IPV4:
        budget = MAX_MESSAGE_LEN - HEADER_LEN - 4 - len(base)
        for blob in _chunks(prefixes, budget):
            out.append(frame(MSG_UPDATE, struct.pack("!H", 0) + struct.pack("!H", len(base)) + base + blob))
    else:
        # 4 bytes of update lengths, 4 of the attribute header, MP_REACH header and next hops.
        budget = MAX_MESSAGE_LEN - HEADER_LEN - 4 - len(base) - 4 - len(_mp_reach(ctx, b""))
        for blob in _chunks(prefixes, budget):
            attrs_bytes = base + _attr(FLAG_OPTIONAL, ATTR_MP_REACH_NLRI, _mp_reach(ctx, blob))
            out.append(frame(MSG_UPDATE, struct.pack("!H", 0) + struct.pack("!H", len(attrs_bytes)) + attrs_bytes))
    return out


def encode_withdraw(prefixes: Sequence[IPNetwork]) -> list[bytes]:
    """UPDATE messages withdrawing ``prefixes`` (one family)."""
    if not prefixes:
        return []
    out = []
    if afi_of(prefixes[0]) == AFI_IPV4:
        for blob in _chunks(prefixes, MAX_MESSAGE_LEN - HEADER_LEN - 4):
            out.append(frame(MSG_UPDATE, struct.pack("!H", len(blob)) + blob + struct.pack("!H", 0)))
    else:
        for blob in _chunks(prefixes, MAX_MESSAGE_LEN - HEADER_LEN - 4 - 4 - 3):
            attr = _attr(FLAG_OPTIONAL, ATTR_MP_UNREACH_NLRI, struct.pack("!HB", AFI_IPV6, SAFI_UNICAST) + blob)
            out.append(frame(MSG_UPDATE, struct.pack("!HH", 0, len(attr)) + attr))
    return out


def encode_end_of_rib(afi: int, safi: int = SAFI_UNICAST) -> bytes:
    if afi == AFI_IPV4:
        return frame(MSG_UPDATE, struct.pack("!HH", 0, 0))
    attr = _attr(FLAG_OPTIONAL, ATTR_MP_UNREACH_NLRI, struct.pack("!HB", afi, safi))
    return frame(MSG_UPDATE, struct.pack("!HH", 0, len(attr)) + attr)


def decode_update(body: bytes) -> Update:
    if len(body) < 4:
        raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_ATTRIBUTE_LIST, "UPDATE shorter than 4 bytes")
    (wlen,) = struct.unpack("!H", body[:2])
    if 2 + wlen + 2 > len(body):
        raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_ATTRIBUTE_LIST, f"withdrawn length {wlen} overruns UPDATE")
    withdrawn = decode_prefixes(body[2:2 + wlen], AFI_IPV4)
    (alen,) = struct.unpack("!H", body[2 + wlen:4 + wlen])
    attr_start = 4 + wlen
    if attr_start + alen > len(body):
        raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_ATTRIBUTE_LIST, f"attribute length {alen} overruns UPDATE")
    attributes = decode_path_attributes(body[attr_start:attr_start + alen])
    nlri = decode_prefixes(body[attr_start + alen:], AFI_IPV4)
    mp_reach: tuple[IPNetwork, ...] = ()
    next_hops: tuple[IPAddress, ...] = ()
    mp_unreach: tuple[IPNetwork, ...] = ()
    eor: tuple[int, int] | None = None
    seen: set[int] = set()
    for attr in attributes:
        if attr.type_code in seen and attr.type_code in (ATTR_MP_REACH_NLRI, ATTR_MP_UNREACH_NLRI):
            raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_ATTRIBUTE_LIST, f"attribute {attr.type_code} repeated")
        seen.add(attr.type_code)
        if attr.type_code == ATTR_MP_REACH_NLRI:
            mp_reach, next_hops = _decode_mp_reach(attr.value)
        elif attr.type_code == ATTR_MP_UNREACH_NLRI:
            if len(attr.value) < 3:
                raise BgpDecodeError(ERR_UPDATE, SUB_ATTRIBUTE_LENGTH_ERROR, "MP_UNREACH_NLRI shorter than 3 bytes")
            afi, safi = struct.unpack("!HB", attr.value[:3])
            if len(attr.value) == 3 and len(attributes) == 1:
                eor = (afi, safi)
            if afi in (AFI_IPV4, AFI_IPV6) and safi == SAFI_UNICAST:
                mp_unreach = decode_prefixes(attr.value[3:], afi)
    if not withdrawn and not attributes and not nlri:
        eor = IPV4_UNICAST
    return Update(withdrawn, attributes, nlri, mp_reach, next_hops, mp_unreach, eor)


def _decode_mp_reach(value: bytes) -> tuple[tuple[IPNetwork, ...], tuple[IPAddress, ...]]:
    if len(value) < 5:
        raise BgpDecodeError(ERR_UPDATE, SUB_ATTRIBUTE_LENGTH_ERROR, "MP_REACH_NLRI shorter than 5 bytes")
    afi, safi, nh_len = struct.unpack("!HBB", value[:4])
    nh = value[4:4 + nh_len]
    if len(nh) != nh_len or len(value) < 5 + nh_len:
        raise BgpDecodeError(ERR_UPDATE, SUB_ATTRIBUTE_LENGTH_ERROR, "MP_REACH_NLRI next hop overruns attribute")
    if safi != SAFI_UNICAST or afi not in (AFI_IPV4, AFI_IPV6):
        return (), ()  # a family we did not negotiate: ignored
    hops: list[IPAddress] = []
    if nh_len in (16, 32):
        hops = [ipaddress.IPv6Address(nh[i:i + 16]) for i in range(0, nh_len, 16)]
    elif nh_len == 4:
        hops = [ipaddress.IPv4Address(nh)]
    # Skip the reserved byte after the next hop.
    return decode_prefixes(value[5 + nh_len:], afi), tuple(hops)


def decode_path_attributes(data: bytes) -> tuple[PathAttribute, ...]:
    out: list[PathAttribute] = []
    pos = 0
    while pos < len(data):
        if pos + 3 > len(data):
            raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_ATTRIBUTE_LIST, "truncated attribute header")
        flags, type_code = data[pos], data[pos + 1]
        if flags & FLAG_EXTENDED_LENGTH:
            if pos + 4 > len(data):
                raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_ATTRIBUTE_LIST, "truncated attribute header")
            (length,) = struct.unpack("!H", data[pos + 2:pos + 4])
            start = pos + 4
        else:
            length = data[pos + 2]
            start = pos + 3
        value = data[start:start + length]
        if len(value) != length:
            raise BgpDecodeError(ERR_UPDATE, SUB_ATTRIBUTE_LENGTH_ERROR,
                                 f"attribute {type_code} length {length} overruns attributes", data[pos:start])
        out.append(PathAttribute(flags, type_code, value))
        pos = start + length
    return tuple(out)


def decode_as_path(value: bytes, four_octet: bool) -> tuple[int, ...]:
    """Flatten AS_PATH segments (used by tests and for logging peer routes)."""
    width = 4 if four_octet else 2
    out: list[int] = []
    pos = 0
    while pos < len(value):
        if pos + 2 > len(value):
            raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_AS_PATH, "truncated AS_PATH segment")
        count = value[pos + 1]
        seg = value[pos + 2:pos + 2 + count * width]
        if len(seg) != count * width:
            raise BgpDecodeError(ERR_UPDATE, SUB_MALFORMED_AS_PATH, "AS_PATH segment overruns attribute")
        fmt = "!I" if four_octet else "!H"
        out.extend(struct.unpack(fmt, seg[i:i + width])[0] for i in range(0, len(seg), width))
        pos += 2 + count * width
    return tuple(out)
