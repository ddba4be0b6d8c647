"""BgpSpeaker: owns the peer sessions, applies advertisement policy, reports status.

The daemon tells it *what this node should announce* (``set_announcements``);
the manager decides *to whom and how* from the advertisement policy and sends
each peer only the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from ..core.dataplane import IPAddress
from ..metrics import Family, Labels, Sample
from . import codec
from .bfd import BfdSession, BfdState, BfdTransport
from .codec import IPNetwork, RouteAttributes
from .config import BgpConfig, PeerConfig, RouteAdvertisement
from .session import BgpSession, State, set_md5, set_ttl

_PEER = ("node", "peer", "name")
BGP_FAMILIES: dict[str, Family] = {
    "bgp_session_up": Family("gauge", "1 if the BGP session is Established, else 0", _PEER),
    "bgp_session_state": Family(
        "gauge", "BGP FSM state: 1=Idle 2=Connect 3=Active 4=OpenSent 5=OpenConfirm 6=Established", _PEER),
    "bgp_prefixes_advertised": Family("gauge", "Prefixes currently advertised to the peer", _PEER),
    "bgp_updates_sent_total": Family("counter", "UPDATE messages sent to the peer", _PEER),
    "bgp_updates_received_total": Family("counter", "UPDATE messages received from the peer (ignored)", _PEER),
    "bgp_notifications_sent_total": Family("counter", "NOTIFICATION messages sent to the peer", _PEER),
    "bgp_notifications_received_total": Family("counter", "NOTIFICATION messages received from the peer", _PEER),
    "bgp_established_total": Family("counter", "Transitions of the session to Established", _PEER),
    "bgp_malformed_updates_total": Family("counter", "Malformed UPDATEs received from the peer, ignored", _PEER),
    "bfd_session_up": Family("gauge", "1 if the BFD session with the peer is Up, else 0", _PEER),
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announcement:
    """One service IP this node should announce now (eligibility is the daemon's decision).

    ``advertisements``: the service's own BGP policy (a cluster pool's advertisements); when given, it is
    applied instead of the bgp section's ``advertisements``.
    """

    service: str
    address: IPAddress
    policy: str = "Cluster"  # Cluster | Local
    advertisements: tuple[RouteAdvertisement, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.address, str):  # accept "203.0.113.10" as well as an ipaddress object
            object.__setattr__(self, "address", ipaddress.ip_address(self.address))
        if self.policy not in ("Cluster", "Local"):
            raise ValueError(f"announcement policy must be Cluster or Local, got {self.policy!r}")


def _matches(ad: RouteAdvertisement, ann: Announcement) -> bool:
    if not ad.services and not ad.addresses:
        return True
    if ann.service in ad.services:
        return True
    return any(ann.address.version == net.version and ann.address in net for net in ad.addresses)


def _prefix(addr: IPAddress, length: int) -> IPNetwork:
    # Built from integers: parsing through ip_network() dominated start-up with 10,000 IPs.
    bits = addr.max_prefixlen
    mask = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    if addr.version == 4:
        return ipaddress.IPv4Network((int(addr) & mask, length))
    return ipaddress.IPv6Network((int(addr) & mask, length))


def _for_peer(advertisements: Iterable[RouteAdvertisement], peer: PeerConfig,
              ibgp: bool) -> list[tuple[RouteAdvertisement, RouteAttributes]]:
    """The advertisements that apply to ``peer``, each with the attributes it sends (local-pref only over iBGP)."""
    return [(ad, RouteAttributes(tuple(sorted(set(ad.communities))), tuple(sorted(set(ad.large_communities))),
                                 ad.local_pref if ibgp else None))
            for ad in advertisements
            if not ad.peers or peer.key in ad.peers or str(peer.address) in ad.peers]


def routes_for_peer(config: BgpConfig, peer: PeerConfig,
                    announcements: Iterable[Announcement]) -> dict[IPNetwork, RouteAttributes]:
    """Apply the advertisement policy: the prefixes (with attributes) ``peer`` should get.

    An announcement that carries its own advertisements (a cluster Service's pool) follows those alone;
    every other one the bgp section's advertisements that match it.
    """
    ibgp = peer.asn == config.asn
    ads = _for_peer(config.advertisements, peer, ibgp)
    own: dict[tuple[RouteAdvertisement, ...], list[tuple[RouteAdvertisement, RouteAttributes]]] = {}
    families = {4 if f == "ipv4" else 6 for f in peer.address_families}
    routes: dict[IPNetwork, RouteAttributes] = {}
    for ann in announcements:
        if ann.address.version not in families:
            continue
        if ann.advertisements:
            if ann.advertisements not in own:
                own[ann.advertisements] = _for_peer(ann.advertisements, peer, ibgp)
            applicable = own[ann.advertisements]
        else:
            applicable = [(ad, attrs) for ad, attrs in ads if _matches(ad, ann)]
        for ad, attrs in applicable:
            length = ad.aggregation_length if ann.address.version == 4 else ad.aggregation_length_v6
            if ann.policy == "Local":
                # An aggregate would attract traffic for IPs whose endpoints are elsewhere.
                length = ann.address.max_prefixlen
            net = _prefix(ann.address, length)
            old = routes.get(net)
            if old is not None and old != attrs:
                # Several advertisements for one prefix: union of communities, highest local-pref.
                prefs = [p for p in (old.local_pref, attrs.local_pref) if p is not None]
                routes[net] = RouteAttributes(tuple(sorted(set(old.communities) | set(attrs.communities))),
                                              tuple(sorted(set(old.large_communities) | set(attrs.large_communities))),
                                              max(prefs) if prefs else None)
            else:
                routes[net] = attrs
    return routes


class BgpSpeaker:
    """All BGP (and BFD) sessions of this node."""

    def __init__(self, config: BgpConfig) -> None:
        self.config = config
        self._announcements: tuple[Announcement, ...] = ()
        self._sessions: dict[str, BgpSession] = {}
        self._bfd: dict[str, BfdSession] = {}
        self._bfd_transport: BfdTransport | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._listen_socks: list[socket.socket] = []
        self._started = False
        # Background work (stopping removed peers, re-listening) kept referenced until done.
        self._background: set[asyncio.Task[None]] = set()

    # ---- lifecycle -----------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._bfd_transport = BfdTransport()
        for peer in self.config.peers:
            self._add_peer(peer)
        await self._listen()

    async def stop(self) -> None:
        """Withdraw everything and send Cease to every peer, then close."""
        for server in self._servers:
            server.close()
        self._servers = []
        await asyncio.gather(*(s.stop() for s in self._sessions.values()), *self._background,
                             return_exceptions=True)
        for b in self._bfd.values():
            b.stop()
        self._bfd.clear()
        if self._bfd_transport is not None:
            self._bfd_transport.close()
        self._sessions.clear()
        self._started = False

    def set_announcements(self, announcements: Iterable[Announcement]) -> None:
        self._announcements = tuple(announcements)
        for session in self._sessions.values():
            session.set_routes(routes_for_peer(self.config, session.peer, self._announcements))

    def apply_config(self, new: BgpConfig) -> None:
        """Reload: reset only peers whose session parameters changed; re-apply policy to all."""
        old = self.config
        self.config = new
        if not self._started:
            return  # start() brings up the sessions of the new config
        global_changed = (old.asn, old.router_id) != (new.asn, new.router_id)
        new_peers = {p.key: p for p in new.peers}
        for key in list(self._sessions):
            session = self._sessions[key]
            np = new_peers.get(key)
            if np is None or global_changed or np.session_params() != session.peer.session_params() \
                    or np.address != session.peer.address:
                subcode = codec.SUB_CEASE_PEER_DECONFIGURED if np is None else codec.SUB_CEASE_OTHER_CONFIG_CHANGE
                self._remove_peer(key, subcode)
            else:
                session.peer = np
                if np.bfd != self._bfd_cfg(key):
                    self._stop_bfd(key)
                    self._maybe_start_bfd(session)
        for key, peer in new_peers.items():
            if key not in self._sessions:
                self._add_peer(peer)
        old_listen = {p.key: (p.passive, p.password) for p in old.peers}
        new_listen = {p.key: (p.passive, p.password) for p in new.peers}
        if (old.listen_address, old.listen_port) != (new.listen_address, new.listen_port) or old_listen != new_listen:
            self._spawn(self._relisten())
        self.set_announcements(self._announcements)

    # ---- peers ---------------------------------------------------------

    def _add_peer(self, peer: PeerConfig) -> None:
        session = BgpSession(peer, self.config.asn, self.config.router_id, on_change=self._on_session_change)
        self._sessions[peer.key] = session
        session.set_routes(routes_for_peer(self.config, peer, self._announcements))
        session.start()

    def _remove_peer(self, key: str, subcode: int) -> None:
        session = self._sessions.pop(key)
        self._stop_bfd(key)
        self._spawn(session.stop(subcode))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _bfd_cfg(self, key: str) -> object:
        b = self._bfd.get(key)
        return b.config if b is not None else None

    def _on_session_change(self, session: BgpSession) -> None:
        if session.state == State.ESTABLISHED:
            self._maybe_start_bfd(session)

    def _maybe_start_bfd(self, session: BgpSession) -> None:
        peer = session.peer
        if not peer.bfd.enabled or peer.key in self._bfd or session.local_address is None:
            return
        if self._bfd_transport is None:
            return
        try:
            def on_down(reason: str, s: BgpSession = session) -> None:
                s.reset(f"BFD down: {reason}")

            bfd = BfdSession(peer.address, session.local_address, peer.bfd, self._bfd_transport, on_down=on_down)
            bfd.start()
        except Exception as exc:  # BFD trouble must not take the BGP session down
            log.error("peer %s: cannot start BFD: %s", peer.key, exc)
            session.last_error = f"BFD: {exc}"
            return
        self._bfd[peer.key] = bfd

    def _stop_bfd(self, key: str) -> None:
        b = self._bfd.pop(key, None)
        if b is not None:
            b.stop()

    # ---- passive listening ---------------------------------------------

    async def _relisten(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []
        await self._listen()

    async def _listen(self) -> None:
        passive = [p for p in self.config.peers if p.passive]
        if not passive:
            return
        families = {p.address.version for p in passive}
        for version in sorted(families):
            fam = socket.AF_INET if version == 4 else socket.AF_INET6
            addr = self.config.listen_address
            if addr is not None and addr.version != version:
                continue
            host = str(addr) if addr is not None else ("0.0.0.0" if version == 4 else "::")
            sock = socket.socket(fam, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                for p in passive:
                    if p.password and p.address.version == version:
                        set_md5(sock, p.address, p.password)
                sock.bind((host, self.config.listen_port))
                sock.setblocking(False)
                server = await asyncio.start_server(self._on_inbound, sock=sock)
            except OSError as exc:
                sock.close()
                log.error("cannot listen on %s port %d: %s", host, self.config.listen_port, exc)
                for s in self._sessions.values():
                    if s.peer.passive and s.peer.address.version == version:
                        s.last_error = f"cannot listen: {exc}"
                continue
            self._servers.append(server)

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        addr = ipaddress.ip_address(peername[0].split("%")[0])
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        for session in self._sessions.values():
            if session.peer.address == addr:
                sock = writer.get_extra_info("socket")
                ttl = session.ttl()
                if ttl is not None and sock is not None:
                    with contextlib.suppress(OSError):
                        set_ttl(sock, ttl)
                if session.accept(reader, writer):
                    return
        writer.transport.abort()

    # ---- reporting -----------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        peers = []
        for key, s in self._sessions.items():
            bfd = self._bfd.get(key)
            peers.append({
                "address": str(s.peer.address),
                "asn": s.peer.asn,
                "state": s.state.value,
                "advertised": s.advertised,
                "name": s.peer.name,
                "uptime_s": round(now - s.established_at, 1) if s.established_at is not None else 0,
                "last_error": s.last_error,
                "local_address": str(s.local_address) if s.local_address else None,
                "updates_sent": s.counters.updates_sent,
                "updates_received": s.counters.updates_received,
                "prefixes_received": s.counters.prefixes_received,
                "bfd": bfd.status() if bfd is not None else ({"state": "Disabled"} if not s.peer.bfd.enabled
                                                             else {"state": "Down"}),
            })
        return {"asn": self.config.asn, "router_id": str(self.config.router_id), "peers": peers}

    def metric_samples(self, node: str) -> dict[str, list[Sample]]:
        """The ``lbspeaker_bgp_*`` and ``lbspeaker_bfd_*`` families (``BGP_FAMILIES``), one sample per peer."""
        samples: dict[str, list[Sample]] = {name: [] for name in BGP_FAMILIES}
        order = list(State)
        for key, s in self._sessions.items():
            labels: Labels = (("node", node), ("peer", str(s.peer.address)), ("name", s.peer.name or key))
            c = s.counters
            for name, value in (
                ("bgp_session_up", int(s.state == State.ESTABLISHED)),
                ("bgp_session_state", order.index(s.state) + 1),
                ("bgp_prefixes_advertised", s.advertised),
                ("bgp_updates_sent_total", c.updates_sent),
                ("bgp_updates_received_total", c.updates_received),
                ("bgp_notifications_sent_total", c.notifications_sent),
                ("bgp_notifications_received_total", c.notifications_received),
                ("bgp_established_total", c.established_transitions),
                ("bgp_malformed_updates_total", c.malformed_updates_received),
            ):
                samples[name].append((labels, value))
            if s.peer.bfd.enabled:
                bfd = self._bfd.get(key)
                samples["bfd_session_up"].append((labels, int(bfd is not None and bfd.state == BfdState.UP)))
        return samples
