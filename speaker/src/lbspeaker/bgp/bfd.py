"""BFD (RFC 5880/5881): asynchronous mode, single hop, no authentication.

``encode_packet``/``decode_packet`` are pure; :class:`BfdSession` runs the
state machine with loop timers; :class:`BfdTransport` owns the UDP sockets
(receive on port 3784 checking TTL/hop limit 255, send from 49152-65535 with
TTL 255) and dispatches packets to sessions by the peer's address.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.dataplane import IPAddress
from .config import BfdConfig

log = logging.getLogger(__name__)

BFD_PORT = 3784
PACKET_LEN = 24
SLOW_TX_US = 1_000_000  # RFC 5880 6.8.3: at least one second while not Up
# Linux values; Python's socket module does not export these.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)


class BfdState(enum.IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


STATE_NAMES = {BfdState.ADMIN_DOWN: "AdminDown", BfdState.DOWN: "Down", BfdState.INIT: "Init", BfdState.UP: "Up"}

DIAG_NONE = 0
DIAG_DETECTION_TIME_EXPIRED = 1
DIAG_NEIGHBOR_DOWN = 3
DIAG_ADMIN_DOWN = 7


class BfdDecodeError(ValueError):
    pass


@dataclass(frozen=True)
class BfdPacket:
    state: BfdState
    detect_mult: int
    my_discriminator: int
    your_discriminator: int
    desired_min_tx_us: int
    required_min_rx_us: int
    required_min_echo_rx_us: int = 0
    diag: int = DIAG_NONE
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    auth: bool = False
    demand: bool = False
    multipoint: bool = False
    version: int = 1


def encode_packet(p: BfdPacket) -> bytes:
    flags = (p.poll << 5) | (p.final << 4) | (p.control_plane_independent << 3) | (p.auth << 2) \
        | (p.demand << 1) | int(p.multipoint)
    return struct.pack("!BBBBIIIII", (p.version << 5) | (p.diag & 0x1F), (int(p.state) << 6) | flags,
                       p.detect_mult, PACKET_LEN, p.my_discriminator, p.your_discriminator,
                       p.desired_min_tx_us, p.required_min_rx_us, p.required_min_echo_rx_us)


def decode_packet(data: bytes) -> BfdPacket:
    """Decode and validate (RFC 5880 6.8.6, the checks that need no session)."""
    if len(data) < PACKET_LEN:
        raise BfdDecodeError(f"packet is {len(data)} bytes, less than {PACKET_LEN}")
    vd, sf, mult, length, mine, yours, tx, rx, echo = struct.unpack("!BBBBIIIII", data[:PACKET_LEN])
    version = vd >> 5
    if version != 1:
        raise BfdDecodeError(f"version {version}")
    auth = bool(sf & 0x04)
    if length < (26 if auth else PACKET_LEN) or length > len(data):
        raise BfdDecodeError(f"length field {length} with {len(data)} bytes")
    if mult == 0:
        raise BfdDecodeError("detect multiplier 0")
    if sf & 0x01:
        raise BfdDecodeError("multipoint bit set")
    if mine == 0:
        raise BfdDecodeError("my discriminator 0")
    state = BfdState(sf >> 6)
    if yours == 0 and state not in (BfdState.DOWN, BfdState.ADMIN_DOWN):
        raise BfdDecodeError("your discriminator 0 in state " + STATE_NAMES[state])
    return BfdPacket(state, mult, mine, yours, tx, rx, echo, vd & 0x1F, bool(sf & 0x20), bool(sf & 0x10),
                     bool(sf & 0x08), auth, bool(sf & 0x02), False, version)


class BfdTransport:
    """UDP sockets shared by all BFD sessions of the speaker."""

    def __init__(self) -> None:
        self._rx: dict[int, socket.socket] = {}
        self._sessions: dict[IPAddress, BfdSession] = {}
        self._loop = asyncio.get_running_loop()

    def register(self, session: BfdSession) -> None:
        version = session.peer.version
        if version not in self._rx:
            fam = socket.AF_INET if version == 4 else socket.AF_INET6
            sock = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if version == 4:
                    sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                    sock.bind(("0.0.0.0", BFD_PORT))
                else:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                    sock.bind(("::", BFD_PORT))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            self._rx[version] = sock
            self._loop.add_reader(sock.fileno(), self._on_readable, sock)
        self._sessions[session.peer] = session

    def unregister(self, session: BfdSession) -> None:
        if self._sessions.get(session.peer) is session:
            del self._sessions[session.peer]

    def close(self) -> None:
        for sock in self._rx.values():
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._rx.clear()

    def _on_readable(self, sock: socket.socket) -> None:
        for _unused in range(64):  # bounded: drain what is queued, then yield to the loop
            try:
                data, ancdata, _flags, addr = sock.recvmsg(512, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            ttl = None
            for level, kind, value in ancdata:
                if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
                    ttl = int.from_bytes(value[:4], "little") if len(value) >= 4 else value[0]
            if ttl is not None and ttl != 255:
                continue  # RFC 5881 5: single-hop packets must arrive with TTL 255
            peer = ipaddress.ip_address(addr[0].split("%")[0])
            session = self._sessions.get(peer)
            if session is None:
                continue
            try:
                packet = decode_packet(data)
            except BfdDecodeError as exc:
                log.debug("BFD from %s dropped: %s", peer, exc)
                continue
            session.receive(packet)


class BfdSession:
    """One single-hop asynchronous BFD session."""

    def __init__(self, peer: IPAddress, local: IPAddress, config: BfdConfig, transport: BfdTransport,
                 on_down: Callable[[str], None] | None = None) -> None:
        self.peer = peer
        self.local = local
        self.config = config
        self.transport = transport
        self.on_down = on_down
        self.state = BfdState.DOWN
        self.local_discr = random.randint(1, 0xFFFFFFFF)
        self.remote_discr = 0
        self.remote_state = BfdState.DOWN
        self.remote_min_rx_us = 1
        self.remote_desired_tx_us = SLOW_TX_US
        self.remote_mult = config.multiplier
        self.desired_min_tx_us = SLOW_TX_US
        self.required_min_rx_us = config.min_rx_ms * 1000
        self.diag = DIAG_NONE
        self.up_since: float | None = None
        self.last_down_reason = ""
        self.down_count = 0
        self._poll = False
        self._final_pending = False
        self._sock: socket.socket | None = None
        self._tx_handle: asyncio.TimerHandle | None = None
        self._detect_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        fam = socket.AF_INET if self.peer.version == 4 else socket.AF_INET6
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            if fam == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            # RFC 5881 4: source port 49152-65535, unique per session.
            for _unused in range(64):
                try:
                    sock.bind((str(self.local), random.randint(49152, 65535)))
                    break
                except OSError:
                    continue
            else:
                raise OSError("no free BFD source port")
            sock.setblocking(False)
            self.transport.register(self)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._schedule_tx(0.0)

    def stop(self) -> None:
        if self._sock is not None and self.state == BfdState.UP:
            # Tell the peer we are going away on purpose.
            self.state = BfdState.ADMIN_DOWN
            self.diag = DIAG_ADMIN_DOWN
            with contextlib.suppress(OSError):
                self._send()
        for handle in (self._tx_handle, self._detect_handle):
            if handle is not None:
                handle.cancel()
        self.transport.unregister(self)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def status(self) -> dict[str, Any]:
        return {
            "state": STATE_NAMES[self.state],
            "uptime_s": round(time.monotonic() - self.up_since, 1) if self.up_since else 0,
            "detect_time_ms": round(self.detect_time_s() * 1000),
            "last_down_reason": self.last_down_reason,
            "down_count": self.down_count,
        }

    def detect_time_s(self) -> float:
        return self.remote_mult * max(self.required_min_rx_us, self.remote_desired_tx_us) / 1e6

    # ---- packets ---------------------------------------------------------

    def _packet(self) -> BfdPacket:
        final = self._final_pending
        self._final_pending = False
        return BfdPacket(self.state, self.config.multiplier, self.local_discr, self.remote_discr,
                         self.desired_min_tx_us, self.required_min_rx_us, 0, self.diag,
                         poll=self._poll and not final, final=final)

    def _send(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):  # a down link is what BFD is here to notice
            self._sock.sendto(encode_packet(self._packet()), (str(self.peer), BFD_PORT))

    def _tx_interval_s(self) -> float:
        base = max(self.desired_min_tx_us, self.remote_min_rx_us) / 1e6
        top = 0.9 if self.config.multiplier == 1 else 1.0
        return base * random.uniform(0.75, top)

    def _schedule_tx(self, delay: float) -> None:
        if self._tx_handle is not None:
            self._tx_handle.cancel()
        self._tx_handle = self._loop.call_later(delay, self._tx_tick)

    def _tx_tick(self) -> None:
        self._tx_handle = None
        if self._sock is None:
            return
        if self.remote_min_rx_us != 0:
            self._send()
        self._schedule_tx(self._tx_interval_s())

    def receive(self, p: BfdPacket) -> None:
        if p.your_discriminator not in (0, self.local_discr):
            return
        if p.auth:
            return  # we do not configure authentication, so an authenticated packet is not ours
        self.remote_discr = p.my_discriminator
        self.remote_state = p.state
        self.remote_mult = p.detect_mult
        self.remote_min_rx_us = p.required_min_rx_us
        self.remote_desired_tx_us = p.desired_min_tx_us
        if p.final and self._poll:
            self._poll = False
        old = self.state
        if p.state == BfdState.ADMIN_DOWN:
            if self.state != BfdState.DOWN:
                self._go_down(DIAG_NEIGHBOR_DOWN, "peer signalled AdminDown")
        elif self.state == BfdState.DOWN:
            if p.state == BfdState.DOWN:
                self._set_state(BfdState.INIT)
            elif p.state == BfdState.INIT:
                self._set_state(BfdState.UP)
        elif self.state == BfdState.INIT:
            if p.state in (BfdState.INIT, BfdState.UP):
                self._set_state(BfdState.UP)
        elif self.state == BfdState.UP and p.state == BfdState.DOWN:
            self._go_down(DIAG_NEIGHBOR_DOWN, "peer signalled Down")
        if self.state in (BfdState.INIT, BfdState.UP):
            if self._detect_handle is not None:
                self._detect_handle.cancel()
            self._detect_handle = self._loop.call_later(self.detect_time_s(), self._detection_expired)
        if p.poll or self.state != old:
            self._final_pending = p.poll
            self._send()
            # New timers take effect now: the next periodic packet must not wait out the slow interval.
            self._schedule_tx(self._tx_interval_s())

    def _set_state(self, state: BfdState) -> None:
        if state == self.state:
            return
        log.info("BFD %s: %s -> %s", self.peer, STATE_NAMES[self.state], STATE_NAMES[state])
        self.state = state
        if state == BfdState.UP:
            self.up_since = time.monotonic()
            self.diag = DIAG_NONE
            self.desired_min_tx_us = self.config.min_tx_ms * 1000
            self._poll = True
        elif state == BfdState.DOWN:
            self.up_since = None
            self.desired_min_tx_us = SLOW_TX_US
            self._poll = True

    def _go_down(self, diag: int, reason: str) -> None:
        was_up = self.state == BfdState.UP
        self.diag = diag
        self.remote_discr = 0 if diag == DIAG_DETECTION_TIME_EXPIRED else self.remote_discr
        self._set_state(BfdState.DOWN)
        if self._detect_handle is not None:
            self._detect_handle.cancel()
            self._detect_handle = None
        if was_up:
            self.last_down_reason = reason
            self.down_count += 1
            if self.on_down is not None:
                self.on_down(reason)

    def _detection_expired(self) -> None:
        self._detect_handle = None
        self.remote_min_rx_us = 1
        self._go_down(DIAG_DETECTION_TIME_EXPIRED, "detection time expired")
        self._send()
