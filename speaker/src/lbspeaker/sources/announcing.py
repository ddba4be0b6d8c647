"""Which node announces a Service's address, told to the cluster: an Event and an annotation per node.

``kubectl describe service`` shows both. On a takeover (this node starts
announcing an address) the Event ``nodeAssigned`` says which node, how (``l2``
or ``bgp``) and why. The standing record is one annotation per announcing
node, ``announcing.baremetal.lb/<node>`` (the node's name, or when it is longer
than an annotation name allows, its first 50 characters and a hash), whose
value is JSON: ``{"node": NAME, "addresses": {IP: {"mode": MODE, "reason":
REASON, "since": RFC3339}}}``. With BGP several nodes announce one address at
once, so the record is keyed by node and not by address: each speaker writes
only its own key with a JSON merge patch, which leaves every other node's key
as it is, so no write of one node can undo another's (no read-modify-write of
a shared value, no conflict to retry). When the node stops announcing the
last of the Service's addresses its key is removed (the merge patch's null).

Blocking HTTP: the daemon never calls it on its loop; :class:`ReportWorker`
(one thread) carries the calls out, from what the daemon wants reported
(``decisions.report``). A restarted speaker reads its own key back from a Service the
first time it needs a call there (it announces one of its addresses, or the
cluster source saw its key on it), so it neither repeats the Event of an
address it already held nor leaves a stale address in the record; a Service
that neither holds nor gets anything of this node's costs no call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

from ..config import ClusterConfig
from ..controller.kube import ApiError, Kube, backoff, now_rfc3339
from ..decisions.report import ReportCall, Reports, apply_call, report_calls

log = logging.getLogger("lbspeaker.sources.announcing")

ANNOTATION_PREFIX = "announcing.baremetal.lb/"
EVENT_REASON = "nodeAssigned"
COMPONENT = "baremetal-lb-speaker"
NAME_MAX = 63  # the name part of an annotation key


def annotation_key(node: str) -> str:
    """This node's annotation on a Service it announces."""
    if len(node) <= NAME_MAX:
        return ANNOTATION_PREFIX + node
    digest = hashlib.sha256(node.encode()).hexdigest()[:12]
    return f"{ANNOTATION_PREFIX}{node[:50].rstrip('.-_')}-{digest}"


def read_record(service: Mapping[str, Any], node: str) -> dict[str, dict[str, str]]:
    """The addresses ``node`` announces according to the Service's annotation ({} when none or unreadable)."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    try:
        doc = json.loads(annotations.get(annotation_key(node)) or "{}")
    except ValueError:
        return {}
    addresses = doc.get("addresses") if isinstance(doc, dict) else None
    return {ip: dict(v) for ip, v in addresses.items() if isinstance(v, dict)} if isinstance(addresses, dict) else {}


class AnnouncementReporter:
    """Tells the cluster which node announces each address of a Service (thread-safe, blocking)."""

    def __init__(self, kube: Kube, component: str = COMPONENT) -> None:
        self.kube = kube
        self.component = component
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], dict[str, dict[str, str]]] = {}  # (service key, node) -> ip -> entry
        self._services: dict[str, dict[str, Any]] = {}  # the Service object last read, for the Event's reference

    def announced(self, key: str, node: str) -> dict[str, dict[str, str]]:
        """What this reporter holds as announced by ``node`` for the Service ``key``."""
        with self._lock:
            return {ip: dict(v) for ip, v in self._records.get((key, node), {}).items()}

    def held(self, key: str, node: str) -> dict[str, dict[str, str]] | None:
        """What ``node`` announces for the Service ``key`` as the Service says it (read from the API the first
        time, then as this reporter keeps it); None when the Service does not exist."""
        with self._lock:
            record = self._record(key, node)
            return None if record is None else {ip: dict(v) for ip, v in record.items()}

    def announce(self, key: str, ip: str, node: str, mode: str, reason: str) -> bool | None:
        """``node`` announces ``ip`` of the Service ``key`` (``namespace/name``) by ``mode`` because ``reason``.

        True when this is a takeover (the address was not in the node's record): the Event is written. A new
        mode or reason for an address already held updates the record only (False). None when the Service is
        gone: nothing is recorded (it may come back under the same name and need the record then).
        """
        with self._lock:
            record = self._record(key, node)
            if record is None:
                return None
            old = record.get(ip)
            if old is not None and old.get("mode") == mode and old.get("reason") == reason:
                return False
            since = old["since"] if old is not None and "since" in old else now_rfc3339()
            record[ip] = {"mode": mode, "reason": reason, "since": since}
            if not self._write(key, node, record):
                return None
            if old is not None:
                return False
            self._event(key, node, f"announcing {ip} from node {node} ({mode}): {reason}")
            return True

    def withdraw(self, key: str, ip: str, node: str) -> bool:
        """``node`` no longer announces ``ip``: out of the record (the annotation goes with the last address)."""
        with self._lock:
            record = self._record(key, node)
            if record is None or ip not in record:
                return False
            del record[ip]
            return self._write(key, node, record)

    def forget(self, key: str) -> None:
        """The Service is gone: drop what is held for it (nothing to write)."""
        with self._lock:
            self._services.pop(key, None)
            for k in [k for k in self._records if k[0] == key]:
                del self._records[k]

    # -- the API server ---------------------------------------------------------------

    def _record(self, key: str, node: str) -> dict[str, dict[str, str]] | None:
        if (key, node) in self._records:
            return self._records[(key, node)]
        namespace, name = key.split("/", 1)
        try:
            service = self.kube.get_service(namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        self._services[key] = service
        record = self._records[(key, node)] = read_record(service, node)
        return record

    def _write(self, key: str, node: str, record: Mapping[str, Mapping[str, str]]) -> bool:
        namespace, name = key.split("/", 1)
        doc = {"node": node, "addresses": dict(sorted(record.items()))}
        value = json.dumps(doc, sort_keys=True) if record else None
        try:
            self._services[key] = self.kube.patch_service(
                namespace, name, {"metadata": {"annotations": {annotation_key(node): value}}}
            )
        except ApiError as exc:
            if exc.status == 404:
                self._records.pop((key, node), None)
                return False
            raise
        return True

    def _event(self, key: str, node: str, message: str) -> None:
        service = self._services.get(key) or {}
        try:
            self.kube.create_event(
                service, type_="Normal", reason=EVENT_REASON, message=message, component=self.component, instance=node
            )
        except ApiError as exc:  # the record is written; a lost Event is logged, not retried
            log.warning("event %s for %s: %s", EVENT_REASON, key, exc)


LOG_EVERY_S = 30.0  # a failing API server is logged at most this often (the first failure at once)


class ServiceGone(Exception):
    """The Service answered 404 to a write: nothing is recorded there (it may come back under its name)."""


def _server_wide(exc: BaseException) -> bool:
    """Whether a failed call says the API server is out of reach for every Service, not just this one: no HTTP
    answer at all (refused, reset, timed out), or one meaning the server is busy or unavailable."""
    return not isinstance(exc, ApiError) or exc.status in (429, 503)


class ReportWorker:
    """Carries the reporter's calls out on one thread, so the daemon's loop never waits for the API server.

    The daemon hands over the whole of what it wants reported (:meth:`want`, cheap, from the loop); the
    thread compares it with what it knows the cluster holds and makes the calls
    (:func:`~lbspeaker.decisions.report.report_calls`), one Service at a time, each Service's calls in
    order; a burst of changes is coalesced into the last state. A Service is read back from the API the
    first time it needs a call: when this node announces one of its addresses, or when it carries this
    node's record (from an earlier run; ``recorded``, as the cluster source saw the Services), so that stale
    addresses are withdrawn. Any other Service holds nothing of this node's and costs no call.

    A failed call drops what is known of that Service (it is read again on the next try). When the API
    server answered about that Service alone (403 in one namespace, 422), the Service is retried with its own
    back-off and the others go on; when it did not answer at all (down, a timeout, 429 or 503) the whole
    pass stops and is tried again with back-off until it answers: then everything wanted is brought in
    (nothing is lost in an outage). A Service gone (404) while there was something to write is read again
    the same way, in case it is created again under its name. Failures are counted (``failures``) and
    logged, at most every ``log_every_s`` (a Service's first failure at once).
    """

    def __init__(self, reporter: AnnouncementReporter, node: str, *, log_every_s: float = LOG_EVERY_S) -> None:
        self.reporter = reporter
        self.node = node
        self.log_every_s = log_every_s
        self.calls = 0  # made, failed or not
        self.failures = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._wanted: dict[str, dict[str, tuple[str, str]]] = {}
        self._recorded: frozenset[str] = frozenset()
        self._dirty = False
        self._busy = False
        self._written: dict[str, dict[str, tuple[str, str]]] = {}  # what the cluster holds, as far as known
        self._unread: set[str] = set()  # Services whose record must be read before anything is assumed of it
        self._retry: dict[str, tuple[int, float]] = {}  # Service -> (attempts, monotonic time of the next)
        self._last_logged = 0.0
        self._unlogged = 0
        self._thread = threading.Thread(target=self._run, name="report-announcements", daemon=True)

    @classmethod
    def from_config(cls, config: ClusterConfig) -> ReportWorker:
        """For the speaker's ``kubernetes:`` section, as the node ``node_name`` (its own API client)."""
        return cls(AnnouncementReporter(Kube(config.access, user_agent=COMPONENT)), config.node_name)

    def start(self) -> None:
        self._thread.start()

    def want(self, wanted: Reports, recorded: Collection[str] = ()) -> None:
        """Report ``wanted`` (Service key -> address -> (mode, reason)) from now on; returns at once.

        ``recorded``: the Services that carry this node's record as far as the caller knows (a Service of
        ``wanted`` with nothing announced and not listed is taken to hold nothing of this node's).
        """
        with self._cond:
            self._wanted = {key: dict(addresses) for key, addresses in wanted.items()}
            self._recorded = frozenset(recorded)
            self._dirty = True
            self._cond.notify()

    def idle(self) -> bool:
        """Everything wanted is written (for tests and a clean stop)."""
        with self._cond:
            return not self._dirty and not self._busy and not self._retry

    def stop(self, flush_s: float = 0.0) -> None:
        """Stop the thread, after up to ``flush_s`` seconds for the calls still due (bounded)."""
        deadline = time.monotonic() + flush_s
        while flush_s > 0 and not self.idle() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))

    def _run(self) -> None:
        attempt = 0  # passes stopped in a row because the API server did not answer
        hold_until = 0.0  # after such a pass: nothing before this, whatever is wanted meanwhile
        while True:
            with self._cond:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if now < hold_until:
                        self._cond.wait(hold_until - now)
                        continue
                    due = min((at for _n, at in self._retry.values()), default=None)
                    if self._dirty or (due is not None and due <= now):
                        break
                    self._cond.wait(None if due is None else due - now)
                if self._stop.is_set():
                    return
                wanted, recorded = self._wanted, self._recorded
                self._dirty, self._busy = False, True
            try:
                done = self._sync(wanted, recorded)
                attempt = 0
            except Exception as exc:  # the API server down or refusing: try again, never give up the thread
                self._failed(exc)
                done = False
                attempt += 1
                hold_until = time.monotonic() + backoff(attempt)
            with self._cond:
                self._busy = False
                if not done:
                    self._dirty = True

    def _sync(self, wanted: Reports, recorded: Collection[str]) -> bool:
        """Bring each Service from what is written to ``wanted``; False when stopped before the end.

        A Service whose call failed is left for its retry; raises when the API server did not answer.
        """
        keys = sorted(set(wanted) | set(self._written) | self._unread)
        with self._cond:  # a retry of a Service out of view would be due forever (cannot happen: insurance)
            for key in set(self._retry) - set(keys):
                del self._retry[key]
        for key in keys:
            if self._stop.is_set():
                return False
            retry = self._retry.get(key)
            if retry is not None and retry[1] > time.monotonic():
                continue  # its back-off is not over: the others go on
            try:
                self._sync_service(key, wanted.get(key), recorded)
            except ServiceGone:
                log.debug("%s: gone while its record was written; read again later", key)
                self._lost(key)
                self._schedule(key)
                continue
            except Exception as exc:
                self._lost(key)
                if _server_wide(exc):
                    raise
                self._schedule(key)
                self._failed(exc, key, first=retry is None)
                continue
            with self._cond:
                self._retry.pop(key, None)
        return True

    def _sync_service(self, key: str, want: Mapping[str, tuple[str, str]] | None, recorded: Collection[str]) -> None:
        """The calls for one Service (``want``: None when it is no longer wanted)."""
        if key not in self._written:
            if want or key in recorded or key in self._unread:
                held = self.reporter.held(key, self.node)  # a call (None: the Service is gone, nothing held)
                self._written[key] = {ip: (e.get("mode", ""), e.get("reason", "")) for ip, e in (held or {}).items()}
            else:
                self._written[key] = {}  # nothing announced here, nothing recorded: nothing to read
            self._unread.discard(key)
        for call in report_calls({key: self._written[key]}, {} if want is None else {key: want}):
            if self._stop.is_set():
                return
            self._call(call)
            apply_call(self._written, call)

    def _call(self, call: ReportCall) -> None:
        self.calls += 1
        if call.kind == "announce":
            taken = self.reporter.announce(call.key, call.ip, self.node, call.mode, call.reason)
            if taken is None:
                raise ServiceGone(call.key)
            if taken:
                log.info("%s: announcing %s (%s): %s", call.key, call.ip, call.mode, call.reason)
        elif call.kind == "withdraw":
            self.reporter.withdraw(call.key, call.ip, self.node)
        else:
            self.reporter.forget(call.key)

    def _lost(self, key: str) -> None:
        """What the cluster holds for this Service is unknown now: read it again on the next try."""
        self._written.pop(key, None)
        self._unread.add(key)
        self.reporter.forget(key)

    def _schedule(self, key: str) -> None:
        with self._cond:
            attempts = self._retry.get(key, (0, 0.0))[0] + 1
            self._retry[key] = (attempts, time.monotonic() + backoff(attempts))

    def _failed(self, exc: BaseException, key: str = "", first: bool = False) -> None:
        self.failures += 1
        now = time.monotonic()
        if not first and self._last_logged and now - self._last_logged < self.log_every_s:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failures since the last message)" if self._unlogged else ""
        what = f" ({key}; the other Services go on)" if key else ""
        log.warning("telling the cluster which node announces%s: %s; retrying%s", what, exc, more)
        self._last_logged, self._unlogged = now, 0
