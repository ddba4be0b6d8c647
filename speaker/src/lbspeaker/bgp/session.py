"""One BGP session to one peer: the finite state machine over asyncio.

The session keeps a desired route set (``set_routes``) and what it last sent;
while Established it sends only the difference, so a changed route set never
resets the session. Connection failures and NOTIFICATIONs end the attempt and
the session reconnects after an exponential back-off with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import codec
from .codec import IPNetwork, RouteAttributes
from .config import PeerConfig

log = logging.getLogger(__name__)

TCP_MD5SIG = 14
OPEN_WAIT_S = 60.0  # how long we wait for the peer's OPEN/KEEPALIVE before giving up
STABLE_AFTER_S = 30.0  # an Established session older than this resets the back-off


class State(enum.Enum):
    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


class SessionError(Exception):
    """Ends the current connection attempt; ``notification`` is sent if set."""

    def __init__(self, message: str, notification: codec.Notification | None = None) -> None:
        self.notification = notification
        super().__init__(message)


@dataclass
class Counters:
    updates_sent: int = 0
    updates_received: int = 0
    notifications_sent: int = 0
    notifications_received: int = 0
    established_transitions: int = 0
    prefixes_received: int = 0
    malformed_updates_received: int = 0


def md5sig_option(peer: ipaddress.IPv4Address | ipaddress.IPv6Address, password: str | None,
                  family: int) -> bytes:
    """The ``struct tcp_md5sig`` for setsockopt(TCP_MD5SIG); an empty key removes it."""
    if family == socket.AF_INET6 and peer.version == 4:
        peer = ipaddress.IPv6Address("::ffff:" + str(peer))
    if peer.version == 4:
        ss = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + peer.packed
    else:
        ss = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + peer.packed + struct.pack("=I", 0)
    key = (password or "").encode()
    return ss.ljust(128, b"\0") + struct.pack("=BBHI", 0, 0, len(key), 0) + key.ljust(80, b"\0")


def set_md5(sock: socket.socket, peer: ipaddress.IPv4Address | ipaddress.IPv6Address, password: str | None) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_option(peer, password, sock.family))


def set_ttl(sock: socket.socket, ttl: int) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        with contextlib.suppress(OSError):  # v4-mapped traffic on a v6 socket
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


class BgpSession:
    """Announcing BGP session with one peer (active or passive)."""

    def __init__(self, peer: PeerConfig, local_asn: int, router_id: ipaddress.IPv4Address,
                 on_change: Callable[[BgpSession], None] | None = None) -> None:
        self.peer = peer
        self.local_asn = local_asn
        self.router_id = router_id
        self.on_change = on_change
        self.state = State.IDLE
        self.last_error = ""
        self.established_at: float | None = None
        self.local_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        self.counters = Counters()
        self.peer_open: codec.Open | None = None
        self._routes: dict[IPNetwork, RouteAttributes] = {}
        self._sent: dict[IPNetwork, RouteAttributes] = {}
        self._dirty = asyncio.Event()
        self._inbound: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._reset_request: str | None = None

    # ---- public API ----------------------------------------------------

    @property
    def ibgp(self) -> bool:
        return self.peer.asn == self.local_asn

    @property
    def advertised(self) -> int:
        return len(self._sent) if self.state == State.ESTABLISHED else 0

    def advertised_prefixes(self) -> list[IPNetwork]:
        return sorted(self._sent, key=lambda n: (n.version, n)) if self.state == State.ESTABLISHED else []

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"bgp-{self.peer.key}")

    def set_routes(self, routes: Mapping[IPNetwork, RouteAttributes]) -> None:
        """Replace the desired route set; the difference is sent while Established."""
        new = dict(routes)
        if new != self._routes:
            self._routes = new
            self._dirty.set()

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Hand over an inbound connection (passive peers); False if refused."""
        if not self.peer.passive or self._stopping or self.state in (State.OPEN_CONFIRM, State.ESTABLISHED):
            return False
        self._inbound.put_nowait((reader, writer))
        return True

    def reset(self, reason: str) -> None:
        """Drop the current connection (for example BFD said the peer is gone); reconnect after."""
        self._reset_request = reason
        if self._writer is not None:
            self._writer.transport.abort()

    async def stop(self, subcode: int = codec.SUB_CEASE_ADMIN_SHUTDOWN, withdraw: bool = True) -> None:
        """Withdraw what was sent, send Cease, close. Idempotent."""
        self._stopping = True
        writer = self._writer
        if writer is not None and self.state == State.ESTABLISHED:
            try:
                data = b""
                if withdraw and self._sent:
                    for fam in (4, 6):
                        data += b"".join(codec.encode_withdraw([n for n in self._sent if n.version == fam]))
                data += codec.encode_notification(codec.Notification(codec.ERR_CEASE, subcode))
                writer.write(data)
                self.counters.notifications_sent += 1
                await asyncio.wait_for(writer.drain(), 2.0)
                # Let the peer read the NOTIFICATION before the FIN/RST.
                writer.write_eof()
                await asyncio.wait_for(writer.drain(), 0.5)
            except (OSError, TimeoutError, RuntimeError):
                pass
        if self._task is not None and writer is not None and self.state == State.ESTABLISHED:
            # The peer closes after reading our Cease; the session task then ends on its own.
            await asyncio.wait({self._task}, timeout=1.0)
        # Abort before waiting for the task: a pending read then fails at once, even if Python 3.11's
        # wait_for swallowed the cancellation.
        self._close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2.0)
        self._set_state(State.IDLE)

    # ---- internals -----------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state != self.state:
            log.info("peer %s: %s -> %s", self.peer.key, self.state.value, state.value)
            self.state = state
            if state == State.ESTABLISHED:
                self.established_at = time.monotonic()
                self.counters.established_transitions += 1
            else:
                self.established_at = None
            if self.on_change is not None:
                self.on_change(self)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None

    async def _run(self) -> None:
        delay = self.peer.connect_retry_time
        while not self._stopping:
            started = time.monotonic()
            was_established = False
            try:
                reader, writer = await self._open_connection()
                self._writer = writer
                await self._speak(reader, writer)
            except asyncio.CancelledError:
                raise
            except SessionError as exc:
                self.last_error = str(exc)
            except TimeoutError:
                self.last_error = self._reset_request or f"no answer from {self.peer.address} port {self.peer.port}"
            except asyncio.IncompleteReadError:
                self.last_error = self._reset_request or "connection closed by peer"
            except OSError as exc:
                self.last_error = self._reset_request or f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let one peer's surprise kill the daemon
                if self._stopping:
                    break
                log.exception("peer %s: unexpected error", self.peer.key)
                self.last_error = f"internal error: {exc!r}"
            finally:
                was_established = self.state == State.ESTABLISHED
                self._close()
                self._sent.clear()
                self._reset_request = None
                if not self._stopping:
                    self._set_state(State.ACTIVE if self.peer.passive else State.IDLE)
            if self._stopping:
                break
            log.warning("peer %s: session ended: %s", self.peer.key, self.last_error)
            if was_established and time.monotonic() - started > STABLE_AFTER_S:
                delay = self.peer.connect_retry_time
            if not self.peer.passive:
                await asyncio.sleep(delay * random.uniform(0.75, 1.0))
                delay = min(delay * 2, self.peer.connect_retry_max)

    async def _open_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.peer.passive:
            self._set_state(State.ACTIVE)
            return await self._inbound.get()
        self._set_state(State.CONNECT)
        family = socket.AF_INET if self.peer.address.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.peer.password:
                set_md5(sock, self.peer.address, self.peer.password)
            ttl = self.ttl()
            if ttl is not None:
                set_ttl(sock, ttl)
            if self.peer.source_address is not None:
                sock.bind((str(self.peer.source_address), 0))
            target = (str(self.peer.address), self.peer.port)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, target), 10.0)
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    def ttl(self) -> int | None:
        if self.peer.ttl is not None:
            return self.peer.ttl
        if self.peer.multihop:
            return 255
        return None if self.ibgp else 1

    def _our_open(self) -> codec.Open:
        fams = tuple(codec.IPV4_UNICAST if f == "ipv4" else codec.IPV6_UNICAST for f in self.peer.address_families)
        gr = None
        if self.peer.graceful_restart:
            # Forwarding is the router's, not ours: a restart of the speaker loses nothing.
            gr = codec.GracefulRestart(self.peer.restart_time, False, tuple((a, s, True) for a, s in fams))
        caps = codec.Capabilities(four_octet_asn=self.local_asn, multiprotocol=fams, route_refresh=True,
                                  graceful_restart=gr)
        return codec.Open(self.local_asn, self.peer.hold_time, self.router_id, caps)

    async def _read(self, reader: asyncio.StreamReader, timeout: float | None) -> codec.Message:
        try:
            header = await asyncio.wait_for(reader.readexactly(codec.HEADER_LEN), timeout)
        except TimeoutError:
            raise SessionError("hold timer expired", codec.Notification(codec.ERR_HOLD_TIMER, 0)) from None
        try:
            msg_type, length = codec.decode_header(header)
        except codec.BgpDecodeError as exc:
            raise SessionError(f"malformed message from peer: {exc}",
                               codec.Notification(exc.code, exc.subcode, exc.data)) from exc
        body = await asyncio.wait_for(reader.readexactly(length - codec.HEADER_LEN), timeout)
        try:
            msg = codec.decode_body(msg_type, body)
        except codec.BgpDecodeError as exc:
            if msg_type == codec.MSG_UPDATE and self.state == State.ESTABLISHED:
                # We use nothing the peer announces. Resetting over a broken UPDATE would withdraw our
                # routes for the router's bug, so it is counted and dropped (the spirit of RFC 7606).
                self.counters.malformed_updates_received += 1
                self.last_error = f"ignored malformed UPDATE from peer: {exc}"
                log.warning("peer %s: %s", self.peer.key, self.last_error)
                return codec.Update()
            raise SessionError(f"malformed message from peer: {exc}",
                               codec.Notification(exc.code, exc.subcode, exc.data)) from exc
        if isinstance(msg, codec.Notification):
            self.counters.notifications_received += 1
            raise SessionError(f"peer sent NOTIFICATION {msg.describe()}")
        return msg

    def _notify(self, writer: asyncio.StreamWriter, note: codec.Notification) -> None:
        with contextlib.suppress(Exception):
            writer.write(codec.encode_notification(note))
            self.counters.notifications_sent += 1

    async def _speak(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handshake_and_run(reader, writer)
        except SessionError as exc:
            if exc.notification is not None:
                self._notify(writer, exc.notification)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.drain(), 1.0)
            raise

    async def _handshake_and_run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sockname = writer.get_extra_info("sockname")
        local = ipaddress.ip_address(sockname[0].split("%")[0])
        if local.version == 6 and local.ipv4_mapped:
            local = local.ipv4_mapped
        self.local_address = local
        ours = self._our_open()
        writer.write(codec.encode_open(ours))
        await writer.drain()
        self._set_state(State.OPEN_SENT)
        msg = await self._read(reader, OPEN_WAIT_S)
        if not isinstance(msg, codec.Open):
            raise SessionError(f"expected OPEN, got {type(msg).__name__}", codec.Notification(codec.ERR_FSM, 1))
        if msg.asn != self.peer.asn:
            raise SessionError(f"peer AS {msg.asn}, configured {self.peer.asn}",
                               codec.Notification(codec.ERR_OPEN, codec.SUB_BAD_PEER_AS))
        if msg.router_id == self.router_id and self.ibgp:
            raise SessionError("peer has our router id",
                               codec.Notification(codec.ERR_OPEN, codec.SUB_BAD_BGP_IDENTIFIER))
        self.peer_open = msg
        hold = min(ours.hold_time, msg.hold_time)
        keepalive = min(self.peer.keepalive_time, hold / 3) if hold else 0
        writer.write(codec.encode_keepalive())
        await writer.drain()
        self._set_state(State.OPEN_CONFIRM)
        msg = await self._read(reader, hold or OPEN_WAIT_S)
        if not isinstance(msg, codec.Keepalive):
            raise SessionError(f"expected KEEPALIVE, got {type(msg).__name__}", codec.Notification(codec.ERR_FSM, 2))
        families = self._families(msg=self.peer_open)
        ctx = self._context(local, self.peer_open)
        self._sent.clear()
        self._dirty.set()
        self._set_state(State.ESTABLISHED)
        self.last_error = ""
        try:
            async with asyncio.TaskGroup() as group:
                if keepalive:
                    group.create_task(self._keepalives(writer, keepalive))
                group.create_task(self._sender(writer, ctx, families))
                await self._receive(reader, writer, hold or None)
        except BaseExceptionGroup as group_error:
            # Surface the first real cause (the reader's, the sender's or the keepalive's).
            raise group_error.exceptions[0] from None

    def _families(self, msg: codec.Open) -> set[int]:
        ours = {4 if f == "ipv4" else 6 for f in self.peer.address_families}
        # A peer without multiprotocol capabilities speaks IPv4 unicast only (RFC 4760).
        theirs = {4 if afi == codec.AFI_IPV4 else 6 for afi, safi in msg.capabilities.multiprotocol
                  if safi == codec.SAFI_UNICAST} or {4}
        return ours & theirs

    def _context(self, local: ipaddress.IPv4Address | ipaddress.IPv6Address, msg: codec.Open) -> codec.UpdateContext:
        nh4 = self.peer.next_hop_ipv4 or (local if local.version == 4 else None)
        nh6 = self.peer.next_hop_ipv6 or (local if local.version == 6 else None)
        return codec.UpdateContext(local_asn=self.local_asn, ibgp=self.ibgp,
                                   four_octet=msg.capabilities.four_octet_asn is not None,
                                   next_hop_v4=nh4, next_hop_v6=nh6)

    async def _keepalives(self, writer: asyncio.StreamWriter, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            writer.write(codec.encode_keepalive())

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float | None) -> None:
        while True:
            msg = await self._read(reader, hold)
            if isinstance(msg, codec.Update):
                # Routes from the peer are accepted and ignored: we only announce.
                self.counters.updates_received += 1
                self.counters.prefixes_received += len(msg.nlri) + len(msg.mp_reach)
            elif isinstance(msg, codec.RouteRefresh):
                self._sent = {n: a for n, a in self._sent.items() if codec.afi_of(n) != msg.afi}
                self._dirty.set()
            elif isinstance(msg, codec.Open):
                raise SessionError("OPEN while Established", codec.Notification(codec.ERR_FSM, 3))

    async def _sender(self, writer: asyncio.StreamWriter, ctx: codec.UpdateContext, families: set[int]) -> None:
        first = True
        skipped: set[int] = set()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            usable = set(families)
            if ctx.next_hop_v4 is None:
                usable.discard(4)
            if ctx.next_hop_v6 is None:
                usable.discard(6)
            desired = {n: a for n, a in self._routes.items() if n.version in usable}
            missing = {n.version for n in self._routes if n.version in families and n.version not in usable}
            if missing - skipped:
                skipped |= missing
                self.last_error = "no next hop for IPv%s routes: set next_hop_ipv%s" % ((min(missing),) * 2)
            withdraw = [n for n in self._sent if n not in desired]
            groups: dict[tuple[int, RouteAttributes], list[IPNetwork]] = {}
            for net, attrs in desired.items():
                if self._sent.get(net) != attrs:
                    groups.setdefault((net.version, attrs), []).append(net)
            messages: list[bytes] = []
            for fam in (4, 6):
                messages += codec.encode_withdraw(sorted(n for n in withdraw if n.version == fam))
            for (_fam, attrs), nets in groups.items():
                messages += codec.encode_announce(sorted(nets), attrs, ctx)
            if first:
                fams = sorted(families)
                messages += [codec.encode_end_of_rib(codec.AFI_IPV4 if f == 4 else codec.AFI_IPV6) for f in fams]
                first = False
            if messages:
                writer.write(b"".join(messages))
                self.counters.updates_sent += len(messages)
                await writer.drain()
            for n in withdraw:
                self._sent.pop(n, None)
            for (_fam, attrs), nets in groups.items():
                for n in nets:
                    self._sent[n] = attrs
