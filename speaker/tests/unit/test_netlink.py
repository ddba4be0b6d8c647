"""The rtnetlink messages of host.py and link.py, built and read through pyroute2 as the
kernel's answers are (encoded to bytes, parsed back by pyroute2's rtnetlink marshal).
The same code against a real kernel: tests/l2/test_netlink_netns.py."""

import ipaddress
import socket

from lbspeaker import host, link
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl


def _wire(*msgs, kind=None):
    """Encode pyroute2 messages into one datagram and parse it back."""
    data = b""
    for msg in msgs:
        if kind is not None:
            msg["header"]["type"] = kind
        msg["header"]["flags"] = 0
        msg.encode()
        data += msg.data
    return list(MarshalRtnl().parse(data))


def test_route_message_is_our_local_route_in_table_local():
    ip = ipaddress.ip_address("198.51.100.100")
    [msg] = _wire(host.route_message(ip, 1), kind=RTM_NEWROUTE)
    fields = tuple(msg[k] for k in ("family", "dst_len", "table", "proto", "scope", "type"))
    assert fields == (socket.AF_INET, 32, 255, 199, 254, host.RTN_LOCAL)
    assert (msg.get_attr("RTA_DST"), msg.get_attr("RTA_OIF"), msg.get_attr("RTA_TABLE")) == (str(ip), 1, 255)
    assert host.our_local_route(msg) == ip


def test_ipv6_route_and_foreign_routes_are_told_apart():
    ip = ipaddress.ip_address("2001:db8:1::100")
    [ours] = _wire(host.route_message(ip, 1), kind=RTM_NEWROUTE)
    assert (ours["family"], ours["dst_len"]) == (socket.AF_INET6, 128)
    assert host.our_local_route(ours) == ip
    for field, value in (("proto", 2), ("type", 1)):  # proto kernel; a unicast route
        foreign = host.route_message(ip, 1)
        foreign[field] = value
        [msg] = _wire(foreign, kind=RTM_NEWROUTE)
        assert host.our_local_route(msg) is None, field
    main_table = host.route_message(ip, 1)
    main_table["table"] = 254
    main_table["attrs"] = [("RTA_DST", str(ip)), ("RTA_TABLE", 254)]
    assert host.our_local_route(_wire(main_table, kind=RTM_NEWROUTE)[0]) is None
    no_destination = host.route_message(ip, 1)
    no_destination["attrs"] = [("RTA_TABLE", 255)]
    assert host.our_local_route(_wire(no_destination, kind=RTM_NEWROUTE)[0]) is None


def test_the_dump_asks_the_kernel_for_our_routes_only():
    """A strict-checking kernel filters on these fields, and refuses a dump request
    with a destination length or scope set."""
    [msg] = _wire(host.dump_request(socket.AF_INET6), kind=RTM_NEWROUTE)
    fields = tuple(msg[k] for k in ("family", "table", "proto", "type", "dst_len", "scope"))
    assert fields == (socket.AF_INET6, 255, 199, host.RTN_LOCAL, 0, 0)
    assert msg["attrs"] == []


def _link(index, flags):
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = flags
    return msg


def test_link_events_decode_up_and_down():
    up = link.IFF_UP | link.IFF_LOWER_UP
    msgs = _wire(_link(3, up), _link(4, link.IFF_UP), _link(5, link.IFF_LOWER_UP), kind=RTM_NEWLINK)
    assert link.link_events(msgs) == ([(3, True), (4, False), (5, False)], False)
    assert link.link_events([]) == ([], False)


def test_address_events_are_noticed():
    for kind in (RTM_NEWADDR, RTM_DELADDR):
        addr = ifaddrmsg()
        addr["family"] = socket.AF_INET6
        addr["index"] = 3
        addr["prefixlen"] = 64
        addr["attrs"] = [("IFA_ADDRESS", "2001:db8:1::11")]
        assert link.link_events(_wire(addr, kind=kind)) == ([], True)
    mixed = _wire(_link(3, 0), kind=RTM_NEWLINK) + _wire(ifaddrmsg(), kind=RTM_NEWADDR)
    assert link.link_events(mixed) == ([(3, False)], True)


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
