"""Link and address state: rtnetlink link and address messages, so the speaker
re-announces on link-up and knows which address families each interface can
serve (an interface loses its IPv6 addresses when its link goes down)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import socket
import struct
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWLINK = 16
RTM_NEWADDR, RTM_DELADDR = 20, 21
SIOCGIFADDR = 0x8915
IF_INET6 = "/proc/net/if_inet6"
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
NLMSG_HDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


def decode_link_events(data: bytes) -> tuple[list[tuple[int, bool]], bool]:
    """(ifindex, usable) for each RTM_NEWLINK in a netlink datagram (usable = admin
    up with carrier), and whether it carried an address change (RTM_NEWADDR/DELADDR)."""
    events = []
    addresses = False
    pos = 0
    while pos + NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, pos)
        if length < NLMSG_HDR.size or pos + length > len(data):
            break
        if kind == RTM_NEWLINK and length >= NLMSG_HDR.size + IFINFOMSG.size:
            _family, _type, index, flags, _change = IFINFOMSG.unpack_from(data, pos + NLMSG_HDR.size)
            events.append((index, bool(flags & IFF_UP and flags & IFF_LOWER_UP)))
        elif kind in (RTM_NEWADDR, RTM_DELADDR):
            addresses = True
        pos += (length + 3) & ~3
    return events, addresses


def has_ipv4(ifname: str) -> bool:
    """Whether ``ifname`` has an IPv4 address (SIOCGIFADDR: its primary one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("16s16x", ifname.encode()[:15]))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            raise
    return True


def ipv6_interfaces(if_inet6: str = IF_INET6) -> set[str]:
    """Interfaces with a usable global IPv6 address (not tentative, DAD not failed)."""
    names = set()
    try:
        with open(if_inet6, encoding="ascii") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) != 6:
                    continue
                scope, flags = int(fields[3], 16), int(fields[4], 16)
                if scope == 0 and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                    names.add(fields[5])
    except FileNotFoundError:  # IPv6 disabled in this kernel or namespace
        pass
    return names


def unserved_families(ifnames: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """For each interface, the address families (4, 6) it cannot serve now: it has
    no address of that family, so it could answer ARP/NDP but not the traffic."""
    v6 = ipv6_interfaces()
    out = {}
    for name in ifnames:
        missing = tuple(f for f, ok in ((4, has_ipv4(name)), (6, name in v6)) if not ok)
        if missing:
            out[name] = missing
    return out


def link_usable(ifname: str) -> bool:
    try:
        with open(f"/sys/class/net/{ifname}/operstate", encoding="ascii") as fh:
            return fh.read().strip() in ("up", "unknown")
    except OSError:
        return False


class LinkWatcher:
    """Calls ``on_up(ifname)`` when a watched interface goes from unusable to usable,
    and ``on_addresses()`` when any interface gains or loses an address."""

    def __init__(self, on_up: Callable[[str], None], on_addresses: Callable[[], None] = lambda: None) -> None:
        self.on_up = on_up
        self.on_addresses = on_addresses
        self.state: dict[int, tuple[str, bool]] = {}
        self.sock: socket.socket | None = None

    def watch(self, ifnames: set[str]) -> None:
        state = {}
        for name in ifnames:
            try:
                index = socket.if_nametoindex(name)
            except OSError:
                continue
            old = self.state.get(index)
            state[index] = (name, old[1] if old else link_usable(name))
        self.state = state

    def start(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        self.sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self.sock:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        assert self.sock is not None
        for _unused in range(64):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS on overrun: resync from sysfs
                log.debug("netlink: %s", exc)
                for index, (name, _up) in list(self.state.items()):
                    self._update(index, link_usable(name))
                self.on_addresses()
                return
            events, addresses = decode_link_events(data)
            for index, up in events:
                self._update(index, up)
            if addresses:
                self.on_addresses()

    def _update(self, index: int, up: bool) -> None:
        if index not in self.state:
            return
        name, was_up = self.state[index]
        self.state[index] = (name, up)
        if up and not was_up:
            log.info("link %s is up", name)
            self.on_up(name)
        elif was_up and not up:
            log.warning("link %s is down", name)
