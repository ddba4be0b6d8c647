"""Make this node accept traffic for the IPs it leads, and undo it.

A led IP gets a local route (``ip route add local IP dev lo table local``),
tagged with our own routing protocol number so leftovers of a killed speaker
are found and removed at the next start. ``arp_ignore=1`` and
``arp_announce=2`` stop the kernel answering ARP for those IPs itself (only
the elected node's responder may) and from using them as ARP sources.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import RT_SCOPE_HOST, rtmsg

from .core.dataplane import IPAddress

log = logging.getLogger(__name__)

RTPROT_LBSPEAKER = 199
TABLE_LOCAL = 255
RTN_LOCAL = 2
ARP_SYSCTLS = {"arp_ignore": 1, "arp_announce": 2}
ACK_TIMEOUT_S = 2.0

# rtnetlink through pyroute2's asyncio API (AsyncIPRoute). Importing pyroute2 costs
# about 10 MB of RSS in the running speaker (docs/reliability.md, "Idle cost").
# Messages are built as rtmsg objects rather than through AsyncIPRoute.route(): its
# argument processing costs about twice the CPU per route, and its dump filters only
# in userspace, after parsing every route of every table.


class RouteError(OSError):
    pass


def route_message(ip: IPAddress, oif: int) -> Any:
    """The rtmsg for our local route to ``ip`` in table local, out of ``oif`` (lo)."""
    msg = rtmsg()
    msg["family"] = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    msg["dst_len"] = ip.max_prefixlen
    msg["table"] = TABLE_LOCAL
    msg["proto"] = RTPROT_LBSPEAKER
    msg["scope"] = RT_SCOPE_HOST
    msg["type"] = RTN_LOCAL
    msg["attrs"] = [("RTA_DST", str(ip)), ("RTA_OIF", oif), ("RTA_TABLE", TABLE_LOCAL)]
    return msg


def dump_request(family: int) -> Any:
    """An RTM_GETROUTE dump of ``family`` that a strict-checking kernel filters itself:
    only table local, our protocol number, type local (not every route of every table)."""
    msg = rtmsg()
    msg["family"] = family
    msg["table"] = TABLE_LOCAL
    msg["proto"] = RTPROT_LBSPEAKER
    msg["type"] = RTN_LOCAL
    return msg


def our_local_route(msg: Any) -> IPAddress | None:
    """The destination of a dumped route if it is one of our local routes (checked here
    too: a kernel without strict checking ignores the dump's filter)."""
    if msg.get("event") != "RTM_NEWROUTE" or msg.get("proto") != RTPROT_LBSPEAKER or msg.get("type") != RTN_LOCAL:
        return None
    table = msg.get_attr("RTA_TABLE") or msg.get("table")
    dst = msg.get_attr("RTA_DST")
    if table != TABLE_LOCAL or not dst:
        return None
    try:
        return ipaddress.ip_address(dst)
    except ValueError:
        return None


class LocalRoutes:
    """Adds and removes our local routes over a private rtnetlink socket (pyroute2's
    AsyncIPRoute, on the speaker's event loop: the loop runs on while the kernel answers)."""

    def __init__(self) -> None:
        self.ipr: Any = None
        self.lo_index = 1
        self.installed: set[IPAddress] = set()  # the kernel said it added them
        # Asked for and not removed since, recorded before the kernel answers: an add whose
        # caller was cancelled (the speaker stopping) or timed out may be in the kernel all
        # the same. remove_requested() removes them all.
        self.requested: set[IPAddress] = set()

    async def open(self) -> None:
        self.ipr = AsyncIPRoute(strict_check=True)
        self.lo_index = socket.if_nametoindex("lo")

    async def close(self) -> None:
        if self.ipr is not None:
            self.ipr.close()
            self.ipr = None

    async def _exchange(self, msg: Any, kind: int, flags: int) -> list[Any]:
        """Send one request and read its answer to the end (bounded in time); an
        error the kernel answers is raised as RouteError with its errno."""
        assert self.ipr is not None
        ipr = self.ipr

        async def answer() -> list[Any]:
            return [reply async for reply in await ipr.nlm_request(msg, kind, flags | NLM_F_REQUEST)]

        try:
            return await asyncio.wait_for(answer(), ACK_TIMEOUT_S)
        except NetlinkError as exc:
            raise RouteError(exc.code, os.strerror(exc.code)) from None
        except TimeoutError:
            raise RouteError(errno.ETIMEDOUT, "no rtnetlink answer") from None

    async def _request(self, kind: int, flags: int, ip: IPAddress) -> None:
        await self._exchange(route_message(ip, self.lo_index), kind, flags | NLM_F_ACK)

    async def add(self, ip: IPAddress) -> None:
        self.requested.add(ip)
        try:
            await self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, ip)
        except OSError as exc:
            log.error("cannot add local route for %s: %s", ip, exc)
            raise
        self.installed.add(ip)

    async def remove(self, ip: IPAddress) -> None:
        self.installed.discard(ip)
        try:
            await self._request(RTM_DELROUTE, 0, ip)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.ENOENT):
                log.error("cannot remove local route for %s: %s", ip, exc)
                return  # it may still be there: still requested
        self.requested.discard(ip)

    async def remove_requested(self) -> int:
        """Remove every route asked for and not removed since, whether or not the kernel
        answered the add (on stop: a take cancelled in flight leaves no route behind)."""
        pending = list(self.requested)
        for ip in pending:
            await self.remove(ip)
        return len(pending)

    async def remove_leftovers(self) -> int:
        """Delete every local route carrying our protocol number (from a killed speaker)."""
        found: list[IPAddress] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in await self._exchange(dump_request(family), RTM_GETROUTE, NLM_F_DUMP):
                ip = our_local_route(msg)
                if ip is not None:
                    found.append(ip)
        for ip in found:
            await self.remove(ip)
        self.installed.clear()
        self.requested.clear()
        return len(found)


def ensure_arp_sysctls() -> tuple[list[str], dict[str, int]]:
    """Set arp_ignore/arp_announce for all interfaces.

    Returns the problems (when not permitted, e.g. unprivileged: the role then
    sets them in sysctl.d) and the values changed, for ``restore_arp_sysctls``.
    """
    problems = []
    changed = {}
    for name, wanted in ARP_SYSCTLS.items():
        path = f"/proc/sys/net/ipv4/conf/all/{name}"
        try:
            with open(path, encoding="ascii") as fh:
                current = int(fh.read().strip())
            if current < wanted:
                with open(path, "w", encoding="ascii") as fh:
                    fh.write(str(wanted))
                changed[name] = current
        except OSError as exc:
            problems.append(f"net.ipv4.conf.all.{name} must be >= {wanted} ({exc.strerror})")
    return problems, changed


def restore_arp_sysctls(changed: dict[str, int]) -> None:
    for name, value in changed.items():
        try:
            with open(f"/proc/sys/net/ipv4/conf/all/{name}", "w", encoding="ascii") as fh:
                fh.write(str(value))
        except OSError as exc:
            log.warning("cannot restore %s: %s", name, exc.strerror)
