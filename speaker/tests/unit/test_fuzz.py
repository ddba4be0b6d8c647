"""Whatever arrives on the wire, decoders raise only their own error and the
responder never raises: a bad packet must not take the daemon down."""

import contextlib
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from lbspeaker import arp, membership, ndp
from lbspeaker.layer2 import InterfaceResponder
from lbspeaker.metrics import Metrics

SECRET = b"k" * 32
ARP_FRAME = arp.request_for(ipaddress.ip_address("198.51.100.100"), ipaddress.ip_address("198.51.100.50"), b"\2" * 6)
NS_FRAME = ndp.encode_ns(
    mac=b"\2" * 6, src_ip=ipaddress.ip_address("2001:db8:1::50"), target=ipaddress.ip_address("2001:db8:1::100")
)


def mutate(base: bytes):
    return st.tuples(st.integers(0, len(base)), st.binary(max_size=8), st.integers(0, len(base))).map(
        lambda t: (base[: t[0]] + t[1] + base[t[0] :])[: max(t[2], 1)]
    )


frames = st.one_of(st.binary(max_size=200), mutate(ARP_FRAME), mutate(NS_FRAME))


@settings(max_examples=400, deadline=None)
@given(frames)
def test_decoders_raise_only_malformed(frame):
    for decode in (arp.decode, ndp.decode_ns, ndp.decode_na):
        with contextlib.suppress(arp.MalformedPacket):
            decode(frame)


@settings(max_examples=400, deadline=None)
@given(frames)
def test_responder_never_raises(frame):
    r = InterfaceResponder("eth0", Metrics())
    r.mac = b"\1" * 6
    r.leading = {ipaddress.ip_address("198.51.100.100"), ipaddress.ip_address("2001:db8:1::100")}
    r.handle(frame)


heartbeat = membership.encode(membership.Message(membership.HEARTBEAT, "node1", 5, 9, frozenset({"a/b"})), SECRET)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), mutate(heartbeat)))
def test_membership_decode_raises_only_bad_message(data):
    try:
        membership.decode(data, SECRET)
    except membership.BadMessage:
        return
    assert data == heartbeat  # only the authentic message gets through
