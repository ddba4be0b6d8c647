"""Stand-alone BGP announcer for tests and benchmarks.

    python -m lbspeaker.bgp --config FILE [--status-file PATH]

FILE is YAML with the ``bgp`` section and a static ``announcements`` list
([{service, address, policy}] or [{service, addresses: [...], policy}]). SIGTERM/SIGINT: withdraw, Cease, exit 0.
SIGHUP: re-read FILE and apply it with the least churn. SIGUSR1: write the
status (and metrics) as JSON to --status-file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lbspeaker.errors import ConfigError
from lbspeaker.metrics import Metrics

from .config import BgpConfig, parse_bgp_config, parse_ip
from .manager import BGP_FAMILIES, Announcement, BgpSpeaker


def load(path: Path) -> tuple[BgpConfig, list[Announcement]]:
    try:
        # libyaml's loader when present: the pure-Python one takes seconds for 10,000 announcements.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("(top)", data, "must be a mapping with a bgp key")
    if "bgp" not in data:
        raise ConfigError("bgp", None, "is required")
    config = parse_bgp_config(data["bgp"], "bgp")
    anns: list[Announcement] = []
    raw: Any = data.get("announcements") or []
    if not isinstance(raw, list):
        raise ConfigError("announcements", raw, "must be a list")
    for i, item in enumerate(raw):
        # Either {service, address, policy} or, compactly, {service, addresses: [...], policy}.
        if not isinstance(item, dict) or ("address" in item) == ("addresses" in item):
            raise ConfigError(f"announcements[{i}]", item, "must be a mapping with address or addresses")
        policy = item.get("policy", "Cluster")
        if policy not in ("Cluster", "Local"):
            raise ConfigError(f"announcements[{i}].policy", policy, "must be Cluster or Local")
        service = str(item.get("service", ""))
        if "address" in item:
            texts, where = [item["address"]], f"announcements[{i}].address"
        else:
            if not isinstance(item["addresses"], list):
                raise ConfigError(f"announcements[{i}].addresses", item["addresses"], "must be a list")
            texts, where = item["addresses"], f"announcements[{i}].addresses"
        for text in texts:
            try:
                addr = parse_ip(str(text))
            except ValueError:
                raise ConfigError(where, text, "must be an IP address") from None
            anns.append(Announcement(service, addr, policy))
    return config, anns


async def amain(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    started = time.monotonic()
    config, anns = load(config_path)
    speaker = BgpSpeaker(config)
    await speaker.start()
    speaker.set_announcements(anns)
    logging.info("%d announcements, %d peers, ready in %.3f s", len(anns), len(config.peers),
                 time.monotonic() - started)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            new, new_anns = load(config_path)
        except ConfigError as exc:
            logging.error("reload refused: %s", exc)
            return
        speaker.apply_config(new)
        speaker.set_announcements(new_anns)
        logging.info("configuration reloaded")

    # /metrics as the daemon renders it, its node label the router ID (this runner has no node name)
    metrics = Metrics(BGP_FAMILIES)
    metrics.source(lambda: speaker.metric_samples(str(speaker.config.router_id)))

    def dump() -> None:
        if args.status_file:
            tmp = args.status_file + ".tmp"
            lines = metrics.render().decode().splitlines()
            Path(tmp).write_text(json.dumps({"bgp": speaker.status(), "metrics": lines}))
            os.replace(tmp, args.status_file)

    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGUSR1, dump)
    dump()  # also tells a supervising test that the signal handlers are in place
    await done.wait()
    try:
        await asyncio.wait_for(speaker.stop(), 10)
    except TimeoutError:
        logging.error("stop did not finish in 10 s; exiting anyway")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbspeaker.bgp", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--status-file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(amain(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
