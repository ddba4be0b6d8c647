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
import logging

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .config import IPAddress

log = logging.getLogger(__name__)

RTPROT_LBSPEAKER = 199
TABLE_LOCAL = 255
ARP_SYSCTLS = {"arp_ignore": 1, "arp_announce": 2}


class LocalRoutes:
    def __init__(self) -> None:
        self.ipr: AsyncIPRoute | None = None
        self.lo_index = 1
        self.installed: set[IPAddress] = set()

    async def open(self) -> None:
        self.ipr = AsyncIPRoute()
        await self.ipr.setup_endpoint()
        self.lo_index = (await self.ipr.link_lookup(ifname="lo"))[0]

    async def close(self) -> None:
        if self.ipr:
            result = self.ipr.close()
            if asyncio.iscoroutine(result):  # pyroute2 versions differ
                await result
            self.ipr = None

    def _spec(self, ip: IPAddress) -> dict[str, object]:
        return {
            "dst": str(ip),
            "dst_len": ip.max_prefixlen,
            "family": 10 if ip.version == 6 else 2,
            "table": TABLE_LOCAL,
            "type": "local",
            "proto": RTPROT_LBSPEAKER,
            "scope": 254,  # host
            "oif": self.lo_index,
        }

    async def add(self, ip: IPAddress) -> None:
        assert self.ipr is not None
        try:
            await self.ipr.route("replace", **self._spec(ip))
        except NetlinkError as exc:
            log.error("cannot add local route for %s: %s", ip, exc)
            raise
        self.installed.add(ip)

    async def remove(self, ip: IPAddress) -> None:
        assert self.ipr is not None
        self.installed.discard(ip)
        try:
            await self.ipr.route("del", **self._spec(ip))
        except NetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT):
                log.error("cannot remove local route for %s: %s", ip, exc)

    async def remove_leftovers(self) -> int:
        """Delete every local route carrying our protocol number (from a killed speaker)."""
        assert self.ipr is not None
        count = 0
        for family in (2, 10):
            routes = [r async for r in await self.ipr.route("dump", family=family, table=TABLE_LOCAL)]
            for r in routes:
                if r["proto"] != RTPROT_LBSPEAKER:
                    continue
                try:
                    await self.ipr.route(
                        "del",
                        family=family,
                        dst=r.get("dst"),
                        dst_len=r["dst_len"],
                        table=TABLE_LOCAL,
                        type="local",
                        proto=RTPROT_LBSPEAKER,
                    )
                    count += 1
                except NetlinkError:
                    pass
        self.installed.clear()
        return count


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
