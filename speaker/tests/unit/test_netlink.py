import ipaddress
import struct

from lbspeaker import host, link


def test_route_message_is_a_local_route_in_table_local():
    ip = ipaddress.ip_address("198.51.100.100")
    msg = host.encode_route(host.RTM_NEWROUTE, host.NLM_F_REQUEST, 7, ip, 1)
    [(kind, payload)] = host.decode_messages(msg)
    assert kind == host.RTM_NEWROUTE
    family, dst_len, _s, _t, table, proto, scope, rtype, _f = host.RTMSG.unpack_from(payload)
    assert (family, dst_len, table, proto, scope, rtype) == (2, 32, 255, 199, 254, host.RTN_LOCAL)
    assert host.decode_our_local_route(payload) == (2, ip.packed)


def test_ipv6_route_and_foreign_routes_are_told_apart():
    ip = ipaddress.ip_address("2001:db8:1::100")
    payload = host.decode_messages(host.encode_route(host.RTM_NEWROUTE, 0, 1, ip, 1))[0][1]
    assert host.decode_our_local_route(payload) == (10, ip.packed)
    foreign = bytearray(payload)
    foreign[5] = 2  # proto kernel
    assert host.decode_our_local_route(bytes(foreign)) is None
    assert host.decode_our_local_route(b"\x00" * 4) is None


def test_link_events_decode_up_and_down():
    def newlink(index, flags):
        body = link.IFINFOMSG.pack(0, 1, index, flags, 0)
        return link.NLMSG_HDR.pack(link.NLMSG_HDR.size + len(body), link.RTM_NEWLINK, 0, 0, 0) + body

    up = link.IFF_UP | link.IFF_LOWER_UP
    data = newlink(3, up) + newlink(4, link.IFF_UP) + struct.pack("=IHHII", 16, 3, 0, 0, 0)
    assert link.decode_link_events(data) == ([(3, True), (4, False)], False)
    assert link.decode_link_events(data[:10]) == ([], False)


def test_address_events_are_noticed():
    body = b"\x0a\x40\x00\x00" + struct.pack("=I", 3)  # ifaddrmsg: family, prefixlen, flags, scope, index
    msg = link.NLMSG_HDR.pack(link.NLMSG_HDR.size + len(body), link.RTM_DELADDR, 0, 0, 0) + body
    assert link.decode_link_events(msg) == ([], True)


def test_ipv6_interfaces_count_only_usable_global_addresses(tmp_path):
    table = tmp_path / "if_inet6"
    table.write_text(
        "20010db8000100000000000000000011 02 40 00 80     eth0\n"  # global
        "fe80000000000000aca1fffffe000001 02 40 20 80     eth1\n"  # link-local only
        "20010db8000200000000000000000011 03 40 00 c0     eth2\n"  # tentative (DAD running)
        "20010db8000300000000000000000011 04 40 00 88     eth3\n"  # DAD failed
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert link.ipv6_interfaces(str(table)) == {"eth0"}
    assert link.ipv6_interfaces(str(tmp_path / "absent")) == set()


def test_loopback_serves_ipv4_and_a_missing_interface_serves_nothing():
    assert link.has_ipv4("lo")
    assert link.unserved_families(["lbtest-none0"]) == {"lbtest-none0": (4, 6)}
