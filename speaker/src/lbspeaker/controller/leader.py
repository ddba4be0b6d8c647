"""One writer per cluster: leader election on a coordination.k8s.io/v1 Lease.

client-go's rules, with the clock of the observer only (no trust in another
host's clock): a lease is expired when its resourceVersion has not changed
for ``duration`` seconds of *our* time since we last saw it change. The
holder renews by replacing the Lease with the resourceVersion it read, so two
candidates can never both succeed. The holder stops writing ``renew_deadline``
(two thirds of the duration) after the start of its last successful renewal,
before anyone else may consider the lease expired: never two writers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .kube import ApiError, now_rfc3339

log = logging.getLogger(__name__)


class LeaseApi(Protocol):
    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]: ...
    def replace_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> dict[str, Any]: ...
    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]: ...


@dataclass
class Elector:
    api: LeaseApi
    namespace: str
    name: str
    identity: str
    duration_s: int
    clock: Callable[[], float] = time.monotonic
    observed_rv: str | None = None
    observed_at: float = 0.0
    renewed_at: float | None = None  # start of our last successful acquire/renew (our clock)
    holder: str = ""
    transitions: int = field(default=0)
    lease_writes: int = 0

    @property
    def renew_deadline_s(self) -> float:
        return self.duration_s * 2 / 3

    @property
    def retry_s(self) -> float:
        """How often the holder renews and the others look."""
        return max(0.2, self.duration_s / 10)

    def is_leader(self) -> bool:
        """True while we may write: we hold it and our last renewal is younger than the deadline."""
        return self.renewed_at is not None and self.clock() < self.renewed_at + self.renew_deadline_s

    def _spec(self, current: dict[str, Any] | None) -> dict[str, Any]:
        spec = dict((current or {}).get("spec") or {})
        stamp = now_rfc3339(micro=True)
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if current else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration_s, renewTime=stamp)
        return spec

    def try_acquire_or_renew(self) -> bool:
        """One round: read the lease, take or renew it when we may. True if we hold it afterwards."""
        started = self.clock()
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            if lease is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec(None)}
                written = self._create(body)
            else:
                rv = lease["metadata"]["resourceVersion"]
                if rv != self.observed_rv:
                    self.observed_rv, self.observed_at = rv, started
                self.holder = (lease.get("spec") or {}).get("holderIdentity") or ""
                held_by_other = self.holder not in ("", self.identity)
                if held_by_other and started < self.observed_at + self.duration_s:
                    self.renewed_at = None
                    return False
                body = {**lease, "spec": self._spec(lease)}
                written = self.api.replace_lease(self.namespace, self.name, body)
                self.lease_writes += 1
        except ApiError as exc:
            if exc.status != 409:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return self.is_leader()
        except OSError as exc:  # the API server unreachable: keep what we have until the deadline
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return self.is_leader()
        if self.holder != self.identity:
            log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
        self.holder = self.identity
        self.observed_rv, self.observed_at = written["metadata"]["resourceVersion"], started
        self.renewed_at = started
        return True

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            written = self.api.create_lease(self.namespace, body)
        except ApiError as exc:
            if exc.status != 404:  # 404: its namespace does not exist yet
                raise
            self.api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                            "metadata": {"name": self.namespace}})
            written = self.api.create_lease(self.namespace, body)
        self.lease_writes += 1
        return written

    def release(self) -> None:
        """On a clean stop: give the lease up so another controller takes over at once."""
        if not self.is_leader():
            return
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
                self.api.replace_lease(self.namespace, self.name, {**lease, "spec": spec})
                self.lease_writes += 1
        except (ApiError, OSError) as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
        self.renewed_at = None
