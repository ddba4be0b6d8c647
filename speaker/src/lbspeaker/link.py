"""Link state: watch rtnetlink link messages so the speaker re-announces on link-up."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTM_NEWLINK = 16
NLMSG_HDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


def decode_link_events(data: bytes) -> list[tuple[int, bool]]:
    """(ifindex, usable) for each RTM_NEWLINK in a netlink datagram; usable = admin up with carrier."""
    events = []
    pos = 0
    while pos + NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, pos)
        if length < NLMSG_HDR.size or pos + length > len(data):
            break
        if kind == RTM_NEWLINK and length >= NLMSG_HDR.size + IFINFOMSG.size:
            _family, _type, index, flags, _change = IFINFOMSG.unpack_from(data, pos + NLMSG_HDR.size)
            events.append((index, bool(flags & IFF_UP and flags & IFF_LOWER_UP)))
        pos += (length + 3) & ~3
    return events


def link_usable(ifname: str) -> bool:
    try:
        with open(f"/sys/class/net/{ifname}/operstate", encoding="ascii") as fh:
            return fh.read().strip() in ("up", "unknown")
    except OSError:
        return False


class LinkWatcher:
    """Calls ``on_up(ifname)`` when a watched interface goes from unusable to usable."""

    def __init__(self, on_up: Callable[[str], None]) -> None:
        self.on_up = on_up
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
        self.sock.bind((0, RTMGRP_LINK))
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
                return
            for index, up in decode_link_events(data):
                self._update(index, up)

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
