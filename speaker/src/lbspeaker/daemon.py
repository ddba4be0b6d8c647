"""The speaker daemon: ties config, membership, health, election and Layer 2
together on one asyncio loop, and handles SIGHUP (reload) and SIGTERM (hand over).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

from . import config as config_mod
from . import election
from .backends import ForwardedService
from .bgp.manager import BGP_FAMILIES, BgpSpeaker
from .bgp.manager import Announcement as BgpAnnouncement
from .config import Config, ServiceConfig
from .core.dataplane import IPAddress
from .errors import ConfigError
from .forwarding import StandaloneForwarding
from .health import HealthChecker
from .host import LocalRoutes, ensure_arp_sysctls, restore_arp_sysctls
from .layer2 import Announcer, InterfaceResponder
from .link import LinkWatcher, unserved_families
from .membership import BOTH_FAMILIES, Membership
from .metrics import FAMILIES, Metrics, Sample
from .status import BgpProvider, StatusServer

log = logging.getLogger(__name__)

# After saying we leave, keep accepting traffic this long, so connections the
# client opened before the new leader's gratuitous ARP still land here.
HANDOVER_GRACE_S = 0.3
# When a partition heals, the node giving an IP back sees the other side before
# (or after) the elected node sees it: ARP must resolve again both ways, and the
# elected node re-announces only once it hears us. Keep accepting until then.
REJOIN_GRACE_S = 2.0
RECONCILE_CHUNK = 64


def _summary(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class Announcement:
    """What this node does for one L2 service IP."""

    address: IPAddress
    services: tuple[str, ...]
    interfaces: tuple[str, ...]
    leader: str | None = None
    announcing: bool = False
    reason: str = "starting"


class Speaker:
    def __init__(self, config_path: str, config: Config, bgp: BgpProvider | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.metrics = Metrics({**FAMILIES, **BGP_FAMILIES})
        self.last_reload_ok = True
        self.health = HealthChecker(self._eligibility_changed, self.metrics)
        self.forwarding = StandaloneForwarding(config.node, self._eligibility_changed, metrics=self.metrics)
        # interface -> address families it has no address of (cannot serve); see link.py
        self.unserved: dict[str, tuple[int, ...]] = {}
        self.membership = Membership(
            config, self._local_healthy, self._membership_changed, self.metrics, families=self._families
        )
        self.routes = LocalRoutes()
        self.responders: dict[str, InterfaceResponder] = {}
        self.announcer = Announcer(self.responders)
        self.links = LinkWatcher(self._link_up, self._addresses_changed)
        self.bgp: BgpSpeaker | None = None
        self._bgp_sent: tuple[BgpAnnouncement, ...] | None = None
        self.status_server = StatusServer(self.status, self.metrics, self._healthy, bgp or self._bgp_status)
        self.metrics.source(self._metric_samples)
        self.announcements: dict[IPAddress, Announcement] = {}
        self.bgp_services: tuple[ServiceConfig, ...] = ()
        self.host_problems: list[str] = []
        self.sysctls_changed: dict[str, int] = {}
        self.stopping = False
        self.stopped = asyncio.Event()
        self._recompute_pending = False
        self._pending_route_removals: set[IPAddress] = set()
        self._draining: set[IPAddress] = set()  # released, still accepting (HANDOVER_GRACE_S)
        self._reannounce_all = False
        self._work: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.metrics.gauge("announced_ips", lambda: sum(a.announcing for a in self.announcements.values()))
        self.metrics.gauge("members", lambda: len(self.membership.live()))

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self.host_problems, self.sysctls_changed = ensure_arp_sysctls()
        for problem in self.host_problems:
            log.error("%s: two nodes may answer ARP", problem)
        await self.routes.open()
        removed = await self.routes.remove_leftovers()
        if removed:
            log.info("removed %d local routes left by a previous run", removed)
        await self.status_server.start(self.config.status.address, self.config.status.port)
        self.links.start()
        self.announcer.start()
        self._apply_config(self.config)
        await self._configure_bgp(self.config)
        await self.membership.start()
        self._work = asyncio.create_task(self._worker(), name="reconcile")
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        loop.add_signal_handler(signal.SIGTERM, self._request_stop)
        loop.add_signal_handler(signal.SIGINT, self._request_stop)
        # Membership settles after dead_after: elect then, even if nothing else happens.
        loop.call_later(self.config.membership.dead_after_s + 2 * self.membership.interval, self._schedule)
        log.info("speaker %s started (%d L2 IPs)", self.config.node, len(self.announcements))

    async def run_until_stopped(self) -> None:
        await self.stopped.wait()

    def _request_stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            asyncio.get_running_loop().create_task(self.stop())

    async def stop(self) -> None:
        """Hand over: stop answering, tell peers, keep accepting briefly, then undo everything."""
        self.stopping = True
        log.info("stopping: handing over %d IPs", sum(a.announcing for a in self.announcements.values()))
        # Fall silent first: an answer or a scheduled gratuitous ARP from us after
        # the new leader's would pull clients back to a node about to drop the IP.
        self.announcer.close()
        for r in self.responders.values():
            r.answering = False
            r.leading.clear()
        if self.bgp is not None:
            # withdraw and Cease at once, so routers move traffic before we go
            await self.bgp.stop()
            self.bgp = None
        await self.membership.leave()
        if any(a.announcing for a in self.announcements.values()):
            await asyncio.sleep(HANDOVER_GRACE_S)
        try:
            if self._work:
                self._work.cancel()
            for a in self.announcements.values():
                if a.announcing:
                    await self.routes.remove(a.address)
                    a.announcing = False
            for addr in self._draining | self._pending_route_removals:
                await self.routes.remove(addr)
            self.membership.close()
            self.health.close()
            await self.forwarding.close()
            self.announcer.close()
            self.links.close()
            for r in self.responders.values():
                r.close()
            self.status_server.close()
            await self.routes.close()
            restore_arp_sysctls(self.sysctls_changed)
        except Exception:
            log.exception("cleanup failed")
        finally:
            self.stopped.set()

    # --- configuration -----------------------------------------------------------

    def _reload(self) -> None:
        try:
            new = config_mod.load(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.metrics.inc("reloads_total", result="error")
            self.last_reload_ok = False
            return
        if (
            new.node != self.config.node
            or new.this_node != self.config.this_node
            or new.membership.port != self.config.membership.port
        ):
            log.error("reload refused: node name, its address or membership.port changed (restart instead)")
            self.metrics.inc("reloads_total", result="error")
            self.last_reload_ok = False
            return
        self.config = new
        self.membership.configure(new)
        self._apply_config(new)
        task = asyncio.get_running_loop().create_task(self._configure_bgp(new))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self.metrics.inc("reloads_total", result="ok")
        self.last_reload_ok = True
        log.info("configuration reloaded")

    def _apply_config(self, cfg: Config) -> None:
        """Match responders, health checks and the announcement table to ``cfg``.

        Announcements whose IP and interfaces did not change keep their state,
        so a reload does not interrupt them.
        """
        wanted_ifaces = set(cfg.interfaces)
        for svc in cfg.l2_services():
            wanted_ifaces.update(cfg.interfaces_for(svc))
        for name in list(self.responders):
            if name not in wanted_ifaces:
                self.responders.pop(name).close()
        for name in sorted(wanted_ifaces - set(self.responders)):
            responder = InterfaceResponder(name, self.metrics)
            responder.open()
            self.responders[name] = responder
        self.links.watch(wanted_ifaces)
        self.unserved = unserved_families(wanted_ifaces)

        self.health.configure(
            {s.name: s.health_check for s in cfg.services if s.external_traffic_policy == "Local" and s.health_check}
        )

        self.forwarding.configure(
            cfg.node,
            [
                ForwardedService(s.name, s.addresses, s.ports, s.external_traffic_policy, s.backends)
                for s in cfg.services
                if s.backends
            ],
        )

        groups = election.group_by_address(cfg.l2_services())
        table: dict[IPAddress, Announcement] = {}
        for addr, svcs in groups.items():
            ifaces = tuple(sorted({i for s in svcs for i in cfg.interfaces_for(s)}))
            names = tuple(s.name for s in svcs)
            old = self.announcements.get(addr)
            if old and old.interfaces == ifaces:
                old.services = names
                table[addr] = old
            else:
                if old and old.announcing:
                    self._withdraw_frames(old)
                    self._pending_route_removals.add(addr)
                table[addr] = Announcement(addr, names, ifaces)
        for addr, old in self.announcements.items():
            if addr not in table and old.announcing:
                self._withdraw_frames(old)
                self._pending_route_removals.add(addr)
        self.announcements = table
        self.services_by_ip = groups
        self.bgp_services = tuple(s for s in cfg.services if s.mode == "bgp")
        for r in self.responders.values():
            r.set_groups({a for a, ann in table.items() if a.version == 6 and r.ifname in ann.interfaces})
        self._schedule()

    # --- events ------------------------------------------------------------------

    def _membership_changed(self, joined: bool) -> None:
        if joined:
            # A node came back (a partition healed): whoever leads afterwards
            # re-announces, or clients keep the other side's MAC (MetalLB #584).
            self._reannounce_all = True
        self._schedule()

    def _local_healthy(self) -> frozenset[str]:
        """Local services healthy here: by their health check, or by a healthy backend on this node."""
        return self.health.snapshot() | self.forwarding.local_healthy()

    def _families(self) -> frozenset[int]:
        """The families this node can serve on every interface it announces on."""
        return BOTH_FAMILIES - {f for missing in self.unserved.values() for f in missing}

    def _addresses_changed(self) -> None:
        unserved = unserved_families(self.responders)
        if unserved != self.unserved:
            for name in sorted(set(unserved) | set(self.unserved)):
                if unserved.get(name) != self.unserved.get(name):
                    missing = ", ".join(f"IPv{f}" for f in unserved.get(name, ())) or "none"
                    log.warning("%s: address families it cannot serve now: %s", name, missing)
            self.unserved = unserved
            self._eligibility_changed()

    def _eligibility_changed(self) -> None:
        self.membership.nudge()
        self._schedule()

    def _link_up(self, ifname: str) -> None:
        responder = self.responders.get(ifname)
        if responder:
            responder.rejoin_groups()
        for a in self.announcements.values():
            if a.announcing and ifname in a.interfaces:
                self.announcer.schedule(a.address, ifname)

    def _schedule(self) -> None:
        self._recompute_pending = True
        self._wake.set()

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.stopping:
                return
            try:
                await self._reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _reconcile(self) -> None:
        for addr in list(self._pending_route_removals):
            if addr not in self.announcements or not self.announcements[addr].announcing:
                await self.routes.remove(addr)
            self._pending_route_removals.discard(addr)
        settled = self.membership.settled
        live = self.membership.live()
        families = self.membership.families_of()
        reannounce, self._reannounce_all = self._reannounce_all, False
        taken: list[str] = []
        released: list[str] = []
        for count, (addr, ann) in enumerate(list(self.announcements.items())):
            if count % RECONCILE_CHUNK == RECONCILE_CHUNK - 1:
                await asyncio.sleep(0)  # let heartbeats and ARP through on big tables
                if self.stopping:
                    return
            result = election.elect(addr, self.services_by_ip.get(addr, []), live, families)
            if result.leader != ann.leader and settled:
                self.metrics.inc("leader_changes_total")
                log.debug("%s: leader %s -> %s", addr, ann.leader, result.leader)
            ann.leader = result.leader
            lead = settled and result.leader == self.config.node
            if not settled:
                ann.reason = "waiting for membership to settle"
            elif addr.version not in families[self.config.node]:
                where = ", ".join(n for n, missing in sorted(self.unserved.items()) if addr.version in missing)
                ann.reason = f"cannot serve IPv{addr.version} here (no IPv{addr.version} address on {where}); " + (
                    f"leader is {result.leader}" if result.leader else "no other node can"
                )
            elif result.leader is None:
                ann.reason = "no eligible node (no live node has a healthy local endpoint)"
            elif lead:
                ann.reason = "elected leader"
            elif self.config.node not in result.candidates:
                ann.reason = f"not eligible here (no healthy local endpoint); leader is {result.leader}"
            else:
                ann.reason = f"{result.leader} ranks higher"
            if lead and not ann.announcing:
                await self._take(ann)
                taken.append(str(addr))
            elif lead and reannounce:
                for ifname in ann.interfaces:
                    self.announcer.schedule(addr, ifname)
            elif not lead and ann.announcing:
                # released because a node came back (a heal): the elected node may not have heard us yet
                await self._release(ann, REJOIN_GRACE_S if reannounce else HANDOVER_GRACE_S)
                released.append(f"{addr} ({ann.reason})")
        self._update_bgp()
        if settled and not self.membership.ready:
            # Only now, with our gratuitous ARPs sent, may the peers covering
            # for us let go (make before break on rejoin).
            self.membership.mark_ready()
        if taken:
            log.info("now announcing %d IPs: %s", len(taken), _summary(taken))
        if released:
            log.info("no longer announcing %d IPs: %s", len(released), _summary(released))
        if reannounce:
            log.info("membership grew: re-announcing every IP this node leads")

    async def _take(self, ann: Announcement) -> None:
        await self.routes.add(ann.address)
        ann.announcing = True
        for ifname in ann.interfaces:
            responder = self.responders.get(ifname)
            if responder:
                responder.leading.add(ann.address)
            self.announcer.schedule(ann.address, ifname)
        log.debug("%s: now announcing on %s", ann.address, ", ".join(ann.interfaces))

    def _withdraw_frames(self, ann: Announcement) -> None:
        for ifname in ann.interfaces:
            self.announcer.cancel(ann.address, ifname)
            responder = self.responders.get(ifname)
            if responder:
                responder.leading.discard(ann.address)

    async def _release(self, ann: Announcement, grace: float = HANDOVER_GRACE_S) -> None:
        """Stop answering for ``ann`` at once; keep accepting its traffic for
        HANDOVER_GRACE_S, as on SIGTERM: packets clients sent to our MAC before
        the new leader's gratuitous ARP reached them still arrive here."""
        self._withdraw_frames(ann)
        ann.announcing = False
        self._draining.add(ann.address)
        asyncio.get_running_loop().call_later(grace, self._drained, ann.address)
        log.debug("%s: no longer announcing (%s)", ann.address, ann.reason)

    def _drained(self, address: IPAddress) -> None:
        # the next reconcile removes the route unless we lead the address again
        self._draining.discard(address)
        self._pending_route_removals.add(address)
        self._schedule()

    # --- BGP -----------------------------------------------------------------------

    async def _configure_bgp(self, cfg: Config) -> None:
        """Start, reconfigure (least churn) or stop the BGP speaker to match ``cfg``."""
        if cfg.bgp is None:
            if self.bgp is not None:
                await self.bgp.stop()
                self.bgp = None
            return
        if self.bgp is None:
            self.bgp = BgpSpeaker(cfg.bgp)
            await self.bgp.start()
        else:
            self.bgp.apply_config(cfg.bgp)
        self._bgp_sent = None
        self._update_bgp()

    def _eligible(self, svc: ServiceConfig, healthy: frozenset[str] | None = None) -> bool:
        """Cluster: every node may announce. Local: only while a local endpoint is healthy here
        (``healthy``: ``_local_healthy()`` when the caller already has it)."""
        return svc.external_traffic_policy != "Local" or svc.name in (
            self._local_healthy() if healthy is None else healthy)

    def _bgp_rows(self) -> list[tuple[ServiceConfig, bool, bool, str]]:
        """Per BGP service: eligible here, announced (eligible and a session up), and why."""
        established = sum(p.get("state") == "Established" for p in self._bgp_status().get("peers", []))
        rows = []
        for svc in self.bgp_services:
            eligible = self._eligible(svc)
            if not eligible:
                reason = "Local: no healthy local endpoint here, withdrawn"
            elif established == 0:
                reason = "no BGP session established"
            elif svc.external_traffic_policy == "Local":
                reason = f"Local: healthy local endpoint, advertised to {established} peer(s)"
            else:
                reason = f"Cluster: every node announces; advertised to {established} peer(s)"
            rows.append((svc, eligible, eligible and established > 0, reason))
        return rows

    def _update_bgp(self) -> None:
        if self.bgp is None or self.stopping:
            return
        wanted = tuple(
            BgpAnnouncement(svc.name, addr, svc.external_traffic_policy)
            for svc in self.bgp_services
            if self._eligible(svc)
            for addr in svc.addresses
        )
        if wanted != self._bgp_sent:
            self.bgp.set_announcements(wanted)
            self._bgp_sent = wanted

    def _bgp_status(self) -> dict[str, Any]:
        return self.bgp.status() if self.bgp is not None else {"peers": []}

    # --- reporting -----------------------------------------------------------------

    def _healthy(self) -> bool:
        return not self.stopping and not self.host_problems

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        members = [
            {
                "name": self.config.node,
                "address": str(self.config.this_node.address),
                "alive": True,
                "ready": self.membership.ready,
            }
        ]
        for p in self.membership.peers.values():
            members.append(
                {
                    "name": p.name,
                    "address": p.address,
                    "alive": p.alive,
                    "ready": p.alive and p.ready,
                    "last_seen_ms": round((now - p.last_seen) * 1000) if p.last_seen else None,
                }
            )
        announcements: list[dict[str, Any]] = []
        for addr, ann in sorted(self.announcements.items(), key=lambda kv: (kv[0].version, kv[0])):
            for service_name in ann.services:
                announcements.append(
                    {
                        "address": str(addr),
                        "service": service_name,
                        "mode": "l2",
                        "announcing": ann.announcing,
                        "leader": ann.leader,
                        "reason": ann.reason,
                        "interfaces": list(ann.interfaces),
                    }
                )
        for svc, _eligible, announced, reason in self._bgp_rows():
            for addr in svc.addresses:
                announcements.append(
                    {
                        "address": str(addr),
                        "service": svc.name,
                        "mode": "bgp",
                        "announcing": announced,
                        "leader": None,
                        "reason": reason,
                    }
                )
        return {
            "node": self.config.node,
            "members": members,
            "settled": self.membership.settled,
            "local_healthy": sorted(self._local_healthy()),
            "forwarding": self.forwarding.status(),
            "host_problems": self.host_problems,
            "announcements": announcements,
        }

    def _metric_samples(self) -> dict[str, list[Sample]]:
        """The labelled families, read from this daemon's state at scrape time (metrics.py)."""
        node = ("node", self.config.node)
        out: dict[str, list[Sample]] = self.bgp.metric_samples(self.config.node) if self.bgp is not None else {}
        announced: list[Sample] = []
        for addr, ann in sorted(self.announcements.items(), key=lambda kv: (kv[0].version, kv[0])):
            for name in ann.services:
                announced.append(((node, ("address", str(addr)), ("service", name), ("mode", "l2")), ann.announcing))
        for svc, _eligible, bgp_announced, _reason in self._bgp_rows():
            for addr in svc.addresses:
                announced.append(((node, ("address", str(addr)), ("service", svc.name), ("mode", "bgp")),
                                  bgp_announced))
        out["address_announced"] = announced
        healthy = self._local_healthy()
        out["service_eligible"] = [
            ((node, ("service", svc.name)), self._eligible(svc, healthy))
            for svc in self.config.services
        ]
        now = time.monotonic()
        peers = sorted(self.membership.peers.values(), key=lambda p: p.name)
        out["member_up"] = [((node, ("member", p.name)), p.alive) for p in peers]
        out["member_heartbeat_age_seconds"] = [
            ((node, ("member", p.name)), now - p.last_seen) for p in peers if p.last_seen
        ]
        out["config_last_reload_successful"] = [((node,), self.last_reload_ok)]
        return out


async def run(config_path: str, bgp: BgpProvider | None = None) -> int:
    cfg = config_mod.load(config_path)
    speaker = Speaker(config_path, cfg, bgp)
    await speaker.start()
    await speaker.run_until_stopped()
    log.info("stopped")
    return 0
