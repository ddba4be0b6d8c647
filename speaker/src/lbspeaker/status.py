"""The status HTTP server: ``/status`` (JSON), ``/metrics`` (Prometheus), ``/healthz``;
and the per-address parts of both, assembled from the controllers' decisions."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .decisions.bgp import BgpDecision
from .decisions.l2 import L2Announcement
from .membership import Peer
from .metrics import CONTENT_TYPE, Metrics, Sample

log = logging.getLogger(__name__)

BgpProvider = Callable[[], dict[str, Any]]


def member_rows(node: str, address: str, ready: bool, peers: Iterable[Peer], now: float) -> list[dict[str, Any]]:
    """``/status`` ``members``: this node first, then its peers as membership sees them."""
    rows: list[dict[str, Any]] = [{"name": node, "address": address, "alive": True, "ready": ready}]
    for p in peers:
        rows.append(
            {
                "name": p.name,
                "address": p.address,
                "alive": p.alive,
                "ready": p.alive and p.ready,
                "last_seen_ms": round((now - p.last_seen) * 1000) if p.last_seen else None,
            }
        )
    return rows


def announcement_rows(l2: Iterable[L2Announcement], bgp: Iterable[BgpDecision]) -> list[dict[str, Any]]:
    """``/status`` ``announcements``: one row per service on each L2 IP, then one per BGP service IP."""
    rows: list[dict[str, Any]] = []
    for ann in l2:
        for service_name in ann.services:
            rows.append(
                {
                    "address": str(ann.address),
                    "service": service_name,
                    "mode": "l2",
                    "announcing": ann.announcing,
                    "leader": ann.leader,
                    "reason": ann.reason,
                    "interfaces": list(ann.interfaces),
                }
            )
    for d in bgp:
        rows.append(
            {
                "address": str(d.address),
                "service": d.service,
                "mode": "bgp",
                "announcing": d.announcing,
                "leader": None,
                "reason": d.reason,
            }
        )
    return rows


def address_samples(node: str, l2: Iterable[L2Announcement], bgp: Iterable[BgpDecision]) -> list[Sample]:
    """``lbspeaker_address_announced``: the same rows as ``announcement_rows``, 1 while announced."""
    here = ("node", node)
    samples: list[Sample] = []
    for ann in l2:
        for name in ann.services:
            samples.append(((here, ("address", str(ann.address)), ("service", name), ("mode", "l2")), ann.announcing))
    for d in bgp:
        samples.append(((here, ("address", str(d.address)), ("service", d.service), ("mode", "bgp")), d.announcing))
    return samples


class StatusServer:
    """Serves a daemon's state; ``bgp`` (the speaker's) supplies the ``bgp`` section of ``/status``."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        metrics: Metrics,
        healthy: Callable[[], bool],
        bgp: BgpProvider | None = None,
    ) -> None:
        self.status = status
        self.metrics = metrics
        self.healthy = healthy
        self.bgp = bgp
        self.server: asyncio.Server | None = None

    async def start(self, address: str, port: int) -> None:
        self.server = await asyncio.start_server(self._client, address, port)

    def close(self) -> None:
        if self.server:
            self.server.close()

    def body_for(self, path: str) -> tuple[int, str, bytes]:
        if path == "/status":
            doc = self.status()
            if self.bgp is not None:
                doc["bgp"] = self.bgp()
            return 200, "application/json", json.dumps(doc, indent=2).encode() + b"\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE, self.metrics.render()
        if path == "/healthz":
            ok = self.healthy()
            return (200 if ok else 503), "text/plain", b"ok\n" if ok else b"not ready\n"
        return 404, "text/plain", b"not found\n"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            parts = request.split(b"\r\n", 1)[0].split()
            if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
                code, ctype, body = 405, "text/plain", b"only GET\n"
            else:
                code, ctype, body = self.body_for(parts[1].decode("latin-1").split("?", 1)[0])
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[code]
            head = f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + (body if parts[0] != b"HEAD" else b""))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:  # a status request must never take the daemon down
            log.exception("status request failed")
        finally:
            writer.close()
