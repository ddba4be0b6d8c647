"""Property tests: the decoders either decode or raise their own error, never anything else."""

from __future__ import annotations

import contextlib
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from lbspeaker.bgp import bfd, codec

# Per test, not a global profile: other suites in the same run keep their own settings.
FUZZ = settings(max_examples=400, deadline=None)

HEADERS = st.sampled_from([1, 2, 3, 4, 5, 0, 9])


@FUZZ
@given(st.binary(max_size=600))
def test_decode_message_never_crashes(data: bytes) -> None:
    with contextlib.suppress(codec.BgpDecodeError):
        codec.decode_message(codec.MARKER + data)


@FUZZ
@given(HEADERS, st.binary(max_size=600))
def test_decode_body_never_crashes(msg_type: int, body: bytes) -> None:
    with contextlib.suppress(codec.BgpDecodeError):
        codec.decode_body(msg_type, body)


@FUZZ
@given(st.binary(max_size=2000))
def test_split_messages_never_crashes(data: bytes) -> None:
    framed = codec.MARKER + len(data).to_bytes(2, "big") + data
    with contextlib.suppress(codec.BgpDecodeError):
        codec.split_messages(framed)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300)), max_size=6),
       st.binary(max_size=40))
def test_structured_update_never_crashes(attrs: list[tuple[int, int, bytes]], nlri: bytes) -> None:
    # Well-framed attribute lists with arbitrary contents reach the deeper parsers.
    blob = b""
    for flags, type_code, value in attrs:
        if flags & codec.FLAG_EXTENDED_LENGTH:
            blob += bytes([flags, type_code]) + len(value).to_bytes(2, "big") + value
        else:
            blob += bytes([flags, type_code, min(len(value), 255)]) + value[:255]
    body = b"\x00\x00" + len(blob).to_bytes(2, "big") + blob + nlri
    with contextlib.suppress(codec.BgpDecodeError):
        codec.decode_update(body)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)), max_size=10))
def test_open_with_arbitrary_capabilities(caps: list[tuple[int, bytes]]) -> None:
    params = b"".join(bytes([code, len(v)]) + v for code, v in caps)[:253]
    body = bytes([4]) + (64501).to_bytes(2, "big") + (90).to_bytes(2, "big") + bytes([198, 51, 100, 1])
    opt = bytes([2, len(params)]) + params
    with contextlib.suppress(codec.BgpDecodeError):
        codec.decode_open(body + bytes([len(opt)]) + opt)


@FUZZ
@given(st.lists(st.integers(0, 2**32 - 1), max_size=200), st.integers(0, 32))
def test_ipv4_announce_round_trip(addrs: list[int], plen: int) -> None:
    nets = sorted({ipaddress.ip_network((ipaddress.IPv4Address(a), plen), strict=False) for a in addrs})
    ctx = codec.UpdateContext(64501, False, True, ipaddress.IPv4Address("198.51.100.11"), None)
    got: list[object] = []
    for m in codec.encode_announce(nets, codec.RouteAttributes(), ctx):
        got.extend(codec.decode_message(m).nlri)  # type: ignore[union-attr]
    assert got == nets


@FUZZ
@given(st.binary(max_size=64))
def test_bfd_decode_never_crashes(data: bytes) -> None:
    with contextlib.suppress(bfd.BfdDecodeError):
        bfd.decode_packet(data)
