"""StandaloneForwarding without a kernel table: health changes re-apply the
ruleset and update eligibility. Backends are TCP listeners on 127.0.0.1."""

import asyncio
import ipaddress

from lbspeaker.backends import ForwardedService
from lbspeaker.config import forwarded_ports as parse_ports
from lbspeaker.core.dataplane import parse_backends
from lbspeaker.forwarding import Forwarder, ForwardingError, StandaloneForwarding, removal_script

VIP = ipaddress.ip_address("203.0.113.250")


class RecordingForwarder(Forwarder):
    def __init__(self):
        super().__init__(("nft",))
        self.scripts = []

    async def _run(self, script):
        self.scripts.append(script)


async def wait_until(predicate, seconds=5.0):
    for _unused in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def scenario():
    async def accept(_reader, writer):
        writer.close()

    local = await asyncio.start_server(accept, "127.0.0.1", 0)
    remote = await asyncio.start_server(accept, "127.0.0.1", 0)
    local_port = local.sockets[0].getsockname()[1]
    remote_port = remote.sockets[0].getsockname()[1]
    check = {"type": "tcp", "interval_ms": 50, "timeout_ms": 50}
    backends = parse_backends(
        [
            {"node": "n1", "address": "127.0.0.1", "port": local_port, "health_check": check},
            {"node": "n2", "address": "127.0.0.1", "port": remote_port, "health_check": check},
        ],
        "services[0].backends",
    )
    ports = parse_ports([80], "services[0].ports")
    services = [
        ForwardedService("default/local", (VIP,), ports, "Local", backends),
        ForwardedService("default/cluster", (VIP,), parse_ports([81], "p"), "Cluster", backends),
    ]
    forwarder = RecordingForwarder()
    changes = []
    fwd = StandaloneForwarding("n1", on_eligibility_change=lambda: changes.append(fwd.local_healthy()),
                               forwarder=forwarder)
    fwd.configure("n1", services)
    assert fwd.local_healthy() == frozenset()  # unhealthy until the first check passes
    await wait_until(lambda: len(fwd.applied_healthy) == 2)
    assert fwd.local_healthy() == {"default/local"}
    assert fwd.eligible_services() == {"default/local", "default/cluster"}
    assert f"127.0.0.1 . {remote_port}" in forwarder.applied  # Cluster spreads to n2's backend

    local.close()
    await local.wait_closed()
    await wait_until(lambda: fwd.local_healthy() == frozenset())
    await wait_until(lambda: len(fwd.applied_healthy) == 1)
    assert f"127.0.0.1:{local_port}" not in forwarder.applied
    assert fwd.local_eligible("default/cluster")
    status = {s["service"]: s for s in fwd.status()}
    assert status["default/local"]["eligible"] is False
    assert [b["healthy"] for b in status["default/local"]["backends"]] == [False, True]
    assert changes[-1] == frozenset()

    await fwd.close()
    remote.close()
    assert forwarder.scripts[-1] == removal_script()
    return len(changes)


def test_health_changes_reapply_and_update_eligibility():
    assert asyncio.run(asyncio.wait_for(scenario(), 30)) >= 2


async def no_services():
    forwarder = RecordingForwarder()
    fwd = StandaloneForwarding("n1", forwarder=forwarder)
    fwd.configure("n1", [])
    await asyncio.sleep(0.05)
    await fwd.close()
    return forwarder.scripts


def test_no_forwarded_services_means_no_table_and_no_nft():
    assert asyncio.run(asyncio.wait_for(no_services(), 30)) == []


async def reload_to_none():
    forwarder = RecordingForwarder()
    fwd = StandaloneForwarding("n1", forwarder=forwarder)
    backends = parse_backends([{"node": "n1", "address": "127.0.0.1", "port": 9}], "b")
    fwd.configure("n1", [ForwardedService("default/a", (VIP,), parse_ports([80], "p"), "Cluster", backends)])
    await wait_until(lambda: forwarder.applied is not None)
    fwd.configure("n1", [])
    await wait_until(lambda: forwarder.applied is None)
    scripts = list(forwarder.scripts)
    await fwd.close()
    return scripts, forwarder.scripts


def test_reload_without_forwarded_services_removes_the_table():
    during, after = asyncio.run(asyncio.wait_for(reload_to_none(), 30))
    assert during[-1] == removal_script()
    assert after == during  # nothing more to remove on close


class FailingForwarder(RecordingForwarder):
    failing = True

    async def _run(self, script):
        await super()._run(script)
        if self.failing:
            raise ForwardingError("nft failed (1): simulated")


async def failed_apply():
    async def accept(_reader, writer):
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    check = {"type": "tcp", "interval_ms": 50, "timeout_ms": 50}
    backends = parse_backends([{"node": "n1", "address": "127.0.0.1", "port": port, "health_check": check}], "b")
    forwarder = FailingForwarder()
    fwd = StandaloneForwarding("n1", forwarder=forwarder)
    fwd.configure("n1", [ForwardedService("default/l", (VIP,), parse_ports([80], "p"), "Local", backends)])
    await wait_until(lambda: fwd.last_error is not None and fwd.health.snapshot() == set(backends))
    # Healthy backend, but the kernel does not forward to it: not eligible, not shown as forwarded.
    assert fwd.health.snapshot() == set(backends)
    assert fwd.local_healthy() == frozenset()
    assert fwd.status()[0]["backends"][0] == {"node": "n1", "address": f"127.0.0.1:{port}", "healthy": True,
                                              "forwarded": False}
    forwarder.failing = False
    await wait_until(lambda: fwd.last_error is None, seconds=10)  # retried with backoff (1 s, 2 s)
    assert fwd.local_healthy() == {"default/l"}
    await fwd.close()
    server.close()


def test_failed_apply_is_retried_and_not_eligible_meanwhile():
    asyncio.run(asyncio.wait_for(failed_apply(), 30))
