"""The speaker daemon: the glue between the sources of desired state, the
per-protocol controllers and the announcers, on one asyncio loop.

Sources (``desired``: the config file, later the cluster) say which services
exist; membership, health checks, forwarding and link state say who may lead
and what this node can serve; the controllers (``decisions``) decide what this
node announces and why; ``layer2.L2Announcer``, the local routes and
``bgp.manager.BgpSpeaker`` carry that out. ``/status`` and the per-address
metrics are assembled from the decisions (``status``). SIGHUP reloads, SIGTERM
hands over.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from . import config as config_mod
from .backends import ForwardedService
from .bgp.manager import BGP_FAMILIES, BgpSpeaker
from .bgp.manager import Announcement as BgpAnnouncement
from .config import Config
from .core.dataplane import IPAddress
from .decisions import bgp as bgp_decisions
from .decisions.bgp import BgpController, BgpDecision
from .decisions.l2 import HANDOVER_GRACE_S, L2Action, L2Controller
from .decisions.report import Reports, wanted_reports
from .decisions.view import Eligibility, MembershipView, service_eligible
from .desired import Conflict, DesiredServices, Source, StaticSource, merge
from .errors import ConfigError
from .forwarding import StandaloneForwarding
from .health import HealthChecker
from .host import LocalRoutes, ensure_arp_sysctls, restore_arp_sysctls
from .layer2 import L2Announcer
from .link import LinkWatcher, unserved_families
from .membership import BOTH_FAMILIES, Membership
from .metrics import FAMILIES, Metrics, Sample
from .status import BgpProvider, StatusServer, address_samples, announcement_rows, member_rows

log = logging.getLogger(__name__)

RECONCILE_CHUNK = 64
STOP_WORK_S = 5.0  # on stop, how long the cancelled reconcile may take to end


def _summary(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


class Reporter(Protocol):
    """Tells the cluster which of its Services' addresses this node announces
    (``sources.announcing.ReportWorker``): ``want`` must return at once."""

    def start(self) -> None: ...

    def want(self, wanted: Reports, recorded: Collection[str] = ()) -> None: ...

    def stop(self, flush_s: float = 0.0) -> None: ...


REPORT_FLUSH_S = 2.0  # on SIGTERM, how long the withdrawals of this node's records may take


class Speaker:
    """``sources``: sources of desired state besides the config file's services
    (which always come first, see ``desired.merge``). ``reporter``: where the
    announcements of cluster Services are told (none without a cluster)."""

    def __init__(
        self,
        config_path: str,
        config: Config,
        bgp: BgpProvider | None = None,
        sources: Sequence[Source] = (),
        reporter: Reporter | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.metrics = Metrics({**FAMILIES, **BGP_FAMILIES})
        self.last_reload_ok = True
        self.static = StaticSource(config)
        self.sources: list[Source] = [self.static, *sources]
        self.desired = DesiredServices()
        self._conflicts: tuple[Conflict, ...] = ()
        self.health = HealthChecker(self._eligibility_changed, self.metrics)
        self.forwarding = StandaloneForwarding(config.node, self._eligibility_changed, metrics=self.metrics)
        # interface -> address families it has no address of (cannot serve); see link.py
        self.unserved: dict[str, tuple[int, ...]] = {}
        self.membership = Membership(
            config, self._local_healthy, self._membership_changed, self.metrics, families=self._families
        )
        self.routes = LocalRoutes()
        self.l2 = L2Announcer(self.metrics)
        self.l2_controller = L2Controller(config.node)
        self.bgp_controller = BgpController()
        self.reporter = reporter
        self._reported: Reports | None = None
        self.links = LinkWatcher(self._link_up, self._addresses_changed)
        self.bgp: BgpSpeaker | None = None
        self._bgp_sent: tuple[BgpAnnouncement, ...] | None = None
        self.status_server = StatusServer(self.status, self.metrics, self._healthy, bgp or self._bgp_status)
        self.metrics.source(self._metric_samples)
        self.host_problems: list[str] = []
        self.sysctls_changed: dict[str, int] = {}
        self.stopping = False
        self.stopped = asyncio.Event()
        self._pending_route_removals: set[IPAddress] = set()
        self._draining: set[IPAddress] = set()  # released, still accepting (HANDOVER_GRACE_S)
        self._reannounce_all = False
        self._work: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.metrics.gauge("announced_ips", lambda: len(self.l2_controller.announced()))
        self.metrics.gauge("members", lambda: len(self.membership.live()))
        self.metrics.counter("cluster_report_errors_total", lambda: float(getattr(self.reporter, "failures", 0)))
        self._decide_desired()  # the tables exist (not announced) before start: status and metrics read them

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
        await self.links.start()
        self.l2.start()
        if self.reporter is not None:
            self.reporter.start()
        for source in self.sources:
            await source.start(self._desired_changed)
        self._apply_desired()
        await self._configure_bgp(self.config)
        await self.membership.start()
        self._work = asyncio.create_task(self._worker(), name="reconcile")
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        loop.add_signal_handler(signal.SIGTERM, self._request_stop)
        loop.add_signal_handler(signal.SIGINT, self._request_stop)
        # Membership settles after dead_after: elect then, even if nothing else happens.
        loop.call_later(self.config.membership.dead_after_s + 2 * self.membership.interval, self._schedule)
        log.info("speaker %s started (%d L2 IPs)", self.config.node, len(self.l2_controller.table))

    async def run_until_stopped(self) -> None:
        await self.stopped.wait()

    def _request_stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            asyncio.get_running_loop().create_task(self.stop())

    async def stop(self) -> None:
        """Hand over: stop answering, tell peers, keep accepting briefly, then undo everything."""
        self.stopping = True
        announced = self.l2_controller.announced()
        log.info("stopping: handing over %d IPs", len(announced))
        # Fall silent first: an answer or a scheduled gratuitous ARP from us after
        # the new leader's would pull clients back to a node about to drop the IP.
        self.l2.silence()
        if self.bgp is not None:
            # withdraw and Cease at once, so routers move traffic before we go
            await self.bgp.stop()
            self.bgp = None
        await self.membership.leave()
        if announced:
            await asyncio.sleep(HANDOVER_GRACE_S)
        try:
            if self._work:
                self._work.cancel()
                # A take may be waiting for the kernel's answer to its route add: let the
                # reconcile end before undoing what it asked for (remove_requested below).
                await asyncio.wait({self._work}, timeout=STOP_WORK_S)
            for source in self.sources:
                await source.stop()
            if self.reporter is not None:
                # nothing is announced from here any more: take this node's records off its Services
                self.reporter.want({key: {} for key in self.desired.cluster_services.values()}, self.desired.recorded)
                await asyncio.to_thread(self.reporter.stop, REPORT_FLUSH_S)
            for a in self.l2_controller.announced():
                await self.routes.remove(a.address)
                self.l2_controller.carried_out(L2Action("release", a.address, a.interfaces, "stopping"))
            # the draining and pending removals, and any route whose add was cancelled in flight
            await self.routes.remove_requested()
            self.membership.close()
            self.health.close()
            await self.forwarding.close()
            self.links.close()
            self.l2.close()
            self.status_server.close()
            await self.routes.close()
            restore_arp_sysctls(self.sysctls_changed)
        except Exception:
            log.exception("cleanup failed")
        finally:
            self.stopped.set()

    # --- configuration and desired state -------------------------------------------

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
            or new.kubernetes != self.config.kubernetes
        ):
            log.error("reload refused: node name, its address, membership.port or the kubernetes section changed "
                      "(restart instead)")
            self.metrics.inc("reloads_total", result="error")
            self.last_reload_ok = False
            return
        self.config = new
        self.membership.configure(new)
        self.static.configure(new)
        self._apply_desired()
        task = asyncio.get_running_loop().create_task(self._configure_bgp(new))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self.metrics.inc("reloads_total", result="ok")
        self.last_reload_ok = True
        log.info("configuration reloaded")

    def _desired_changed(self) -> None:
        """A source has a new snapshot."""
        if not self.stopping:
            self._apply_desired()

    def _decide_desired(self) -> tuple[L2Action, ...]:
        """Merge the sources' snapshots and hand the result to the controllers (no I/O);
        returns the L2 withdrawals the change needs."""
        merged = merge((s.name, s.snapshot()) for s in self.sources)
        if merged.conflicts != self._conflicts:
            for c in merged.conflicts:
                if c in self._conflicts:
                    continue  # said once
                if c.same_addresses:  # site.yml applied the inventory's service to the cluster too
                    log.info("service %s is given by %s and by %s with the same addresses: %s's copy is used",
                             c.name, c.kept, c.ignored, c.kept)
                else:
                    log.warning("service %s is given by %s and by %s with other addresses: %s's is ignored",
                                c.name, c.kept, c.ignored, c.ignored)
            self._conflicts = merged.conflicts
        self.desired = merged.state
        withdrawals = self.l2_controller.set_desired(self.desired, self.config.interfaces_for)
        self.bgp_controller.set_desired(self.desired)
        return withdrawals

    def _apply_desired(self) -> None:
        """Match responders, health checks, forwarding and the controllers to the sources.

        Announcements whose IP and interfaces did not change keep their state,
        so a reload does not interrupt them.
        """
        withdrawals = self._decide_desired()
        cfg, desired = self.config, self.desired
        wanted_ifaces = set(cfg.interfaces)
        for svc in desired.l2_services():
            wanted_ifaces.update(cfg.interfaces_for(svc))
        self.l2.set_interfaces(wanted_ifaces)
        self.links.watch(wanted_ifaces)
        self.unserved = unserved_families(wanted_ifaces)

        self.health.configure(
            {
                s.name: s.health_check
                for s in desired.services
                if s.external_traffic_policy == "Local" and s.health_check
            }
        )
        self.forwarding.configure(
            cfg.node,
            [
                ForwardedService(s.name, s.addresses, s.ports, s.external_traffic_policy, s.backends)
                for s in desired.services
                if s.backends
            ],
        )
        for action in withdrawals:
            self.l2.withdraw(action.address, action.interfaces)
            self._pending_route_removals.add(action.address)
        self.l2.set_groups({a.address: a.interfaces for a in self.l2_controller.table.values()})
        self._schedule()

    # --- events ------------------------------------------------------------------

    def _membership_changed(self, joined: bool) -> None:
        if joined:
            # A node came back (a partition healed): whoever leads afterwards
            # re-announces, or clients keep the other side's MAC (MetalLB #584).
            self._reannounce_all = True
        self._schedule()

    def _local_healthy(self) -> frozenset[str]:
        """Local services healthy here: by their health check, by a healthy backend on
        this node, or by a source's allow-list naming this node."""
        return self.health.snapshot() | self.forwarding.local_healthy() | self.desired.allowed_here(self.config.node)

    def _families(self) -> frozenset[int]:
        """The families this node can serve on every interface it announces on."""
        return BOTH_FAMILIES - {f for missing in self.unserved.values() for f in missing}

    def _eligibility(self) -> Eligibility:
        return Eligibility(self.config.node, self._local_healthy(), dict(self.unserved))

    def _addresses_changed(self) -> None:
        unserved = unserved_families(self.l2.interfaces())
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
        self.l2.link_up(ifname, [a.address for a in self.l2_controller.announced() if ifname in a.interfaces])

    def _schedule(self) -> None:
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
        """Decide on one view of the membership, then carry the L2 plan out and update BGP."""
        for addr in list(self._pending_route_removals):
            ann = self.l2_controller.table.get(addr)
            if ann is None or not ann.announcing:
                await self.routes.remove(addr)
            self._pending_route_removals.discard(addr)
        view = MembershipView(self.membership.settled, *self.membership.snapshot())
        here = self._eligibility()
        reannounce, self._reannounce_all = self._reannounce_all, False
        taken: list[str] = []
        released: list[str] = []
        addresses = list(self.l2_controller.table)
        for start in range(0, len(addresses), RECONCILE_CHUNK):
            if start:
                await asyncio.sleep(0)  # let heartbeats and ARP through on big tables
                if self.stopping:
                    return
            plan = self.l2_controller.plan(view, here, reannounce, addresses[start : start + RECONCILE_CHUNK])
            for change in plan.leader_changes:
                self.metrics.inc("leader_changes_total")
                log.debug("%s: leader %s -> %s", change.address, change.old, change.new)
            for action in plan.actions:
                if not self._current(action):
                    continue  # the desired state changed meanwhile: the next reconcile decides again
                if action.kind == "take":
                    await self._take(action)
                    taken.append(str(action.address))
                elif action.kind == "reannounce":
                    self.l2.reannounce(action.address, action.interfaces)
                elif action.kind == "release":
                    self._release(action)
                    released.append(f"{action.address} ({action.reason})")
        self._report(self._update_bgp())
        if view.settled and not self.membership.ready:
            # Only now, with our gratuitous ARPs sent, may the peers covering
            # for us let go (make before break on rejoin).
            self.membership.mark_ready()
        if taken:
            log.info("now announcing %d IPs: %s", len(taken), _summary(taken))
        if released:
            log.info("no longer announcing %d IPs: %s", len(released), _summary(released))
        if reannounce:
            log.info("membership grew: re-announcing every IP this node leads")

    def _current(self, action: L2Action) -> bool:
        ann = self.l2_controller.table.get(action.address)
        return ann is not None and ann.interfaces == action.interfaces

    async def _take(self, action: L2Action) -> None:
        await self.routes.add(action.address)
        self.l2.take(action.address, action.interfaces)
        self.l2_controller.carried_out(action)
        log.debug("%s: now announcing on %s", action.address, ", ".join(action.interfaces))

    def _release(self, action: L2Action) -> None:
        """Stop answering for the IP at once; keep accepting its traffic for the
        action's grace, as on SIGTERM: packets clients sent to our MAC before
        the new leader's gratuitous ARP reached them still arrive here."""
        self.l2.withdraw(action.address, action.interfaces)
        self.l2_controller.carried_out(action)
        self._draining.add(action.address)
        asyncio.get_running_loop().call_later(action.grace_s, self._drained, action.address)
        log.debug("%s: no longer announcing (%s)", action.address, action.reason)

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
        self._report(self._update_bgp())

    def _bgp_decisions(self) -> tuple[BgpDecision, ...]:
        established = sum(p.get("state") == "Established" for p in self._bgp_status().get("peers", []))
        return self.bgp_controller.decide(self._eligibility(), established)

    def _update_bgp(self) -> tuple[BgpDecision, ...]:
        """Tell the BGP speaker what to advertise, when it changed; the decisions, for the reporter."""
        if self.bgp is None or self.stopping:
            return ()
        decisions = self._bgp_decisions()
        wanted = bgp_decisions.announcements(decisions)
        if wanted != self._bgp_sent:
            self.bgp.set_announcements(wanted)
            before = {str(a.address) for a in self._bgp_sent or ()}
            after = {str(a.address) for a in wanted}
            if after - before:
                log.info("BGP: now advertising %d IPs: %s", len(after - before), _summary(sorted(after - before)))
            if before - after:
                log.info("BGP: no longer advertising %d IPs: %s", len(before - after), _summary(sorted(before - after)))
            self._bgp_sent = wanted
        return decisions

    # --- telling the cluster -----------------------------------------------------------

    def _report(self, bgp: tuple[BgpDecision, ...]) -> None:
        """Hand the reporter what this node announces of the cluster's Services (``bgp``: this
        reconcile's BGP decisions), when it changed (no I/O here)."""
        if self.reporter is None or self.stopping:
            return
        wanted = wanted_reports(self.desired, self.l2_controller.rows(), bgp)
        if wanted != self._reported:
            self.reporter.want(wanted, self.desired.recorded)
            self._reported = wanted

    def _bgp_status(self) -> dict[str, Any]:
        return self.bgp.status() if self.bgp is not None else {"peers": []}

    # --- reporting -----------------------------------------------------------------

    def _healthy(self) -> bool:
        return not self.stopping and not self.host_problems

    def status(self) -> dict[str, Any]:
        members = member_rows(
            self.config.node,
            str(self.config.this_node.address),
            self.membership.ready,
            self.membership.peers.values(),
            time.monotonic(),
        )
        return {
            "node": self.config.node,
            "members": members,
            "settled": self.membership.settled,
            "local_healthy": sorted(self._local_healthy()),
            "forwarding": self.forwarding.status(),
            "host_problems": self.host_problems,
            "announcements": announcement_rows(self.l2_controller.rows(), self._bgp_decisions()),
        }

    def _metric_samples(self) -> dict[str, list[Sample]]:
        """The labelled families, read from the decisions at scrape time (metrics.py)."""
        node = ("node", self.config.node)
        out: dict[str, list[Sample]] = self.bgp.metric_samples(self.config.node) if self.bgp is not None else {}
        out["address_announced"] = address_samples(self.config.node, self.l2_controller.rows(), self._bgp_decisions())
        here = self._eligibility()
        out["service_eligible"] = [
            ((node, ("service", svc.name)), service_eligible(svc, here, self.desired)) for svc in self.desired.services
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
    sources: list[Source] = []
    reporter: Reporter | None = None
    if cfg.kubernetes is not None:
        # the kubernetes extra, only when asked
        from .sources.announcing import ReportWorker  # noqa: PLC0415
        from .sources.cluster import ClusterDesiredSource  # noqa: PLC0415

        sources.append(ClusterDesiredSource(cfg.kubernetes, cfg.node))
        reporter = ReportWorker.from_config(cfg.kubernetes)
    speaker = Speaker(config_path, cfg, bgp, sources=sources, reporter=reporter)
    await speaker.start()
    await speaker.run_until_stopped()
    log.info("stopped")
    return 0
