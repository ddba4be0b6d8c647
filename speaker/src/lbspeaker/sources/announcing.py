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

Blocking HTTP: call it from a worker thread (``asyncio.to_thread``), not on
the loop. A restarted speaker reads its own key back from the Service the
first time it touches that Service, so it neither repeats the Event of an
address it already held nor leaves a stale address in the record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..controller.kube import ApiError, Kube, now_rfc3339

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

    def announce(self, key: str, ip: str, node: str, mode: str, reason: str) -> bool:
        """``node`` announces ``ip`` of the Service ``key`` (``namespace/name``) by ``mode`` because ``reason``.

        True when this is a takeover (the address was not in the node's record): the Event is written. A new
        mode or reason for an address already held updates the record only. False too when the Service is gone.
        """
        with self._lock:
            record = self._record(key, node)
            if record is None:
                return False
            old = record.get(ip)
            if old is not None and old.get("mode") == mode and old.get("reason") == reason:
                return False
            since = old["since"] if old is not None and "since" in old else now_rfc3339()
            record[ip] = {"mode": mode, "reason": reason, "since": since}
            if not self._write(key, node, record):
                return False
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
