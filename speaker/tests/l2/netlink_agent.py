"""Runs LocalRoutes, LinkWatcher or a whole Speaker inside a network namespace (``ip netns
exec NS python netlink_agent.py routes|links|stop-during-take``) and prints what it saw as
one JSON line, for test_netlink_netns.py. Every wait is bounded; the namespace is the test's."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from lbspeaker import config as config_mod
from lbspeaker.daemon import Speaker
from lbspeaker.host import LocalRoutes, RouteError
from lbspeaker.link import LinkWatcher, unserved_families
from pyroute2.netlink.rtnl import RTM_NEWROUTE

WAIT_S = 5.0


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def ours() -> list[str]:
    """Destinations of the local routes with our protocol number, as iproute2 lists them."""
    out = []
    for family in ("-4", "-6"):
        rows = json.loads(ip("-j", family, "route", "show", "table", "local", "proto", "199") or "[]")
        out += [row["dst"] for row in rows if row.get("type") == "local"]
    return sorted(out)


async def until(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


async def routes() -> dict[str, object]:
    seen: dict[str, object] = {}
    r = LocalRoutes()
    await r.open()
    seen["leftovers_removed"] = await r.remove_leftovers()
    seen["after_leftovers"] = ours()
    for a in ("198.51.100.7", "2001:db8:1::7"):
        await r.add(ipaddress.ip_address(a))
    await r.add(ipaddress.ip_address("198.51.100.7"))  # again: replaced, no error
    seen["after_add"] = ours()
    seen["installed"] = sorted(str(a) for a in r.installed)
    await r.remove(ipaddress.ip_address("198.51.100.7"))
    await r.remove(ipaddress.ip_address("198.51.100.8"))  # never added: quiet
    seen["after_remove"] = ours()
    r.lo_index = 1 << 30  # no such interface: the kernel's error comes back with its errno
    try:
        await r.add(ipaddress.ip_address("198.51.100.9"))
        seen["bad_add"] = None
    except RouteError as exc:
        seen["bad_add"] = exc.errno
    await r.close()
    return seen


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def links() -> dict[str, object]:
    """Interface lbnl0 (its veth peer lbnl1 sets its carrier), both up, lbnl0 with an IPv4 address."""
    seen: dict[str, object] = {}
    recorder = Recorder()
    logging.getLogger("lbspeaker.link").addHandler(recorder)
    ups: list[str] = []
    changes = [0]

    def on_addresses() -> None:
        changes[0] += 1

    w = LinkWatcher(ups.append, on_addresses)
    await w.start()
    w.watch({"lbnl0", "lbnl-absent"})
    seen["watched_up"] = sorted(name for name, up in w.state.values() if up)

    # carrier lost and back: one on_up, when it comes back
    ip("link", "set", "lbnl1", "down")
    seen["down_seen"] = await until(lambda: not any(up for _n, up in w.state.values()))
    seen["ups_while_down"] = list(ups)
    ip("link", "set", "lbnl1", "up")
    seen["up_seen"] = await until(lambda: ups == ["lbnl0"])

    # an address change is an event too, and the families follow it
    before = changes[0]
    seen["unserved_before"] = unserved_families(["lbnl0"]).get("lbnl0", [])
    ip("addr", "add", "2001:db8:1::7/64", "dev", "lbnl0", "nodad")
    seen["address_seen"] = await until(lambda: changes[0] > before)
    seen["unserved_after"] = unserved_families(["lbnl0"]).get("lbnl0", [])

    # Overrun: the loop is held while the carrier goes and thousands of address events
    # follow; the socket overflows (ENOBUFS) and the down event is lost with the rest.
    # The watcher must read the state again (down), so that the carrier's return is an up.
    ups.clear()
    flood = ["link set lbnl1 down"]
    for _round in range(6):
        flood += [f"addr add 203.0.113.{i}/32 dev lbnl0" for i in range(1, 250)]
        flood += [f"addr del 203.0.113.{i}/32 dev lbnl0" for i in range(1, 250)]
    subprocess.run(["ip", "-batch", "-"], input="\n".join(flood) + "\n", check=True, text=True, timeout=60)
    before = changes[0]
    seen["overrun_logged"] = await until(lambda: any("link events lost" in m for m in recorder.messages))
    seen["resynced_down"] = await until(lambda: not any(up for _n, up in w.state.values()))
    seen["addresses_after_overrun"] = changes[0] > before
    ip("link", "set", "lbnl1", "up")
    seen["up_after_overrun"] = await until(lambda: ups == ["lbnl0"])
    w.close()
    seen["closed"] = w.ipr is None
    return seen


async def stop_during_take() -> dict[str, object]:
    """A Speaker leading one IP on lbnl0 (198.51.100.7/24 there) is stopped while the kernel's
    answer to its route add is outstanding: the kernel has the route, the speaker has no
    answer yet. Whatever it asked for must be gone after stop()."""
    seen: dict[str, object] = {}
    doc = {
        "node": "node1",
        "nodes": [{"name": "node1", "address": "198.51.100.7"}],
        "membership": {"secret": "s" * 32, "interval_ms": 20, "dead_after": 2},
        "interfaces": ["lbnl0"],
        "services": [{"name": "default/web", "addresses": ["198.51.100.100"]}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speaker.yaml"
        path.write_text(yaml.safe_dump(doc))
        speaker = Speaker(str(path), config_mod.load(str(path)))
    routes = speaker.routes
    real = routes._request
    added = asyncio.Event()

    async def late_answer(kind: int, flags: int, ip: Any) -> None:
        await real(kind, flags, ip)  # the kernel has done it ...
        if kind == RTM_NEWROUTE:
            added.set()
            await asyncio.sleep(60)  # ... and its answer is slow to reach the speaker

    routes._request = late_answer  # type: ignore[method-assign]
    await speaker.start()
    try:
        await asyncio.wait_for(added.wait(), WAIT_S)
        seen["take_in_flight"] = True
    except TimeoutError:
        seen["take_in_flight"] = False
    seen["during"] = ours()
    await asyncio.wait_for(speaker.stop(), 20)
    seen["after_stop"] = ours()
    return seen


def main() -> int:
    scenario = {"routes": routes, "links": links, "stop-during-take": stop_during_take}[sys.argv[1]]
    print(json.dumps(asyncio.run(scenario())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
