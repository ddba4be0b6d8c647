"""Membership: authenticated, replay-protected UDP heartbeats between speakers.

Wire format (network byte order), followed by an HMAC-SHA256 over all of it:

    magic "LBM1" | kind u8 | reserved u8 | name length u16 | incarnation u64 |
    sequence u64 | payload length u32 | name (UTF-8) | payload

``kind`` is HEARTBEAT or LEAVING. ``incarnation`` is the sender's start time in
nanoseconds and ``sequence`` counts up within it: a receiver accepts a message
only if (incarnation, sequence) is greater than the last it accepted from that
node, so a captured message cannot be replayed. The payload is zlib-compressed
JSON ``{"local": [names of Local services with a healthy endpoint here],
"ready": bool, "families": [4, 6], "lost": {peer: count}}``: the node's
eligibility (Cluster services need none), whether it leads what it is elected
for, the address families its announcing interfaces can serve now (an
interface whose link went down comes back without its IPv6 addresses; such a
node must not take an IPv6 IP it cannot answer for), and how many times (in
this incarnation) it has declared each peer dead.

``lost`` lets a leader learn that a peer took its IPs behind its back: when a
peer misses our heartbeats for a moment (we were busy, or a frame was lost),
it takes over our IPs with gratuitous ARP/NA and gives them back a heartbeat
later, but clients keep the peer's MAC, and we saw nothing change. When a
peer's count for us goes up, we re-announce every IP we lead.

``ready`` makes a rejoin hitless (make before break): a starting speaker is
alive at its first heartbeat but not ready until it has heard its peers and
taken the IPs it is elected for (its gratuitous ARPs are out). Peers leave it
out of their elections until then, so the node covering for it keeps the IPs
until the returning node already answers for them. A payload without
``ready`` (a speaker before this change, during a rolling upgrade) counts as
ready, one without ``families`` as serving both, one without ``lost`` as
having lost nobody.

Secret rotation: after the role changes the secret, the old one stays valid
for a window (``membership.previous_secret_file``, counted from the file's
mtime). Inside it a node accepts both, and until it has heard every peer sign
with the new secret it sends each message twice: with the old secret first
(for the peers the rolling update has not reached; they drop the second as
``bad_mac``), then with the new. No node looks dead to another at any point.

Heartbeats are paced by a thread of their own, not by the asyncio loop: on
each tick it reads what arrived, sends, judges who is dead, and sleeps until
the next send or the next deadline. Arrivals do not wake anything (they wait
in the socket for the next tick, at most one interval), and the asyncio loop
wakes only when something changed. A wakeup of the asyncio loop costs about
200 us of CPU on a small VM, a bare thread wakeup about 60 us
(docs/speaker.md, "Cost"). A tick is the idle cost, so it is kept short: a
poll(2) for the wait, the HMAC from precomputed pads (``MacKey``), and a
heartbeat that says what the peer's last one said checked and taken without
decoding (``Membership._steady``); docs/reliability.md has where a tick's
time goes.
The thread never calls into the daemon: what it sends about this node is a
snapshot the loop refreshes (``nudge``), and what it learns reaches the
daemon through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import os
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Config
from .metrics import Metrics

log = logging.getLogger(__name__)

MAGIC = b"LBM1"
HEARTBEAT = 1
LEAVING = 2
HEADER = struct.Struct("!4sBBHQQI")
SEQUENCE_AT = struct.calcsize("!4sBBHQ")  # the sequence's offset: what comes before it is fixed per sender
MAC_LEN = 32
MAX_PAYLOAD = 60000
# SO_TIMESTAMPNS (asm-generic/socket.h; not in Python's socket module): each datagram carries the
# kernel's receive time, a struct timespec in CLOCK_REALTIME, as a control message of that type.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
TIMESTAMP_SPACE = socket.CMSG_SPACE(TIMESPEC.size)
BOTH_FAMILIES = frozenset({4, 6})


class BadMessage(ValueError):
    """A datagram could not be accepted; ``reason`` is the metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    kind: int
    node: str
    incarnation: int
    sequence: int
    local_healthy: frozenset[str]
    ready: bool = True
    families: frozenset[int] = BOTH_FAMILIES
    lost: tuple[tuple[str, int], ...] = ()  # (peer, times this node declared it dead), sorted


@functools.lru_cache(maxsize=64)
def _encode_payload(
    local_healthy: frozenset[str], ready: bool, families: frozenset[int], lost: tuple[tuple[str, int], ...]
) -> bytes:
    doc: dict[str, object] = {"local": sorted(local_healthy), "ready": ready, "families": sorted(families)}
    if lost:
        doc["lost"] = dict(lost)
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode())


@functools.lru_cache(maxsize=64)
def _decode_payload(payload: bytes) -> tuple[frozenset[str], bool, frozenset[int], tuple[tuple[str, int], ...]]:
    doc = json.loads(zlib.decompress(payload, bufsize=MAX_PAYLOAD))
    ready = doc.get("ready", True)
    if not isinstance(ready, bool):
        raise ValueError(f"ready must be a boolean, got {ready!r}")
    families = doc.get("families", [4, 6])
    if not isinstance(families, list) or not set(families) <= BOTH_FAMILIES:
        raise ValueError(f"families must be a list of 4 and 6, got {families!r}")
    lost = doc.get("lost", {})
    if not isinstance(lost, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in lost.items()
    ):
        raise ValueError(f"lost must map node names to counts, got {lost!r}")
    return frozenset(str(s) for s in doc["local"]), ready, frozenset(families), tuple(sorted(lost.items()))


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class MacKey:
    """HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once.

    ``hmac.digest`` sets OpenSSL 3 up afresh on every call (a fetch by name,
    about 27 us cold on a small VM); a MAC here is two copies of a hash state
    and two updates, about 10 us cold. The same bytes as ``hmac.digest``
    (tests/unit/test_membership.py checks it)."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(key.translate(_IPAD))
        self.outer = hashlib.sha256(key.translate(_OPAD))

    def mac(self, data: bytes) -> bytes:
        inner = self.inner.copy()
        inner.update(data)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=8)
def mac_key(secret: bytes) -> MacKey:
    return MacKey(secret)


def pack(kind: int, name: bytes, incarnation: int, sequence: int, payload: bytes, *, key: MacKey) -> bytes:
    """One signed datagram (the wire format in the module docstring)."""
    body = HEADER.pack(MAGIC, kind, 0, len(name), incarnation, sequence, len(payload)) + name + payload
    return body + key.mac(body)


def encode(msg: Message, secret: bytes) -> bytes:
    payload = _encode_payload(msg.local_healthy, msg.ready, msg.families, msg.lost)
    return pack(msg.kind, msg.node.encode(), msg.incarnation, msg.sequence, payload, key=mac_key(secret))


def decode(data: bytes, secret: bytes) -> Message:
    """Verify and decode a datagram; raise ``BadMessage`` (reason malformed or bad_mac)."""
    if len(data) < HEADER.size + MAC_LEN:
        raise BadMessage("malformed", "datagram too short")
    body, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    magic, kind, _res, name_len, incarnation, sequence, payload_len = HEADER.unpack_from(body)
    if magic != MAGIC:
        raise BadMessage("malformed", "bad magic")
    if HEADER.size + name_len + payload_len != len(body):
        raise BadMessage("malformed", "lengths do not match the datagram")
    if not hmac.compare_digest(mac, mac_key(secret).mac(body)):
        raise BadMessage("bad_mac", "HMAC does not verify")
    if kind not in (HEARTBEAT, LEAVING):
        raise BadMessage("malformed", f"unknown kind {kind}")
    try:
        name = body[HEADER.size : HEADER.size + name_len].decode()
        local, ready, families, lost = _decode_payload(body[HEADER.size + name_len :])
    except (UnicodeDecodeError, zlib.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadMessage("malformed", f"bad payload: {exc}") from None
    return Message(kind, name, incarnation, sequence, local, ready, families, lost)


@dataclass
class Peer:
    name: str
    address: str
    incarnation: int = 0
    sequence: int = 0
    last_seen: float = 0.0
    alive: bool = False
    ready: bool = False
    local_healthy: frozenset[str] = field(default_factory=frozenset)
    families: frozenset[int] = BOTH_FAMILIES
    lost_me: int = 0  # how many times this peer says it declared this node dead
    lost: int = 0  # how many times this node declared this peer dead
    on_current_secret: bool = False  # heard signing with this node's (current) secret
    # the last heartbeat taken the full way, but for its sequence and MAC (Membership._steady)
    head: bytes = b""
    tail: bytes = b""


class Membership:
    """Sends heartbeats to every configured peer and tracks who is alive.

    ``on_change(joined)`` is called whenever the live set or a live node's
    eligibility changes; ``joined`` is true when a node came (back) to life,
    which is when a partition heals.
    """

    def __init__(
        self,
        config: Config,
        local_healthy: Callable[[], frozenset[str]],
        on_change: Callable[[bool], None],
        metrics: Metrics,
        families: Callable[[], frozenset[int]] = lambda: BOTH_FAMILIES,
    ) -> None:
        self.local_healthy = local_healthy
        self.families = families
        self.on_change = on_change
        self.metrics = metrics
        self.incarnation = time.time_ns()
        self.sequence = 0
        self.started = time.monotonic()
        self.ready = False  # set by the daemon once it leads what it is elected for
        self.last_tick = self.started
        self._drained = self.started  # when the pacer last read the socket
        self.sock: socket.socket | None = None
        self.secret = b""
        self.sent = 0
        self.received = 0
        metrics.counter("heartbeats_sent_total", lambda: self.sent)
        metrics.counter("heartbeats_received_total", lambda: self.received)
        self.peers: dict[str, Peer] = {}
        # the pacer thread; every change of peers, sequence or socket happens under the lock
        self._pacer: threading.Thread | None = None
        self._stop = threading.Event()
        self._wakeup: tuple[int, int] | None = None  # a pipe: written to stop the pacer's poll
        self._lost: tuple[tuple[str, int], ...] = ()  # what _send_all says of the peers this node declared dead
        self._next_deadline = float("inf")  # when the first live peer's time runs out
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mine: tuple[frozenset[str], frozenset[int]] = (frozenset(), BOTH_FAMILIES)
        self.configure(config)

    # --- configuration ---------------------------------------------------

    def configure(self, config: Config) -> None:
        """Adopt a (re)loaded config, keeping what is known of nodes still listed."""
        self.config = config
        self.node = config.node
        if config.membership.secret != self.secret:
            for p in self.peers.values():
                p.on_current_secret = False
                p.tail = b""
        self.secret = config.membership.secret
        self._key = mac_key(self.secret)
        self.previous_secret = config.membership.previous_secret
        self.previous_until = config.membership.previous_until
        self.interval = config.membership.interval_ms / 1000.0
        self.dead_after = config.membership.dead_after_s
        with self._lock:
            old = self.peers
            peers = {}
            for n in config.nodes:
                if n.name == config.node:
                    continue
                peer = old.get(n.name) or Peer(n.name, str(n.address))
                peer.address = str(n.address)
                peers[n.name] = peer
            self.peers = peers
            self.by_address = {p.address: p for p in peers.values()}
            self._targets = [(p.address, config.membership.port) for p in peers.values()]
            self._lost = self._lost_counts()

    @property
    def settled(self) -> bool:
        """True once every peer has been heard or had time to be: before that,
        a starting node would think it is alone and grab every IP."""
        if all(p.alive for p in self.peers.values()):
            return True
        return time.monotonic() - self.started >= self.dead_after + self.interval

    def live(self) -> dict[str, frozenset[str]]:
        """The nodes that may lead (this one included; peers alive and ready) and
        the Local services each has healthy."""
        return self.snapshot()[0]

    def families_of(self) -> dict[str, frozenset[int]]:
        """The address families each node in ``live()`` can serve now."""
        return self.snapshot()[1]

    def snapshot(self) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[int]]]:
        """``live()`` and ``families_of()`` from one reading of this node's own state."""
        healthy, families = self._refresh()
        live, fams = {self.node: healthy}, {self.node: families}
        for p in self.peers.values():
            if p.alive and p.ready:
                live[p.name] = p.local_healthy
                fams[p.name] = p.families
        return live, fams

    def mark_ready(self) -> None:
        """This node now answers for every IP it is elected for: say so at once,
        so the nodes covering for it hand those IPs over (module docstring)."""
        if not self.ready:
            self.ready = True
            log.info("ready: peers may now hand over the IPs this node is elected for")
            self.nudge()

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        me = self.config.this_node
        family = socket.AF_INET6 if me.address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(me.address), self.config.membership.port))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._refresh()
        self._stop.clear()
        self._wakeup = os.pipe()
        self._pacer = threading.Thread(target=self._pace, name="membership", daemon=True)
        self._pacer.start()

    async def leave(self) -> None:
        """Tell peers we are going, so they take over without waiting.

        Heartbeats stop first: one sent after LEAVING would bring us back to life.
        """
        self._stop_pacer()
        for _unused in range(3):
            with self._lock:
                self._send_all(LEAVING)
            await asyncio.sleep(0.005)

    def close(self) -> None:
        self._stop_pacer()
        with self._lock:
            if self.sock:
                self.sock.close()
                self.sock = None

    def _stop_pacer(self) -> None:
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            self._stop.set()
            if self._wakeup is not None:
                os.write(self._wakeup[1], b"x")
            pacer.join(timeout=2.0)
        if self._wakeup is not None and (pacer is None or not pacer.is_alive()):
            for fd in self._wakeup:
                os.close(fd)
            self._wakeup = None

    def nudge(self) -> None:
        """Send a heartbeat now (eligibility changed), so peers re-elect at once."""
        if self._pacer is not None:
            with self._lock:
                self._send_all(HEARTBEAT)

    def _refresh(self) -> tuple[frozenset[str], frozenset[int]]:
        """Read this node's eligibility from the daemon (on the loop's thread) for the pacer to send."""
        self._mine = (self.local_healthy(), self.families())
        return self._mine

    def _pace(self) -> None:
        """The pacer thread: read what arrived, send every interval, and in between
        sleep until a peer's time runs out, so detection takes dead_after and not
        up to one interval more. Nothing here wakes the asyncio loop unless
        something changed.

        Each tick is what a heartbeat costs at rest, so it touches little: the
        wait is one poll(2) on a pipe that only a stop writes to (an Event's
        wait allocates a lock and a waiter list each time), and the datagram is
        packed without building a Message (docs/reliability.md, "Idle cost")."""
        assert self._wakeup is not None
        poller = select.poll()
        poller.register(self._wakeup[0], select.POLLIN)
        next_send = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                self._drain()
                now = time.monotonic()
                if now >= next_send:
                    self._send_all(HEARTBEAT)
                    next_send = now + self.interval
                self._expire()
                wake = min(next_send, self._next_deadline)
            # poll(2) takes whole milliseconds, rounded up: at most 1 ms late
            poller.poll(max(0.5, (wake - time.monotonic()) * 1000 + 0.5))

    def previous_secret_valid(self) -> bool:
        """Inside the window after a rotation: the old secret is still accepted (and sent)."""
        return self.previous_secret is not None and time.time() < self.previous_until

    def _send_all(self, kind: int) -> None:
        """One message to every peer; what it says of this node is read fresh on the
        loop's thread, and the loop's last reading on the pacer's.

        After a rotation, until every peer has been heard signing with the new
        secret (or the window ends), each message goes out twice: signed with the
        old secret first, for the peers a rolling update has not reached yet (they
        drop the second as bad_mac), then with the new one."""
        if not self.sock:
            return
        local_healthy, families = self._mine if self._on_pacer() else self._refresh()
        payload = _encode_payload(local_healthy, self.ready, families, self._lost)
        keys = [self._key]
        if self.previous_secret is not None and self.previous_secret_valid() and not all(
            p.on_current_secret for p in self.peers.values()
        ):
            keys.insert(0, mac_key(self.previous_secret))
        name = self.node.encode()
        for key in keys:
            self.sequence += 1
            data = pack(kind, name, self.incarnation, self.sequence, payload, key=key)
            for target in self._targets:
                try:
                    self.sock.sendto(data, target)
                    self.sent += 1
                except OSError:  # link down or no route: the peer will time us out
                    self._count("heartbeats_send_errors_total")

    def _expire(self) -> None:
        now = time.monotonic()
        stalled = now - self.last_tick > 2 * self.interval
        self.last_tick = now
        if stalled:
            # This process did not run for a while (CPU starved, a big reconcile):
            # heartbeats may be waiting unread in the socket, so judge nobody now.
            self._count("membership_stalls_total")
            return
        changed = False
        deadline = float("inf")
        for p in self.peers.values():
            if not p.alive:
                continue
            if now - p.last_seen > self.dead_after:
                p.alive = False
                p.lost += 1
                changed = True
                log.warning("node %s declared dead (no heartbeat for %.0f ms)", p.name, (now - p.last_seen) * 1000)
            else:
                deadline = min(deadline, p.last_seen + self.dead_after)
        self._next_deadline = deadline
        if changed:
            self._lost = self._lost_counts()
            self._changed(False)

    def _lost_counts(self) -> tuple[tuple[str, int], ...]:
        """(peer, times this node declared it dead) for the peers it did, sorted: what heartbeats say."""
        return tuple(sorted((p.name, p.lost) for p in self.peers.values() if p.lost))

    # --- to the daemon, on the loop's thread -------------------------------------

    def _on_pacer(self) -> bool:
        return self._pacer is not None and threading.current_thread() is self._pacer

    def _changed(self, joined: bool) -> None:
        if self._on_pacer() and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_change, joined)
        else:
            self.on_change(joined)

    def _count(self, name: str, **labels: str) -> None:
        """Count on the loop's thread: a scrape there may be reading the counters."""
        if self._on_pacer() and self._loop is not None:
            self._loop.call_soon_threadsafe(functools.partial(self.metrics.inc, name, 1, **labels))
        else:
            self.metrics.inc(name, 1, **labels)

    # --- receiving -----------------------------------------------------------

    def _drain(self) -> None:
        """What arrived since the last tick (bounded: under a flood the rest waits a tick).

        A heartbeat counts from when the kernel received it, not from this tick: a
        datagram read up to one interval late would otherwise push the peer's
        deadline that much later, and detection would take dead_after plus up to
        one interval. The kernel's time is wall-clock; it is moved onto the
        monotonic clock and kept between the previous drain and now, which is
        when it must have arrived whatever the wall clock did meanwhile."""
        if self.sock is None:
            return
        now = time.monotonic()
        offset = time.time() - now
        since, self._drained = self._drained, now
        for _unused in range(256):
            try:
                data, ancillary, _flags, addr = self.sock.recvmsg(MAX_PAYLOAD + 1024, TIMESTAMP_SPACE)
            except BlockingIOError:
                return
            except OSError:  # e.g. ICMP unreachable reported on the socket
                self._count("heartbeats_send_errors_total")
                continue
            arrived = now
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
                    sec, nsec = TIMESPEC.unpack_from(value)
                    arrived = min(now, max(since, sec + nsec / 1e9 - offset))
            self.datagram_received(data, addr, arrived)

    def _steady(self, data: bytes, addr: tuple[str | object, ...], arrived: float) -> bool:
        """The common case, cheaply: a live peer's heartbeat that says what its last
        one said (same kind, name, incarnation and payload; a higher sequence;
        signed with the current secret) only moves its sequence and last_seen.
        Anything else, or anything that does not verify, takes the full way
        (which counts drops). Decoding a heartbeat and its checks cost 43-46 us
        cold on a small VM (docs/reliability.md, "Idle cost"); this skips the
        decoding, the Message and the comparisons."""
        peer = self.by_address.get(addr[0])  # type: ignore[arg-type]
        if (
            peer is None
            or not peer.alive
            or not peer.tail
            or data[:SEQUENCE_AT] != peer.head  # magic, kind, name length, incarnation
            or data[SEQUENCE_AT + 8 : -MAC_LEN] != peer.tail  # payload length, name, payload
        ):
            return False
        sequence = int.from_bytes(data[SEQUENCE_AT : SEQUENCE_AT + 8], "big")
        if sequence <= peer.sequence or not hmac.compare_digest(data[-MAC_LEN:], self._key.mac(data[:-MAC_LEN])):
            return False
        peer.sequence = sequence
        peer.last_seen = arrived
        self.received += 1
        return True

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...], arrived: float | None = None) -> None:
        """One datagram; ``arrived`` is when the kernel received it (monotonic; default now)."""
        if arrived is None:
            arrived = time.monotonic()
        if self._steady(data, addr, arrived):
            return
        try:
            current = True
            try:
                msg = decode(data, self.secret)
            except BadMessage as exc:
                if exc.reason != "bad_mac" or self.previous_secret is None or not self.previous_secret_valid():
                    raise
                msg, current = decode(data, self.previous_secret), False
            peer = self.peers.get(msg.node)
            if peer is None or self.by_address.get(str(addr[0]).split("%", maxsplit=1)[0]) is not peer:
                raise BadMessage("unknown_node", f"from unknown node {msg.node!r} at {addr[0]}")
            if (msg.incarnation, msg.sequence) <= (peer.incarnation, peer.sequence):
                raise BadMessage("replay", f"replayed sequence {msg.sequence} from {msg.node}")
        except BadMessage as exc:
            self._count("heartbeats_dropped_total", reason=exc.reason)
            log.debug("dropped membership datagram from %s: %s", addr[0], exc)
            return
        self.received += 1
        peer.incarnation, peer.sequence = msg.incarnation, msg.sequence
        if current and not peer.on_current_secret:
            peer.on_current_secret = True
            if self.previous_secret is not None:
                log.info("node %s uses the new membership secret", peer.name)
        if msg.kind == LEAVING:
            if peer.alive:
                log.info("node %s is leaving", peer.name)
                peer.alive = False
                self._changed(False)
            return
        peer.last_seen = arrived
        if current:
            peer.head, peer.tail = data[:SEQUENCE_AT], data[SEQUENCE_AT + 8 : -MAC_LEN]
        joined = not peer.alive
        lost_me = dict(msg.lost).get(self.node, 0)
        # It took our IPs for a moment: clients may still hold its MAC (module docstring).
        displaced = lost_me > peer.lost_me and not joined
        peer.lost_me = lost_me  # also when it went down: a restarted peer counts from 0
        if displaced:
            log.warning("node %s had declared this node dead: re-announcing every IP this node leads", peer.name)
        changed = (
            joined
            or peer.local_healthy != msg.local_healthy
            or peer.ready != msg.ready
            or peer.families != msg.families
        )
        if msg.ready and not peer.ready and not joined:
            log.info("node %s is ready", peer.name)
        peer.alive = True
        peer.ready = msg.ready
        peer.local_healthy = msg.local_healthy
        peer.families = msg.families
        if joined:
            log.info("node %s is alive%s", peer.name, "" if msg.ready else " (starting: not leading yet)")
        if changed or displaced:
            self._changed(joined or displaced)
