"""The cluster as a source of desired state: Services, EndpointSlices and Nodes, followed as informers do.

One watcher thread per kind (the ``kubernetes`` client's HTTP stream blocks),
each in client-go's informer shape: list, then watch from the list's
resourceVersion (with bookmarks); a 410 Gone (as an HTTP status or as an
ERROR event: the apiserver no longer holds that resourceVersion, for example
after it restarted) means list again and replace the cache wholesale, so that
what was deleted meanwhile goes too; any other failure (connection refused
while the apiserver restarts, a reset) retries with the controller's
``backoff`` from the last resourceVersion. The caches keep only the fields the
decisions read, so heartbeats that touch nothing else wake nobody.

The watchers hand their changes to the asyncio loop with
``call_soon_threadsafe``; there, changes arriving within ``debounce_s`` are
coalesced into one evaluation of the core's :func:`cluster_state` (again, by a timer, when a node's
``Ready=Unknown`` reaches the core's grace, ``NODE_UNKNOWN_GRACE_S``), and
``on_change`` is called, on the loop, only when the state differs from the
last one it was given. Nothing is emitted before all three kinds have been
listed once (a Service seen before the Nodes would look announceable nowhere),
and while the apiserver is unreachable the last state stands: a restart of the
apiserver withdraws nothing.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ..config import ClusterConfig, ServiceConfig
from ..controller.kube import ENDPOINT_SLICES, NODES, SERVICES, ApiError, Kube, WatchStream, backoff
from ..core.advertisements import pool_announcement
from ..core.cluster import ClusterState, UnknownSeen, cluster_state, is_ours, key_of
from ..core.pools import Pool
from ..desired import DesiredServices
from .announcing import annotation_key

log = logging.getLogger("lbspeaker.sources.cluster")

USER_AGENT = "baremetal-lb-speaker"
WATCH_TIMEOUT_S = 300
DEBOUNCE_S = 0.02
QUICK_END_S = 1.0  # a watch that ends sooner than this with no event is a failure (no spinning)

Obj = dict[str, Any]


def _meta(obj: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {k: meta[k] for k in keys if k in meta}


def trim_service(obj: Mapping[str, Any], annotations: Collection[str] = ()) -> Obj:
    """A Service's fields the decisions read; of its annotations, which of ``annotations`` it carries (this
    node's record, so that the reporter knows where an earlier run left one without reading every Service),
    as ``metadata.annotationKeys``: not their values, so that a record rewritten wakes nobody."""
    spec = obj.get("spec") or {}
    present = sorted(k for k in (obj.get("metadata") or {}).get("annotations") or {} if k in annotations)
    return {
        "metadata": {**_meta(obj, "namespace", "name", "uid"), **({"annotationKeys": present} if present else {})},
        "spec": {k: spec[k] for k in ("type", "loadBalancerClass", "ports", "externalTrafficPolicy") if k in spec},
        "status": obj.get("status") or {},
    }


def trim_slice(obj: Mapping[str, Any]) -> Obj:
    return {
        "metadata": _meta(obj, "namespace", "name", "labels"),
        "endpoints": [
            {"nodeName": ep.get("nodeName"), "conditions": ep.get("conditions") or {}}
            for ep in obj.get("endpoints") or ()
        ],
    }


def trim_node(obj: Mapping[str, Any]) -> Obj:
    spec = obj.get("spec") or {}
    # lastTransitionTime changes only with the status, so heartbeats still change nothing here
    conditions = [
        {k: c.get(k) for k in ("type", "status", "reason", "lastTransitionTime")}
        for c in (obj.get("status") or {}).get("conditions") or ()
    ]
    return {
        "metadata": _meta(obj, "name", "labels"),
        "spec": {
            "unschedulable": spec.get("unschedulable", False),
            "taints": [{"key": t.get("key"), "effect": t.get("effect")} for t in spec.get("taints") or ()],
        },
        "status": {"conditions": conditions},
    }


def _node_key(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


class Informer:
    """One kind's list-and-watch loop and its cache (``namespace/name`` -> trimmed object)."""

    def __init__(
        self,
        kube: Kube,
        kind: str,
        path: str,
        *,
        trim: Callable[[Mapping[str, Any]], Obj],
        key: Callable[[Mapping[str, Any]], str],
        changed: Callable[[], None],
        stopping: threading.Event,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.path = path
        self.trim = trim
        self.key = key
        self.changed = changed
        self.stopping = stopping
        self.watch_timeout_s = watch_timeout_s
        self.lock = threading.Lock()
        self.cache: dict[str, Obj] = {}
        self.synced = threading.Event()
        self.resource_version: str | None = None
        # what happened, for status and the tests: lists made, 410s seen, failures retried, events applied
        self.lists = 0
        self.expired = 0
        self.errors = 0
        self.events = 0
        self._stream: WatchStream | None = None
        self.thread = threading.Thread(target=self.run, name=f"watch-{kind}", daemon=True)

    def items(self) -> list[Obj]:
        with self.lock:
            return list(self.cache.values())

    def close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    def _relist(self) -> None:
        items, self.resource_version = self.kube.list_all(self.path)
        fresh = {}
        for obj in items:
            trimmed = self.trim(obj)
            fresh[self.key(trimmed)] = trimmed
        with self.lock:
            differs = fresh != self.cache
            self.cache = fresh
        self.lists += 1
        self.synced.set()
        if differs or self.lists == 1:
            self.changed()

    def _apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        trimmed = self.trim(obj)
        key = self.key(trimmed)
        with self.lock:
            if kind == "DELETED":
                differs = self.cache.pop(key, None) is not None
            else:
                differs = self.cache.get(key) != trimmed
                self.cache[key] = trimmed
        self.events += 1
        if differs:
            self.changed()

    def _watch_once(self) -> bool:
        """Watch from the last resourceVersion until the stream ends; True when it carried events."""
        assert self.resource_version is not None
        stream = self.kube.watch(self.path, self.resource_version, self.watch_timeout_s)
        self._stream = stream
        seen = False
        try:
            if self.stopping.is_set():
                return seen
            for event in stream:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiError(int(obj.get("code") or 0), str(obj.get("message") or obj), f"watch {self.path}")
                seen = True
                self.resource_version = (obj.get("metadata") or {}).get("resourceVersion") or self.resource_version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(str(kind), obj)
                if self.stopping.is_set():
                    break
        finally:
            self._stream = None
            stream.close()
        return seen

    def run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if self.resource_version is None:
                    self._relist()
                if self._watch_once() or time.monotonic() - started >= QUICK_END_S:
                    attempt = 0
                    continue  # the server ended the stream (timeoutSeconds): watch on from where it was
                raise ConnectionError("the watch ended at once")
            except ApiError as exc:
                if exc.status == 410:
                    self.expired += 1
                    log.info("watching %s: %s; listing again", self.kind, exc)
                    self.resource_version = None
                    continue  # the relist is the recovery: no waiting
                self._failed(exc, attempt)
                attempt += 1
            except Exception as exc:  # connection refused or reset while the apiserver restarts, and the like
                self._failed(exc, attempt)
                attempt += 1

    def _failed(self, exc: BaseException, attempt: int) -> None:
        if self.stopping.is_set():
            return
        self.errors += 1
        delay = backoff(attempt)
        log.warning("watching %s: %s; retrying in %.1f s", self.kind, exc, delay)
        self.stopping.wait(delay)


class ClusterSource:
    """The cluster's desired state for this speaker, kept current; ``on_change(state)`` runs on ``loop``.

    ``start()`` from the loop's thread (or pass ``loop``); ``on_change`` must not block (start a task for
    slow work). ``state()`` evaluates the caches now, from any thread.
    """

    def __init__(
        self,
        kube: Kube,
        pools: Sequence[Pool],
        on_change: Callable[[ClusterState], object],
        *,
        load_balancer_class: str,
        serve_unclassed: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        debounce_s: float = DEBOUNCE_S,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
        annotations: Collection[str] = (),
    ) -> None:
        self.kube = kube
        self.pools = tuple(pools)
        self.on_change = on_change
        self.load_balancer_class = load_balancer_class
        self.serve_unclassed = serve_unclassed
        self.loop = loop
        self.debounce_s = debounce_s
        self.stopping = threading.Event()
        self.last: ClusterState | None = None
        self.emitted = 0
        self._pending = threading.Lock()  # held from a change until its evaluation starts: one wake-up at a time
        self._recheck_handle: asyncio.TimerHandle | None = None
        # the nodes' Ready=Unknown graces as the last evaluation saw them (ClusterState.unknown)
        self._unknown: Mapping[str, UnknownSeen] = {}
        self.informers = {
            kind: Informer(
                kube,
                kind,
                path,
                trim=trim,
                key=key,
                changed=self._changed,
                stopping=self.stopping,
                watch_timeout_s=watch_timeout_s,
            )
            for kind, path, trim, key in (
                ("services", SERVICES, functools.partial(trim_service, annotations=tuple(annotations)), key_of),
                ("endpointslices", ENDPOINT_SLICES, trim_slice, key_of),
                ("nodes", NODES, trim_node, _node_key),
            )
        }

    @classmethod
    def from_config(
        cls,
        config: ClusterConfig,
        on_change: Callable[[ClusterState], object],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> ClusterSource:
        """From the speaker's ``kubernetes:`` section (needs the ``kubernetes`` extra)."""
        return cls(
            Kube(config.access, user_agent=USER_AGENT),
            config.pools,
            on_change,
            load_balancer_class=config.load_balancer_class,
            serve_unclassed=config.serve_unclassed,
            loop=loop,
            annotations=(annotation_key(config.node_name),),
        )

    def annotated(self, annotation: str) -> frozenset[str]:
        """The Services (``namespace/name``) that carry ``annotation`` (one of those the source was told to keep)."""
        services = self.informers["services"].items()
        return frozenset(key_of(s) for s in services if annotation in s["metadata"].get("annotationKeys", ()))

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers.values())

    def start(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        for informer in self.informers.values():
            informer.thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        for informer in self.informers.values():
            informer.close_stream()
        deadline = time.monotonic() + timeout_s
        for informer in self.informers.values():
            if informer.thread.is_alive():
                informer.thread.join(max(0.0, deadline - time.monotonic()))

    def state(self) -> ClusterState:
        ours = [
            s for s in self.informers["services"].items() if is_ours(s, self.load_balancer_class, self.serve_unclassed)
        ]
        state = cluster_state(
            ours,
            self.informers["endpointslices"].items(),
            self.informers["nodes"].items(),
            self.pools,
            time.time(),
            unknown=self._unknown,
        )
        self._unknown = state.unknown  # every evaluation, even one whose state is unchanged
        return state

    def _recheck(self, at: float | None) -> None:
        """Evaluate again when a node verdict changes by time alone (a Ready=Unknown outlasting its grace)."""
        if self._recheck_handle is not None:
            self._recheck_handle.cancel()
            self._recheck_handle = None
        if at is not None and self.loop is not None:
            self._recheck_handle = self.loop.call_later(max(0.0, at - time.time()) + 0.05, self._changed)

    # -- from the watcher threads to the loop -------------------------------------------

    def _changed(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed() or not self._pending.acquire(blocking=False):
            return  # an evaluation is already due: it will read this change too
        try:
            loop.call_soon_threadsafe(loop.call_later, self.debounce_s, self._evaluate)
        except RuntimeError:  # the loop closed meanwhile
            self._pending.release()

    def _evaluate(self) -> None:
        self._pending.release()  # changes from here on wake another evaluation
        if self.stopping.is_set() or not self.synced:
            return
        state = self.state()
        self._recheck(state.recheck_at)
        if state == self.last:
            return
        self.last = state
        self.emitted += 1
        self.on_change(state)


# -- the cluster as the daemon's source of desired state (lbspeaker.desired.Source) ---------------------


def desired_from_cluster(
    state: ClusterState, config: ClusterConfig, node: str, recorded: Collection[str] = ()
) -> DesiredServices:
    """What the cluster asks of the speakers, in the daemon's terms (pure).

    Each Service's mode (and, for L2, interfaces; and the nodes that may announce it) follows its
    pool's advertisements by the core's rule (:func:`pool_announcement`); a pool no advertisement
    applies to is not announced, and with no advertisements at all every pool is announced over L2. A BGP
    Service carries its pool's advertisements meant for this node (``nodes`` empty or naming it): their
    communities, local-pref, peers and aggregation are its BGP policy here.
    ``Local`` Services may be announced only from nodes with a serving endpoint. Node names are the
    cluster's, except that this speaker's ``kubernetes.node_name`` is ``node``. ``recorded``: the Services
    that carry this node's record (``DesiredServices.recorded``), kept for the Services given here.
    """

    def speaker_name(name: str) -> str:
        return node if name == config.node_name else name

    services: list[ServiceConfig] = []
    allowed: dict[str, frozenset[str]] = {}
    for key, svc in sorted(state.services.items()):
        if config.advertisements:
            plan = pool_announcement(svc.pool, config.advertisements)
            if plan.mode is None:
                continue
            mode, candidates, interfaces = plan.mode, plan.nodes, plan.interfaces
            # this node's: an advertisement with nodes applies to the routes of those nodes only (MetalLB's
            # nodeSelectors on a BGPAdvertisement)
            policy = tuple(ad for ad in plan.advertisements if ad.applies_to(config.node_name))
            policy = policy if mode == "bgp" else ()
        else:
            mode, candidates, interfaces, policy = "l2", None, (), ()
        services.append(ServiceConfig(
            name=key,
            addresses=tuple(ipaddress.ip_address(a) for a in svc.addresses),
            mode=mode,
            external_traffic_policy=svc.external_traffic_policy,
            interfaces=interfaces,
            ports=svc.ports,
            advertisements=policy,
        ))
        nodes: frozenset[str] | None = None
        if svc.external_traffic_policy == "Local":
            nodes = frozenset(speaker_name(n) for n in svc.local_nodes)
        if candidates is not None:
            nodes = frozenset(candidates) if nodes is None else nodes & frozenset(candidates)
        if nodes is not None:
            allowed[key] = nodes
    excluded = {speaker_name(n): why for n, why in state.nodes.items() if why}
    keys = {s.name: s.name for s in services}
    return DesiredServices(tuple(services), allowed, excluded, keys, frozenset(k for k in recorded if k in keys))


class ClusterDesiredSource:
    """:class:`ClusterSource` behind the daemon's ``Source`` protocol: nothing until the first full list,
    then the cluster's Services as :func:`desired_from_cluster` gives them."""

    name = "cluster"

    def __init__(self, config: ClusterConfig, node: str) -> None:
        self.config = config
        self.node = node
        self.source: ClusterSource | None = None
        self._state = DesiredServices()
        self._changed: Callable[[], None] | None = None

    def snapshot(self) -> DesiredServices:
        return self._state

    async def start(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self.source = ClusterSource.from_config(self.config, self._on_state, asyncio.get_running_loop())
        self.source.start()
        log.info("following the cluster's Services (class %s%s) as node %s", self.config.load_balancer_class,
                 " and unclassed" if self.config.serve_unclassed else "", self.config.node_name)

    async def stop(self) -> None:
        source, self.source = self.source, None
        self._changed = None
        if source is not None:
            await asyncio.to_thread(source.stop)

    def _on_state(self, state: ClusterState) -> None:
        source = self.source
        recorded = source.annotated(annotation_key(self.config.node_name)) if source is not None else frozenset()
        desired = desired_from_cluster(state, self.config, self.node, recorded)
        if desired != self._state:
            before, self._state = self._state, desired
            # INFO only when the counts move (a Service or an excluded node came or went); every other
            # change (an endpoint moved, a port changed) at DEBUG, so a busy cluster does not flood the log
            counts = (len(desired.services), len(desired.excluded_nodes))
            level = logging.DEBUG if (len(before.services), len(before.excluded_nodes)) == counts else logging.INFO
            log.log(level, "cluster: %d Services to announce, %d nodes excluded", *counts)
            if self._changed is not None:
                self._changed()
