import ipaddress

from lbspeaker import arp, ndp
from lbspeaker.layer2 import InterfaceResponder
from lbspeaker.metrics import Metrics

MAC = bytes.fromhex("020000000001")
CLIENT = bytes.fromhex("020000000099")
VIP4 = ipaddress.ip_address("198.51.100.100")
VIP6 = ipaddress.ip_address("2001:db8:1::100")
OTHER = ipaddress.ip_address("198.51.100.101")


def responder():
    r = InterfaceResponder("eth0", Metrics())
    r.mac = MAC
    r.leading = {VIP4, VIP6}
    return r


def test_answers_only_for_led_ips():
    r = responder()
    reply = r.handle(arp.request_for(VIP4, ipaddress.ip_address("198.51.100.50"), CLIENT))
    assert arp.decode(reply).sender_mac == MAC
    assert r.handle(arp.request_for(OTHER, ipaddress.ip_address("198.51.100.50"), CLIENT)) is None
    ns = ndp.encode_ns(mac=CLIENT, src_ip=ipaddress.ip_address("2001:db8:1::50"), target=VIP6)
    assert ndp.decode_na(r.handle(ns)) == (VIP6, MAC)


def test_silent_while_handing_over():
    r = responder()
    r.answering = False
    assert r.handle(arp.request_for(VIP4, ipaddress.ip_address("198.51.100.50"), CLIENT)) is None


def test_bad_frames_are_counted_not_raised():
    r = responder()
    frames = [
        arp.request_for(VIP4, ipaddress.ip_address("198.51.100.50"), CLIENT)[:30],
        ndp.encode_ns(mac=CLIENT, src_ip=ipaddress.ip_address("2001:db8:1::50"), target=VIP6)[:70],
        b"\xff" * 12 + b"\x08\x06" + b"\x00" * 10,
        b"\xff" * 14,
    ]
    for f in frames:
        assert r.handle(f) is None
    assert r.metrics.get("packets_dropped_total", interface="eth0", reason="malformed") == len(frames)
