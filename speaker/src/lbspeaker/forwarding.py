"""Standalone forwarding: VIP:port to backends with nftables, for hosts without kube-proxy.

The speaker owns one table, ``inet baremetal_lb``, and nothing else in the
ruleset. Every change replaces that table in one ``nft -f`` transaction
(create it, delete it, define it), so there is never a moment with half a
ruleset, and conntrack keeps established connections on the backend they
were given: a new ruleset only decides where *new* connections go.

- Cluster: every healthy backend on any node, chosen per connection with
  ``numgen inc`` (round robin, so the spread is even), and masqueraded so the
  reply comes back through this node: the backend sees this node's address.
  Traffic to a backend on this node itself is delivered locally and never
  reaches postrouting, so the ``input`` NAT hook gives it the node's address
  (the backend's own) instead.
- Local: only this node's healthy backends, no SNAT: the backend sees the
  client's address.

Rendering is a pure function of the desired state; ``Forwarder`` applies it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from .backends import BackendHealth, ForwardedService, forwarded_to, local_eligible
from .core.dataplane import Backend, IPAddress
from .core.service import ServicePort
from .metrics import Metrics

log = logging.getLogger(__name__)

FAMILY = "inet"
TABLE = "baremetal_lb"
NFT_TIMEOUT_S = 10.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0


class ForwardingError(RuntimeError):
    """nft refused the ruleset or could not be run."""


# --- rendering (pure) --------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "").replace('"', "'") + '"'


def _target(backend: Backend) -> str:
    return f"{backend.address} . {backend.port}"


def _match(vip: IPAddress, port: ServicePort) -> str:
    family = "ip6" if vip.version == 6 else "ip"
    return f"{family} daddr {vip} {port.l4} dport {port.port}"


def _dnat(vip: IPAddress, port: ServicePort, backends: Sequence[Backend], comment: str) -> str:
    family = "ip6" if vip.version == 6 else "ip"
    if len(backends) == 1:
        b = backends[0]
        to = f"[{b.address}]:{b.port}" if vip.version == 6 else f"{b.address}:{b.port}"
        return f"{_match(vip, port)} dnat {family} to {to} comment {comment}"
    elements = ", ".join(f"{i} : {_target(b)}" for i, b in enumerate(backends))
    return (
        f"{_match(vip, port)} dnat {family} to numgen inc mod {len(backends)} map {{ {elements} }} comment {comment}"
    )


def _original(vip: IPAddress, port: ServicePort) -> str:
    """Matches, after DNAT, the packets of connections first sent to ``vip:port``."""
    family = "ip6" if vip.version == 6 else "ip"
    return (
        f"meta l4proto {port.l4} ct status dnat"
        f" ct original {family} daddr {vip} ct original proto-dst {port.port}"
    )


def render_ruleset(node: str, services: Sequence[ForwardedService], healthy: Collection[Backend]) -> str:
    """The nft script that makes this node forward ``services`` to their ``healthy`` backends.

    Deterministic for the same input (services and backends in config order).
    A VIP:port with no backend to send to gets no rule: under Local the node
    is then not eligible and does not attract the traffic.
    """
    dnat: list[str] = []
    masquerade: list[str] = []
    local_snat: list[str] = []
    for svc in services:
        targets = forwarded_to(svc, node, healthy)
        comment = _quote(svc.name)
        for vip in svc.addresses:
            same_family = [b for b in targets if b.address.version == vip.version]
            for port in svc.ports:
                if not same_family:
                    dnat.append(f"# {svc.name} {vip} {port}: no healthy backend")
                    continue
                dnat.append(_dnat(vip, port, same_family, comment))
                if svc.policy == "Cluster":
                    family = "ip6" if vip.version == 6 else "ip"
                    masquerade.append(f"{_original(vip, port)} masquerade comment {comment}")
                    if any(b.node == node for b in same_family):
                        local_snat.append(f"{_original(vip, port)} snat {family} to {family} daddr comment {comment}")

    def chain(name: str, hook: str, priority: int, rules: list[str]) -> list[str]:
        head = f"\tchain {name} {{\n\t\ttype nat hook {hook} priority {priority}; policy accept;\n"
        return [head + "".join(f"\t\t{r}\n" for r in rules) + "\t}\n"]

    body = ["\tchain services {\n" + "".join(f"\t\t{r}\n" for r in dnat) + "\t}\n"]
    # Priorities as numbers: nft 1.0.6 accepts dstnat/srcnat only on some hooks.
    body += chain("prerouting", "prerouting", -100, ["jump services"])
    body += chain("output", "output", -100, ["jump services"])
    body += chain("postrouting", "postrouting", 100, masquerade)
    body += chain("input", "input", 100, local_snat)
    return (
        f"# baremetal.lb speaker on {node}: standalone forwarding. Owned and replaced by the speaker.\n"
        f"table {FAMILY} {TABLE} {{}}\n"
        f"delete table {FAMILY} {TABLE}\n"
        f"table {FAMILY} {TABLE} {{\n" + "".join(body) + "}\n"
    )


def removal_script() -> str:
    """Deletes the speaker's table whether or not it exists, and nothing else."""
    return f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n"


def forwarding_status(
    node: str,
    services: Sequence[ForwardedService],
    healthy: Collection[Backend],
    applied: Collection[Backend] | None = None,
) -> list[dict[str, Any]]:
    """Per forwarded service: its backends, their health, and whether this node sends to them.

    ``applied`` is the healthy set the ruleset in the kernel was rendered from
    (``forwarded`` says what the kernel does); by default ``healthy``. The
    daemon puts this list under ``forwarding`` in ``/status``.
    """
    in_kernel = healthy if applied is None else applied
    out: list[dict[str, Any]] = []
    for svc in services:
        targets = set(forwarded_to(svc, node, in_kernel))
        out.append(
            {
                "service": svc.name,
                "policy": svc.policy,
                "addresses": [str(a) for a in svc.addresses],
                "ports": [str(p) for p in svc.ports],
                "eligible": local_eligible(svc, node, in_kernel),
                "backends": [
                    {
                        "node": b.node,
                        "address": b.endpoint,
                        "healthy": b in healthy,
                        "forwarded": b in targets,
                    }
                    for b in svc.backends
                ],
            }
        )
    return out


# --- applying ----------------------------------------------------------------------


class Forwarder:
    """Applies rendered rulesets with ``nft -f -`` and removes the table on close.

    ``nft`` is the command to run (tests prefix ``ip netns exec NS``). An
    unchanged script is not re-applied, so round-robin counters are not reset
    for nothing.
    """

    def __init__(self, nft: Sequence[str] = ("nft",)) -> None:
        self.nft = tuple(nft)
        self.applied: str | None = None

    async def _run(self, script: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.nft, "-f", "-",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ForwardingError(f"cannot run {self.nft[0]}: {exc.strerror}") from exc
        try:
            async with asyncio.timeout(NFT_TIMEOUT_S):
                _out, err = await proc.communicate(script.encode())
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ForwardingError(f"nft did not finish within {NFT_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            raise ForwardingError(f"nft failed ({proc.returncode}): {err.decode(errors='replace').strip()}")

    async def apply(self, script: str) -> bool:
        """Replace the table with ``script``; returns whether anything was applied."""
        if script == self.applied:
            return False
        await self._run(script)
        self.applied = script
        return True

    async def close(self) -> None:
        """Remove the table (also if it was never applied by this process)."""
        await self._run(removal_script())
        self.applied = None


class StandaloneForwarding:
    """Backend health plus the forwarder: what the daemon holds for services with backends.

    ``configure`` takes the forwarded services (on start and reload); health
    changes re-apply the ruleset at once (one apply at a time, coalesced).
    ``on_eligibility_change`` fires when the set of services this node may
    take traffic for changes (the daemon re-runs L2 election / BGP then).

    Eligibility follows the ruleset in the kernel, not the latest probe: a
    node becomes eligible only once its rules forward to the backend, and
    a node whose ruleset cannot be applied never attracts traffic it would
    drop. A failed apply is retried with backoff (1 s doubling to 30 s).
    """

    def __init__(
        self,
        node: str,
        on_eligibility_change: Callable[[], None] | None = None,
        forwarder: Forwarder | None = None,
        metrics: Metrics | None = None,
        on_applied: Callable[[], None] | None = None,
    ) -> None:
        self.node = node
        self.on_eligibility_change = on_eligibility_change
        self.on_applied = on_applied
        self.forwarder = forwarder or Forwarder()
        self.metrics = metrics
        self.health = BackendHealth(self._health_changed, metrics)
        self.services: tuple[ForwardedService, ...] = ()
        self._policy: dict[str, str] = {}
        self.last_error: str | None = None
        self.applied_healthy: frozenset[Backend] = frozenset()
        self._eligible: frozenset[str] = frozenset()
        self._dirty = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._retry_s = RETRY_MIN_S

    def configure(self, node: str, services: Sequence[ForwardedService]) -> None:
        self.node = node
        self.services = tuple(services)
        self._policy = {svc.name: svc.policy for svc in self.services}
        self.health.configure(b for s in self.services for b in s.backends)
        if self._worker is None:
            self._worker = asyncio.create_task(self._apply_loop(), name="forwarding")
        self._health_changed()

    def eligible_services(self) -> frozenset[str]:
        """Names of the forwarded services this node may take traffic for (see ``local_eligible``)."""
        return frozenset(s.name for s in self.services if local_eligible(s, self.node, self.applied_healthy))

    def local_healthy(self) -> frozenset[str]:
        """Names of the Local forwarded services with a healthy backend on this node.

        The same meaning as ``HealthChecker.snapshot()``: what membership
        tells peers, and what L2 election and BGP use to decide under Local.
        """
        return frozenset(n for n in self.eligible_services() if self._policy.get(n) == "Local")

    def local_eligible(self, service: str) -> bool:
        return service in self.eligible_services()

    def status(self) -> list[dict[str, Any]]:
        return forwarding_status(self.node, self.services, self.health.snapshot(), self.applied_healthy)

    async def close(self) -> None:
        """Stop checks and the worker, then remove the table."""
        self.health.close()
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self.forwarder.applied is None and not self.services:
            return  # never forwarded anything: leave nft alone
        try:
            await self.forwarder.close()
            self.applied_healthy = frozenset()
        except ForwardingError as exc:
            log.error("could not remove the forwarding table: %s", exc)

    def _health_changed(self) -> None:
        self._dirty.set()

    def _publish_eligibility(self) -> None:
        eligible = self.eligible_services()
        if eligible != self._eligible:
            self._eligible = eligible
            if self.on_eligibility_change:
                self.on_eligibility_change()

    async def _apply_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            healthy = self.health.snapshot()
            try:
                if not self.services:
                    # No forwarded service: no table at all (an empty NAT table would
                    # still switch conntrack on for every packet), and no nft call on
                    # hosts that never use forwarding.
                    if self.forwarder.applied is not None:
                        await self.forwarder.close()
                elif await self.forwarder.apply(render_ruleset(self.node, self.services, healthy)):
                    log.info("forwarding ruleset applied (%d services)", len(self.services))
                self.applied_healthy = healthy
                self.last_error = None
                self._retry_s = RETRY_MIN_S
            except ForwardingError as exc:
                self.last_error = str(exc)
                log.error("forwarding ruleset not applied (retry in %.0f s): %s", self._retry_s, exc)
                if self.metrics:
                    self.metrics.inc("forwarding_apply_errors_total")
                asyncio.get_running_loop().call_later(self._retry_s, self._dirty.set)
                self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)
            self._publish_eligibility()
            if self.on_applied:
                self.on_applied()
