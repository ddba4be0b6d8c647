"""``lb-speaker controller``: Services in, addresses out; the I/O around :mod:`.reconcile`.

client-go's informer shape: one watcher thread lists Services, then watches
from the list's resourceVersion (bookmarks on), relists on 410 Gone and
reconnects with a bounded back-off; it feeds a cache keyed by namespace/name
on the asyncio loop. One reconcile loop turns changed keys into writes;
writes run on a small pool of threads (the client is blocking), one at a
time per Service, and only while this process holds the Lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..core.cluster import is_load_balancer, key_of
from ..core.errors import ALLOCATION_FAILURE_REASONS, InputError
from ..core.pools import FAMILY_NAMES
from ..metrics import Family, Metrics, Sample
from ..status import StatusServer
from . import config as config_mod
from .config import ControllerConfig
from .kube import ApiError, Kube, backoff
from .leader import Elector
from .reconcile import INVALID_SERVICE, Event, Plan, Write

log = logging.getLogger("lbspeaker.controller")

COMPONENT = "baremetal-lb-controller"
WATCH_TIMEOUT_S = 300
MAX_WRITERS = 8
MAX_CONFLICT_RETRIES = 5
WATCH_RESTART_REASONS = ("timeout", "expired", "error")

FAMILIES: dict[str, Family] = {
    "writes_total": Family("counter", "Writes to the API server, by kind (status, event, lease)", ("kind",)),
    "write_errors_total": Family("counter", "Writes the API server refused or that failed, by kind", ("kind",)),
    "write_conflicts_total": Family("counter", "Status writes refused with 409 Conflict (re-read and retried)"),
    "relists_total": Family("counter", "Full lists of Services (start, 410 Gone, reconnect)"),
    "watch_errors_total": Family("counter", "Watch streams that ended in an error"),
    "watch_restarts_total": Family(
        "counter", "Service watch streams started again, by reason (timeout: the server's normal end; "
        "expired: 410 Gone or another ERROR event, relisted; error: the connection failed)", ("reason",)),
    "allocation_failures_total": Family(
        "counter", "Allocation failures recorded on Services (AllocationFailed events), by reason", ("reason",)),
    "pool_addresses_in_use": Family(
        "gauge", "Addresses of the pool's family held by at least one Service or ledger reservation (leader only)",
        ("pool", "family")),
    "pool_addresses_available": Family(
        "gauge", "Addresses of the pool's family still free to allocate (leader only)", ("pool", "family")),
    "services_waiting": Family(
        "gauge", "Services of ours that hold no address because allocation failed (leader only)"),
    "service_waiting_for_address": Family(
        "gauge", "1 for each Service of ours that holds no address because allocation failed, with the reason "
        "(leader only)",
        ("namespace", "service", "reason")),
    "rebuilds_total": Family("counter", "Allocations rebuilt from the cluster (start, takeover, reload)"),
    "reloads_total": Family("counter", "Configuration reloads (SIGHUP), by result", ("result",)),
    "config_last_reload_successful": Family(
        "gauge", "1 if the last configuration reload (SIGHUP) was applied (or none was asked for), 0 if it was "
        "refused and the controller runs the previous configuration"),
    "services": Family("gauge", "Services in the cache"),
    "allocations": Family("gauge", "Services and reservations holding addresses in the allocator"),
    "leader": Family("gauge", "1 while this controller holds the Lease and may write"),
    "ready": Family("gauge", "1 once the cache is synced and, as leader, nothing is left to write"),
}


def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # opaque by contract; integers in practice (etcd revisions)
        return 0


class Controller:
    def __init__(self, cfg: ControllerConfig, config_path: str, kube: Kube, identity: str) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.kube = kube
        self.identity = identity
        self.plan = self._plan(cfg)
        self.cache: dict[str, dict[str, Any]] = {}
        self.dirty: dict[str, None] = {}
        self.synced = False
        self.rebuilt = False  # rebuilt since we last became leader (or reloaded)
        self.inflight: set[str] = set()
        # the events last recorded per Service: deciding a Service again (the echo of our own
        # write, a relist, an unrelated change) must not record the same warning again
        self.recorded: dict[str, frozenset[Event]] = {}
        # Services refused (pending or stuck), decided again whenever addresses are freed
        self.failed: dict[str, str] = {}  # key -> the reason (Write.failure)
        self.last_reload_ok = True
        self.elector = Elector(kube, cfg.lease.namespace, cfg.lease.name, identity, cfg.lease.duration_s)
        self.metrics = Metrics(FAMILIES, "lbcontroller_")
        self.metrics.gauge("services", lambda: len(self.cache))
        self.metrics.gauge("allocations", lambda: len(self.plan.allocator.allocations))
        self.metrics.gauge("leader", lambda: 1 if self.elector.is_leader() else 0)
        self.metrics.gauge("ready", lambda: 1 if self.ready() else 0)
        self.metrics.gauge("services_waiting", lambda: len(self._waiting()))
        self.metrics.gauge("config_last_reload_successful", lambda: 1 if self.last_reload_ok else 0)
        # every known reason from the start, at 0: rate() and increase() see the first failure
        for reason in (*ALLOCATION_FAILURE_REASONS, INVALID_SERVICE):
            self.metrics.inc("allocation_failures_total", 0, reason=reason)
        for reason in WATCH_RESTART_REASONS:
            self.metrics.inc("watch_restarts_total", 0, reason=reason)
        self.metrics.source(self._metric_samples)
        self.wake = asyncio.Event()
        self.stopping = threading.Event()
        self.writers = asyncio.Semaphore(MAX_WRITERS)
        self.loop = asyncio.get_running_loop()

    @staticmethod
    def _plan(cfg: ControllerConfig) -> Plan:
        return Plan(cfg.pools, cfg.load_balancer_class, cfg.serve_unclassed, cfg.reserved)

    # -- state seen from outside -------------------------------------------------

    def ready(self) -> bool:
        if not self.synced:
            return False
        if not self.elector.is_leader():
            return True  # a synced standby is healthy
        return self.rebuilt and not self.dirty and not self.inflight

    def status(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "leader": self.elector.is_leader(),
            "holder": self.elector.holder,
            "synced": self.synced,
            "ready": self.ready(),
            "services": len(self.cache),
            "load_balancers": sum(1 for o in self.cache.values() if is_load_balancer(o)),
            "allocations": len(self.plan.allocator.allocations),
            "pending": len(self.dirty) + len(self.inflight),
        }

    def _current(self) -> bool:
        """Only the leader, once rebuilt, knows what is in use and what waits: a standby's allocator
        is not seeded, and what it decided as a former leader is stale."""
        return self.elector.is_leader() and self.rebuilt

    def _waiting(self) -> dict[str, str]:
        """The Services refused that hold nothing (a refused Service may keep what it held), with the reason."""
        if not self._current():
            return {}
        return {key: reason for key, reason in self.failed.items() if self.plan.allocator.get(key) is None}

    def _metric_samples(self) -> dict[str, list[Sample]]:
        waiting: list[Sample] = []
        for key, reason in sorted(self._waiting().items()):
            namespace, name = key.split("/", 1)
            waiting.append(((("namespace", namespace), ("service", name), ("reason", reason)), 1))
        out: dict[str, list[Sample]] = {"service_waiting_for_address": waiting}
        if self._current():
            families = {p.name: p.families for p in self.plan.pools}
            usage = [u for u in self.plan.allocator.usage() if u.family in families.get(u.pool, ())]
            out["pool_addresses_in_use"] = [
                ((("pool", u.pool), ("family", FAMILY_NAMES[u.family].lower())), u.in_use) for u in usage]
            out["pool_addresses_available"] = [
                ((("pool", u.pool), ("family", FAMILY_NAMES[u.family].lower())), u.available) for u in usage]
        return out

    # -- the watcher (its own thread: the stream blocks) ---------------------------

    def _restarted(self, reason: str) -> None:
        assert reason in WATCH_RESTART_REASONS, reason
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(functools.partial(self.metrics.inc, "watch_restarts_total", reason=reason))

    def watch_forever(self) -> None:
        attempt = 0
        resource_version: str | None = None
        while not self.stopping.is_set():
            try:
                if resource_version is None:
                    items, resource_version = self.kube.list_services()
                    self.loop.call_soon_threadsafe(self._on_list, items)
                    attempt = 0
                for event in self.kube.watch_services(resource_version, WATCH_TIMEOUT_S):
                    if self.stopping.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        code = obj.get("code")
                        log.info("watch ended with %s %s: relisting", code, obj.get("reason"))
                        resource_version = None  # 410 Gone (or anything else): list again
                        self._restarted("expired")
                        break
                    resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                    if kind != "BOOKMARK":
                        self.loop.call_soon_threadsafe(self._on_event, str(kind), obj)
                else:
                    if not self.stopping.is_set():
                        self._restarted("timeout")
                attempt = 0
            except ApiError as exc:
                if exc.status == 410:
                    resource_version = None
                self._watch_failed(exc, attempt)
                attempt += 1
            except Exception as exc:  # connection resets and the like: back off and retry
                self._watch_failed(exc, attempt)
                attempt += 1

    def _watch_failed(self, exc: BaseException, attempt: int) -> None:
        if self.stopping.is_set() or self.loop.is_closed():
            return  # shutting down: the stream was cut on purpose
        self.loop.call_soon_threadsafe(self.metrics.inc, "watch_errors_total")
        self._restarted("error")
        delay = backoff(attempt)
        log.warning("watching Services: %s; retrying in %.1f s", exc, delay)
        self.stopping.wait(delay)

    def _on_list(self, items: list[dict[str, Any]]) -> None:
        self.metrics.inc("relists_total")
        fresh = {key_of(o): o for o in items}
        for key in self.cache.keys() - fresh.keys():
            self.dirty[key] = None  # deleted while we were not watching
        for key, obj in fresh.items():
            old = self.cache.get(key)
            if old is None or _rv(old) != _rv(obj):
                self.dirty[key] = None
        self.cache = fresh
        self.synced = True
        self.wake.set()

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            old = self.cache.get(key)
            if old is not None and _rv(old) > _rv(obj):
                return  # we already hold a newer copy (the answer to our own write)
            self.cache[key] = obj
        self.dirty[key] = None
        self.wake.set()

    # -- the reconcile loop -----------------------------------------------------

    async def reconcile_forever(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if not self.synced:
                continue
            if not self.elector.is_leader():
                self.rebuilt = False  # whoever leads writes; we start from the cluster when it is us
                continue
            if not self.rebuilt:
                self.metrics.inc("rebuilds_total")
                self.dirty.clear()
                self.failed.clear()
                writes = self.plan.rebuild(list(self.cache.values()))
                self.rebuilt = True
                log.info("rebuilt from %d Services: %d to write", len(self.cache), len(writes))
                for write in writes:
                    self._note_outcome(write)
                    self._dispatch(write)
                continue
            keys, self.dirty = list(self.dirty), {}
            for key in keys:
                if key in self.inflight:
                    continue  # re-examined when its write is done
                obj = self.cache.get(key)
                if obj is None:
                    self.plan.forget(key)
                    self.recorded.pop(key, None)
                    self.failed.pop(key, None)
                    self._retry_failed()
                    continue
                write = self.plan.reconcile(obj)
                self._note_outcome(write)
                if not write.writes_status and set(write.events) <= self.recorded.get(key, frozenset()):
                    continue
                if write.writes_status or write.events:
                    self._dispatch(write)

    def _note_outcome(self, write: Write) -> None:
        reasons = {e.reason for e in write.events}
        if write.failure is not None:
            self.failed[write.key] = write.failure
        else:
            self.failed.pop(write.key, None)
        if "ClearAssignment" in reasons:
            self._retry_failed()

    def _retry_failed(self) -> None:
        """Addresses were freed: the Services waiting for one are decided again, oldest failure first."""
        for key in self.failed:
            self.dirty[key] = None
        if self.failed:
            self.wake.set()

    def _dispatch(self, write: Write) -> None:
        if write.failure is not None and not set(write.events) <= self.recorded.get(write.key, frozenset()):
            self.metrics.inc("allocation_failures_total", reason=write.failure)  # counted as its event is recorded
        self.recorded[write.key] = frozenset(write.events)
        self.inflight.add(write.key)
        task = asyncio.create_task(self._write(write))
        task.add_done_callback(lambda _t: self._written(write.key))

    def _written(self, key: str) -> None:
        self.inflight.discard(key)
        self.dirty[key] = None  # what we wrote comes back; anything that changed meanwhile too
        self.wake.set()

    async def _write(self, write: Write) -> None:
        async with self.writers:
            obj = self.cache.get(write.key)
            if obj is None:
                return
            for attempt in range(MAX_CONFLICT_RETRIES):
                if not self.elector.is_leader():
                    self.rebuilt = False
                    return
                try:
                    if write.writes_status:
                        updated = await self._counted("status", self._patch_status, obj, write)
                        if _rv(updated) >= _rv(self.cache.get(write.key) or {}):
                            self.cache[write.key] = updated
                    for event in write.events:
                        with contextlib.suppress(ApiError):  # counted and logged; the status matters more
                            await self._counted("event", self._event, obj, event.type, event.reason, event.message)
                    return
                except ApiError as exc:
                    if exc.status == 404:
                        return  # deleted meanwhile: the watch says so
                    if exc.status == 409 and write.writes_status:
                        self.metrics.inc("write_conflicts_total")
                        obj = await asyncio.to_thread(self.kube.get_service, *write.key.split("/", 1))
                        self.cache[write.key] = obj
                        # its spec may have changed: decide again with what is there now
                        write = self.plan.reconcile(obj)
                        if not (write.writes_status or write.events):
                            return
                        continue
                    log.warning("writing %s: %s (retrying later)", write.key, exc)
                    await asyncio.sleep(backoff(attempt + 3))  # the key stays in flight: no tight loop
                    return
                except OSError as exc:
                    log.warning("writing %s: %s", write.key, exc)
                    await asyncio.sleep(backoff(attempt + 3))

    async def _counted(self, kind: str, call: Callable[..., Any], *args: Any) -> Any:
        """One write on a worker thread, counted here on the loop (the counters are not thread-safe)."""
        self.metrics.inc("writes_total", kind=kind)
        try:
            return await asyncio.to_thread(call, *args)
        except (ApiError, OSError):
            self.metrics.inc("write_errors_total", kind=kind)
            raise

    def _patch_status(self, obj: Mapping[str, Any], write: Write) -> dict[str, Any]:
        namespace, name = write.key.split("/", 1)
        patch = write.status_patch((obj.get("metadata") or {}).get("resourceVersion"))
        updated = self.kube.patch_service_status(namespace, name, patch)
        log.info("%s: ingress %s pool %s", write.key, list(write.ingress or ()), write.pool)
        return updated

    def _event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        try:
            self.kube.create_event(obj, type_=type_, reason=reason, message=message, component=COMPONENT,
                                   instance=self.identity)
        except ApiError as exc:
            log.warning("event %s on %s: %s", reason, key_of(obj), exc)
            raise
        log.log(logging.WARNING if type_ == "Warning" else logging.INFO, "%s %s: %s", key_of(obj), reason, message)

    # -- the lease --------------------------------------------------------------

    async def elect_forever(self) -> None:
        was_leader = False
        while True:
            before = self.elector.lease_writes
            leader = await asyncio.to_thread(self.elector.try_acquire_or_renew)
            self.metrics.inc("writes_total", self.elector.lease_writes - before, kind="lease")
            if leader != was_leader:
                log.info("%s is %s", self.identity, "the leader" if leader else "standing by")
                self.rebuilt = False
                self.wake.set()
            was_leader = leader
            await asyncio.sleep(self.elector.retry_s)

    # -- reload -----------------------------------------------------------------

    def reload(self) -> None:
        try:
            cfg = config_mod.load(self.config_path)
        except InputError as exc:
            self.metrics.inc("reloads_total", result="error")
            self.last_reload_ok = False
            log.error("reload refused, keeping the running config: %s: %s", self.config_path, exc)
            return
        self.metrics.inc("reloads_total", result="ok")
        self.last_reload_ok = True
        self.cfg = cfg
        self.plan = self._plan(cfg)
        self.rebuilt = False  # pools changed: start from the cluster again
        self.wake.set()
        log.info("reloaded %s: %d pools", self.config_path, len(cfg.pools))


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


async def run(config_path: str, identity: str | None = None) -> int:
    cfg = config_mod.load(config_path)
    kube = Kube(cfg.kubernetes, pool_size=MAX_WRITERS + 4)
    # the blocking client's requests run here: the writers, the lease, a re-read on conflict
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(MAX_WRITERS + 2, thread_name_prefix="api"))
    controller = Controller(cfg, config_path, kube, identity or default_identity())
    server = StatusServer(controller.status, controller.metrics, controller.ready)
    await server.start(cfg.status_address, cfg.status_port)
    log.info("controller %s: status on %s:%d", controller.identity, cfg.status_address, cfg.status_port)
    watcher = threading.Thread(target=controller.watch_forever, name="watch-services", daemon=True)
    watcher.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, controller.reload)
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(controller.reconcile_forever()),
                                      asyncio.create_task(controller.elect_forever())]
    stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    done, _pending = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    controller.stopping.set()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    server.close()
    await asyncio.to_thread(controller.elector.release)
    for task in done:
        failure = None if task is stopper else task.exception()
        if failure is not None:
            raise failure
    return 0
