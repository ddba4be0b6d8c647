"""Health of a service's local endpoints: HTTP, TCP, or kube-proxy's healthCheckNodePort.

kube-proxy's ``/healthz`` on the healthCheckNodePort answers 200 with
``localEndpoints`` > 0 and 503 when this node has none.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from .core.dataplane import HealthCheck
from .metrics import Metrics

log = logging.getLogger(__name__)


async def _http_get(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        hosthdr = f"[{host}]" if ":" in host else host
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {hosthdr}:{port}\r\nUser-Agent: lb-speaker\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read(65536)
    finally:
        writer.close()
    status_line = data.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError("no HTTP status line")
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return int(status_line[1]), body


def judge_kube_proxy(status: int, body: bytes) -> bool:
    """kube-proxy healthz: 200 with localEndpoints > 0 is healthy; anything else is not."""
    if status != 200:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return True  # 200 without a readable body still means endpoints are there
    count = doc.get("localEndpoints") if isinstance(doc, dict) else None
    return not isinstance(count, int) or count > 0


async def probe(check: HealthCheck) -> bool:
    """Run one check; any error or timeout counts as unhealthy."""
    try:
        async with asyncio.timeout(check.timeout_ms / 1000):
            if check.type == "tcp":
                _reader, writer = await asyncio.open_connection(check.host, check.port)
                writer.close()
                return True
            status, body = await _http_get(check.url)
            if check.type == "kube_proxy":
                return judge_kube_proxy(status, body)
            return 200 <= status < 300
    except (OSError, TimeoutError, ValueError):
        return False


class HealthChecker:
    """Runs the checks of the Local services and remembers which are healthy.

    A service starts unhealthy until its first check passes, so a starting
    node never claims an IP it cannot serve.
    """

    def __init__(self, on_change: Callable[[], None], metrics: Metrics) -> None:
        self.on_change = on_change
        self.metrics = metrics
        self.healthy: set[str] = set()
        self.tasks: dict[str, tuple[HealthCheck, asyncio.Task[None]]] = {}

    def configure(self, checks: dict[str, HealthCheck]) -> None:
        """Start, keep or stop checks so they match ``checks`` (service name -> check)."""
        for name in list(self.tasks):
            if name not in checks or self.tasks[name][0] != checks[name]:
                self.tasks.pop(name)[1].cancel()
                if name not in checks:
                    self.healthy.discard(name)
        for name, check in checks.items():
            if name not in self.tasks:
                self.tasks[name] = (check, asyncio.create_task(self._loop(name, check), name=f"health {name}"))

    def snapshot(self) -> frozenset[str]:
        return frozenset(self.healthy)

    def close(self) -> None:
        for _check, task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    async def _loop(self, name: str, check: HealthCheck) -> None:
        while True:
            ok = await probe(check)
            self.metrics.inc("health_checks_total", service=name, result="healthy" if ok else "unhealthy")
            if ok != (name in self.healthy):
                (self.healthy.add if ok else self.healthy.discard)(name)
                log.info("service %s local endpoints %s", name, "healthy" if ok else "unhealthy")
                self.on_change()
            await asyncio.sleep(check.interval_ms / 1000)
