"""Link and address state: rtnetlink link and address events (pyroute2's asyncio
API), so the speaker re-announces on link-up and knows which address families each
interface can serve (an interface loses its IPv6 addresses when its link goes down)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK
from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOWER_UP, IFF_UP

log = logging.getLogger(__name__)

EVENT_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
REOPEN_DELAY_S = 1.0  # the second reopen in a row waits this long, each further one twice as long ...
REOPEN_MAX_DELAY_S = 30.0  # ... up to this
SIOCGIFADDR = 0x8915
IF_INET6 = "/proc/net/if_inet6"
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40


def link_events(messages: Iterable[Any]) -> tuple[list[tuple[int, bool]], bool]:
    """(ifindex, usable) for each RTM_NEWLINK among rtnetlink messages (usable = admin
    up with carrier), and whether any of them was an address change (RTM_NEWADDR/DELADDR)."""
    events = []
    addresses = False
    for msg in messages:
        event = msg.get("event")
        if event == "RTM_NEWLINK":
            flags = msg.get("flags") or 0
            events.append((int(msg["index"]), bool(flags & IFF_UP and flags & IFF_LOWER_UP)))
        elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
            addresses = True
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


def reopen_delay(failures: int) -> float:
    """How long to wait before subscribing again after ``failures`` reads in a row ended the
    socket: the first at once (an overrun: events were lost), then a back-off, bounded."""
    if failures <= 1:
        return 0.0
    return min(REOPEN_DELAY_S * float(1 << min(failures - 2, 16)), REOPEN_MAX_DELAY_S)


def link_usable(ifname: str) -> bool:
    try:
        with open(f"/sys/class/net/{ifname}/operstate", encoding="ascii") as fh:
            return fh.read().strip() in ("up", "unknown")
    except OSError:
        return False


class LinkWatcher:
    """Calls ``on_up(ifname)`` when a watched interface goes from unusable to usable,
    and ``on_addresses()`` when any interface gains or loses an address.

    Events arrive on a pyroute2 ``AsyncIPRoute`` bound to the link and address groups,
    read by a task on the speaker's loop (nothing is polled). When the socket
    overflows (ENOBUFS: events were lost), it is replaced by a new one and the state
    is read again from sysfs; so it is when the socket ends without ``close()`` (with a
    warning, and a bounded back-off when that repeats)."""

    def __init__(self, on_up: Callable[[str], None], on_addresses: Callable[[], None] = lambda: None) -> None:
        self.on_up = on_up
        self.on_addresses = on_addresses
        self.state: dict[int, tuple[str, bool]] = {}
        self.ipr: Any = None
        self._reader: asyncio.Task[None] | None = None

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

    async def start(self) -> None:
        """Subscribe before returning: no event after this call is missed."""
        await self._open()
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="link-events")
        self._reader.add_done_callback(self._reader_done)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._close_socket()

    @staticmethod
    def _reader_done(task: asyncio.Task[None]) -> None:
        """Say so if the watch ended on an error (it is never awaited)."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("link events are no longer watched: %r", exc, exc_info=exc)

    async def _open(self) -> None:
        ipr = AsyncIPRoute()
        try:
            await ipr.bind(groups=EVENT_GROUPS)
        except BaseException:
            ipr.close()
            raise
        self.ipr = ipr

    def _close_socket(self) -> None:
        if self.ipr is not None:
            self.ipr.close()
            self.ipr = None

    async def _read(self) -> None:
        failures = 0  # reads in a row that ended the socket
        while self.ipr is not None:
            ipr = self.ipr
            try:
                # one datagram's messages per get(): one on_addresses() per datagram at most
                messages = [msg async for msg in ipr.get()]
            except (OSError, NetlinkError) as exc:  # ENOBUFS on overrun
                log.warning("link events lost (%s): reading link state again", exc)
                failures += 1
                await self._reopen(failures)
                continue
            if not messages:  # pyroute2's socket ended
                if self.ipr is not ipr:
                    return  # close(): ours
                log.warning("link events stopped (the event socket ended): subscribing again")
                failures += 1
                await self._reopen(failures)
                continue
            failures = 0
            try:
                events, addresses = link_events(messages)
                for index, up in events:
                    self._update(index, up)
                if addresses:
                    self.on_addresses()
            except Exception:  # a failing callback must not end the watch
                log.exception("handling link events failed")

    async def _reopen(self, failures: int = 1) -> None:
        """A new socket (pyroute2's cannot be used after an overrun), then the state
        from sysfs: what changed while events were lost is seen either way."""
        self._close_socket()
        await asyncio.sleep(reopen_delay(failures))
        while self.ipr is None:
            try:
                await self._open()
            except (OSError, NetlinkError) as exc:
                log.error("cannot subscribe to link events: %s; retrying", exc)
                await asyncio.sleep(REOPEN_DELAY_S)
        try:  # a failing callback must not end the watch (as in _read)
            for index, (name, _up) in list(self.state.items()):
                self._update(index, link_usable(name))
        except Exception:
            log.exception("handling link state after subscribing again failed")
        try:
            self.on_addresses()
        except Exception:
            log.exception("handling address changes after subscribing again failed")

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
