"""Runs the speaker's standalone forwarding on its own, inside a node's namespace.

``fwagent.py CONFIG.json STATUS.json``: CONFIG has ``node`` and ``services``
(name, addresses, ports, external_traffic_policy, backends, as in the speaker
config). After every apply STATUS gets ``forwarding`` (the /status fragment),
``error`` and ``history`` (monotonic time and the forwarded backends of every
apply). SIGTERM removes the table and exits 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
import time

from lbspeaker.backends import ForwardedService
from lbspeaker.config import forwarded_ports as parse_ports
from lbspeaker.core.dataplane import parse_backends
from lbspeaker.forwarding import StandaloneForwarding


def load(path: str) -> tuple[str, list[ForwardedService]]:
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    services = []
    for i, s in enumerate(raw["services"]):
        services.append(
            ForwardedService(
                s["name"],
                tuple(ipaddress.ip_address(a) for a in s["addresses"]),
                parse_ports(s["ports"], f"services[{i}].ports"),
                s.get("external_traffic_policy", "Cluster"),
                parse_backends(s["backends"], f"services[{i}].backends"),
            )
        )
    return raw["node"], services


async def main(config: str, status_path: str) -> int:
    node, services = load(config)
    history: list[dict[str, object]] = []
    fwd: StandaloneForwarding

    def write_status() -> None:
        doc = fwd.status()
        forwarded = sorted({f"{s['service']} {b['address']}" for s in doc for b in s["backends"] if b["forwarded"]})
        if not history or history[-1]["forwarded"] != forwarded:
            history.append({"t": time.monotonic(), "forwarded": forwarded})
        tmp = status_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"forwarding": doc, "error": fwd.last_error, "history": history}, fh)
        os.replace(tmp, status_path)

    fwd = StandaloneForwarding(node, on_applied=write_status)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    fwd.configure(node, services)
    try:
        async with asyncio.timeout(600):  # a test agent never outlives its test
            await stop.wait()
    except TimeoutError:
        pass
    await fwd.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
