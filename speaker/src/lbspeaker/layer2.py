"""Layer 2 announcing: a raw AF_PACKET ARP/NDP responder per interface, and
the gratuitous ARP / unsolicited NA schedule.

The responder answers only for the IPs this node leads on that interface.
A classic BPF filter keeps everything but ARP and ICMPv6 neighbor
solicitations in the kernel, and the node joins the solicited-node multicast
group of every configured IPv6 service address so solicitations reach it
(also through bridges doing MLD snooping) before it is elected.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import heapq
import ipaddress
import logging
import socket
import struct
import time

from . import arp, ndp
from .core.dataplane import IPAddress
from .metrics import Metrics

log = logging.getLogger(__name__)

SOL_PACKET = 263  # not exported by Python 3.11's socket module
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SIOCGIFHWADDR = 0x8927
IPV6_JOIN_GROUP = 20
IPV6_LEAVE_GROUP = 21
GROUPS_PER_SOCKET = 100

# ARP, or IPv6 whose next header is ICMPv6 (no extension headers) of type 135.
BPF_ARP_OR_NS = [
    (0x28, 0, 0, 12),  # ldh [12]        ethertype
    (0x15, 5, 0, 0x0806),  # jeq ARP     -> accept
    (0x15, 0, 5, 0x86DD),  # jeq IPv6    else drop
    (0x30, 0, 0, 20),  # ldb [20]        next header
    (0x15, 0, 3, 58),  # jeq ICMPv6      else drop
    (0x30, 0, 0, 54),  # ldb [54]        ICMPv6 type
    (0x15, 0, 1, 135),  # jeq NS         else drop
    (0x06, 0, 0, 0x40000),  # accept
    (0x06, 0, 0, 0),  # drop
]

# Gratuitous announcements after a takeover or link-up, seconds from the start.
# MetalLB repeats every 1.1 s for 5 s; we start denser to beat lost frames.
ANNOUNCE_SCHEDULE = (0.0, 0.05, 0.25, 0.75, 1.5, 3.0, 5.0)


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def hardware_address(ifname: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        info = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))
    return info[18:24]


class InterfaceResponder:
    """Answers ARP requests and neighbor solicitations on one interface."""

    def __init__(self, ifname: str, metrics: Metrics) -> None:
        self.ifname = ifname
        self.metrics = metrics
        self.leading: set[IPAddress] = set()
        self.groups: dict[ipaddress.IPv6Address, socket.socket] = {}
        self.answering = True
        self.mac = b""
        self.sock: socket.socket | None = None
        self.mcast: list[socket.socket] = []
        self.group_count: dict[socket.socket, int] = {}

    def open(self) -> None:
        self.mac = hardware_address(self.ifname)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        attach_filter(sock, BPF_ARP_OR_NS)
        sock.bind((self.ifname, ETH_P_ALL))
        sock.setblocking(False)
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if self.sock:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for m in self.mcast:
            m.close()  # leaves every group joined on it
        self.mcast.clear()
        self.group_count.clear()
        self.groups.clear()

    # --- multicast groups ---------------------------------------------------
    # Memberships are charged to a socket's option memory (net.core.optmem_max,
    # a few hundred groups), so groups are spread over as many sockets as needed.

    def _group_op(self, group: ipaddress.IPv6Address, op: int, sock: socket.socket) -> bool:
        try:
            index = socket.if_nametoindex(self.ifname)
            sock.setsockopt(socket.IPPROTO_IPV6, op, group.packed + struct.pack("@I", index))
            return True
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.ENODEV):
                log.warning("%s: multicast group %s: %s", self.ifname, group, exc)
            return exc.errno == errno.EADDRINUSE

    def _join(self, group: ipaddress.IPv6Address) -> None:
        target = next((m for m in self.mcast if self.group_count.get(m, 0) < GROUPS_PER_SOCKET), None)
        if target is None:
            target = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.mcast.append(target)
        self._group_op(group, IPV6_JOIN_GROUP, target)
        self.groups[group] = target
        self.group_count[target] = self.group_count.get(target, 0) + 1

    def set_groups(self, addresses: set[ipaddress.IPv6Address]) -> None:
        wanted = {ndp.solicited_node(a) for a in addresses}
        for g in set(self.groups) - wanted:
            sock = self.groups.pop(g)
            self._group_op(g, IPV6_LEAVE_GROUP, sock)
            self.group_count[sock] -= 1
        for g in sorted(wanted - set(self.groups)):
            self._join(g)

    def rejoin_groups(self) -> None:
        """After link-up: the kernel may have dropped our memberships with the link."""
        for g, sock in self.groups.items():
            self._group_op(g, IPV6_LEAVE_GROUP, sock)
            self._group_op(g, IPV6_JOIN_GROUP, sock)

    # --- frames -----------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        if not self.sock:
            return False
        try:
            self.sock.send(frame)
            return True
        except OSError as exc:  # link down: link-up will re-announce
            log.debug("%s: send failed: %s", self.ifname, exc)
            return False

    def announce(self, ip: IPAddress) -> None:
        if not self.mac:
            return
        if ip.version == 4:
            frames: tuple[bytes, ...] = arp.gratuitous(ip, self.mac)
        else:
            frames = (ndp.unsolicited(ip, self.mac),)
        for frame in frames:
            if self.send(frame):
                self.metrics.inc("gratuitous_sent_total", interface=self.ifname)

    def _readable(self) -> None:
        assert self.sock is not None
        for _unused in range(256):  # bounded: yield to the loop under a flood
            try:
                frame, addr = self.sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:  # reported once per link loss; keep the socket
                    continue
                log.warning("%s: receive failed: %s", self.ifname, exc)
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            self.handle(frame)

    def handle(self, frame: bytes) -> bytes | None:
        """Answer one frame if it asks for an IP we lead; return the reply sent."""
        ethertype = frame[12:14]
        try:
            if ethertype == b"\x08\x06":
                req = arp.decode(frame)
                if req.op != arp.OP_REQUEST or req.sender_ip == req.target_ip:
                    return None
                if not self.answering or req.target_ip not in self.leading:
                    return None
                reply = arp.reply_to(req, self.mac)
                if self.send(reply):
                    self.metrics.inc("arp_replies_total", interface=self.ifname)
                return reply
            ns = ndp.decode_ns(frame)
            if not self.answering or ns.target not in self.leading:
                return None
            reply = ndp.reply_to(ns, self.mac)
            if self.send(reply):
                self.metrics.inc("ndp_replies_total", interface=self.ifname)
            return reply
        except arp.MalformedPacket as exc:
            self.metrics.inc("packets_dropped_total", interface=self.ifname, reason="malformed")
            log.debug("%s: dropped frame: %s", self.ifname, exc)
            return None


class Announcer:
    """Repeats gratuitous announcements on ``ANNOUNCE_SCHEDULE`` for each led IP."""

    def __init__(self, responders: dict[str, InterfaceResponder]) -> None:
        self.responders = responders
        # (due, serial, step, ip, ifname); serial is unique, so tuples never compare IPs
        self.queue: list[tuple[float, int, int, IPAddress, str]] = []
        self.current: dict[tuple[IPAddress, str], tuple[int, float]] = {}  # -> (serial, start)
        self.serial = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="announcer")

    def close(self) -> None:
        if self.task:
            self.task.cancel()

    def schedule(self, ip: IPAddress, ifname: str) -> None:
        """(Re)start the announcement schedule of ``ip`` on ``ifname``; the first goes out now."""
        start = time.monotonic()
        self.serial += 1
        self.current[(ip, ifname)] = (self.serial, start)
        responder = self.responders.get(ifname)
        if responder:
            responder.announce(ip)
        heapq.heappush(self.queue, (start + ANNOUNCE_SCHEDULE[1], self.serial, 1, ip, ifname))
        self.wake.set()

    def cancel(self, ip: IPAddress, ifname: str) -> None:
        self.current.pop((ip, ifname), None)

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _due, serial, step, ip, ifname = heapq.heappop(self.queue)
                cur = self.current.get((ip, ifname))
                if cur is None or cur[0] != serial:
                    continue  # cancelled, or superseded by a newer schedule
                responder = self.responders.get(ifname)
                if responder and ip in responder.leading:
                    responder.announce(ip)
                if step + 1 < len(ANNOUNCE_SCHEDULE):
                    heapq.heappush(self.queue, (cur[1] + ANNOUNCE_SCHEDULE[step + 1], serial, step + 1, ip, ifname))
                else:
                    self.current.pop((ip, ifname), None)
            self.wake.clear()
            timeout = self.queue[0][0] - time.monotonic() if self.queue else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)


class L2Announcer:
    """Carries the L2 controller's decisions out (``decisions.l2``): one responder
    per interface, told which IPs it answers for, and the gratuitous schedule.

    It decides nothing: the daemon tells it what to take, re-announce and
    withdraw, and which interfaces and IPv6 groups to serve.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.responders: dict[str, InterfaceResponder] = {}
        self.gratuitous = Announcer(self.responders)

    def start(self) -> None:
        self.gratuitous.start()

    def interfaces(self) -> list[str]:
        return list(self.responders)

    def set_interfaces(self, wanted: set[str]) -> None:
        """Open a responder on every interface of ``wanted``, close the others."""
        for name in list(self.responders):
            if name not in wanted:
                self.responders.pop(name).close()
        for name in sorted(wanted - set(self.responders)):
            responder = InterfaceResponder(name, self.metrics)
            responder.open()
            self.responders[name] = responder

    def set_groups(self, interfaces_of: dict[IPAddress, tuple[str, ...]]) -> None:
        """Join the solicited-node groups of every IPv6 service IP on its interfaces
        (before it is elected: see the module docstring)."""
        for r in self.responders.values():
            r.set_groups({a for a, ifaces in interfaces_of.items() if a.version == 6 and r.ifname in ifaces})

    def take(self, address: IPAddress, interfaces: tuple[str, ...]) -> None:
        """Answer for ``address`` on ``interfaces`` and start its gratuitous announcements."""
        for ifname in interfaces:
            responder = self.responders.get(ifname)
            if responder:
                responder.leading.add(address)
            self.gratuitous.schedule(address, ifname)

    def reannounce(self, address: IPAddress, interfaces: tuple[str, ...]) -> None:
        for ifname in interfaces:
            self.gratuitous.schedule(address, ifname)

    def withdraw(self, address: IPAddress, interfaces: tuple[str, ...]) -> None:
        """Stop answering for ``address`` and cancel its pending gratuitous announcements."""
        for ifname in interfaces:
            self.gratuitous.cancel(address, ifname)
            responder = self.responders.get(ifname)
            if responder:
                responder.leading.discard(address)

    def link_up(self, ifname: str, leading: list[IPAddress]) -> None:
        """``ifname`` came back: re-join its groups, re-announce what this node leads there."""
        responder = self.responders.get(ifname)
        if responder:
            responder.rejoin_groups()
        for address in leading:
            self.gratuitous.schedule(address, ifname)

    def silence(self) -> None:
        """Fall silent at once (stopping): no answer and no gratuitous frame from now on."""
        self.gratuitous.close()
        for r in self.responders.values():
            r.answering = False
            r.leading.clear()

    def close(self) -> None:
        self.gratuitous.close()
        for r in self.responders.values():
            r.close()
