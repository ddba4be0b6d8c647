"""Make this node accept traffic for the IPs it leads, and undo it.

A led IP gets a local route (``ip route add local IP dev lo table local``),
tagged with our own routing protocol number so leftovers of a killed speaker
are found and removed at the next start. ``arp_ignore=1`` and
``arp_announce=2`` stop the kernel answering ARP for those IPs itself (only
the elected node's responder may) and from using them as ARP sources.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct

from .core.dataplane import IPAddress

log = logging.getLogger(__name__)

RTPROT_LBSPEAKER = 199
TABLE_LOCAL = 255
ARP_SYSCTLS = {"arp_ignore": 1, "arp_announce": 2}

# rtnetlink, just what a local route needs (pyroute2 would cost ~20 MB of RSS).
NETLINK_ROUTE = 0
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x100, 0x400, 0x300
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
RTN_LOCAL = 2
RT_SCOPE_HOST = 254
NLMSG_HDR = struct.Struct("=IHHII")
RTMSG = struct.Struct("=BBBBBBBBI")
RTA_HDR = struct.Struct("=HH")


class RouteError(OSError):
    pass


def _attr(kind: int, data: bytes) -> bytes:
    length = RTA_HDR.size + len(data)
    return RTA_HDR.pack(length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def encode_route(kind: int, flags: int, seq: int, ip: IPAddress, oif: int) -> bytes:
    """An RTM_NEWROUTE/RTM_DELROUTE message for a local route to ``ip`` in table local."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    body = RTMSG.pack(family, ip.max_prefixlen, 0, 0, TABLE_LOCAL, RTPROT_LBSPEAKER, RT_SCOPE_HOST, RTN_LOCAL, 0)
    body += _attr(RTA_DST, ip.packed) + _attr(RTA_OIF, struct.pack("=I", oif))
    body += _attr(RTA_TABLE, struct.pack("=I", TABLE_LOCAL))
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, seq, 0) + body


def decode_messages(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos + NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, pos)
        if length < NLMSG_HDR.size or pos + length > len(data):
            break
        out.append((kind, data[pos + NLMSG_HDR.size : pos + length]))
        pos += (length + 3) & ~3
    return out


def decode_our_local_route(payload: bytes) -> tuple[int, bytes] | None:
    """(family, destination) of an RTM_NEWROUTE payload if it is one of our local routes."""
    if len(payload) < RTMSG.size:
        return None
    family, _dlen, _slen, _tos, table, proto, _scope, rtype, _flags = RTMSG.unpack_from(payload)
    if proto != RTPROT_LBSPEAKER or rtype != RTN_LOCAL:
        return None
    pos = RTMSG.size
    dst = b""
    while pos + RTA_HDR.size <= len(payload):
        length, kind = RTA_HDR.unpack_from(payload, pos)
        if length < RTA_HDR.size:
            break
        value = payload[pos + RTA_HDR.size : pos + length]
        if kind == RTA_TABLE and len(value) == 4:
            table = struct.unpack("=I", value)[0]
        elif kind == RTA_DST:
            dst = value
        pos += (length + 3) & ~3
    return (family, dst) if table == TABLE_LOCAL and dst else None


class LocalRoutes:
    """Adds and removes our local routes over a private rtnetlink socket.

    Calls are synchronous: the kernel answers in microseconds, so they do not
    hold the event loop up in any way that matters.
    """

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.seq = 0
        self.lo_index = 1
        self.installed: set[IPAddress] = set()

    async def open(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.settimeout(2.0)
        self.lo_index = socket.if_nametoindex("lo")

    async def close(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None

    def _request(self, kind: int, flags: int, ip: IPAddress) -> None:
        assert self.sock is not None
        self.seq += 1
        self.sock.send(encode_route(kind, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, ip, self.lo_index))
        for _unused in range(16):  # bounded: the ack is the next message for our seq
            for mkind, payload in decode_messages(self.sock.recv(65536)):
                if mkind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    seq = struct.unpack_from("=I", payload, 4 + 8)[0]
                    if seq != self.seq:
                        continue
                    if code:
                        raise RouteError(code, os.strerror(code))
                    return
        raise RouteError(errno.ETIMEDOUT, "no rtnetlink acknowledgement")

    async def add(self, ip: IPAddress) -> None:
        try:
            self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, ip)
        except OSError as exc:
            log.error("cannot add local route for %s: %s", ip, exc)
            raise
        self.installed.add(ip)

    async def remove(self, ip: IPAddress) -> None:
        self.installed.discard(ip)
        try:
            self._request(RTM_DELROUTE, 0, ip)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.ENOENT):
                log.error("cannot remove local route for %s: %s", ip, exc)

    async def remove_leftovers(self) -> int:
        """Delete every local route carrying our protocol number (from a killed speaker)."""
        assert self.sock is not None
        found: list[IPAddress] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            self.seq += 1
            body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
            self.sock.send(NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP,
                                          self.seq, 0) + body)
            done = False
            for _unused in range(10000):  # bounded even for huge tables
                for mkind, payload in decode_messages(self.sock.recv(1 << 20)):
                    if mkind in (NLMSG_DONE, NLMSG_ERROR):
                        done = True
                    elif mkind == RTM_NEWROUTE:
                        ours = decode_our_local_route(payload)
                        if ours:
                            found.append(ipaddress.ip_address(ours[1]))
                if done:
                    break
        for ip in found:
            await self.remove(ip)
        self.installed.clear()
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
