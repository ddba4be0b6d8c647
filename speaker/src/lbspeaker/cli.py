"""``lb-speaker run|check|status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Coroutine
from typing import Any

from . import __version__
from . import config as config_mod
from .controller import config as controller_config
from .errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:7473/status"


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        raw = config_mod.read_yaml(args.config)
        if controller_config.is_controller_config(raw):
            ctl = controller_config.parse(raw)
            print(f"{args.config}: OK (controller, {len(ctl.pools)} pools, {len(ctl.reserved)} reserved addresses, "
                  f"lease {ctl.lease.namespace}/{ctl.lease.name})")
            return 0
        cfg = config_mod.parse(raw)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    l2 = {a for s in cfg.l2_services() for a in s.addresses}
    print(
        f"{args.config}: OK (node {cfg.node}, {len(cfg.nodes)} nodes, {len(cfg.services)} services, "
        f"{len(l2)} L2 IPs)"
    )
    return 0


def _daemon(args: argparse.Namespace, main: Coroutine[Any, Any, int]) -> int:
    """Run a daemon's main coroutine with logging to stderr; a bad config is one line, exit 1."""
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(main)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1


def _cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run  # noqa: PLC0415 - keeps check/status free of netlink imports

    return _daemon(args, run(args.config))


def _cmd_controller(args: argparse.Namespace) -> int:
    # the kubernetes client is imported here and only here: run/check/status never need it
    from .controller.daemon import run as run_controller  # noqa: PLC0415
    from .controller.kube import MissingClient  # noqa: PLC0415

    try:
        return _daemon(args, run_controller(args.config, args.identity))
    except MissingClient as exc:
        print(str(exc), file=sys.stderr)
        return 1


def render_table(doc: dict[str, Any]) -> str:
    """The human view of ``/status``: one line per (IP, service)."""
    alive = [m["name"] for m in doc.get("members", []) if m.get("alive")]
    lines = [f"node {doc.get('node')}   live members: {', '.join(alive) or '-'}", ""]
    rows = [("IP", "SERVICE", "MODE", "LEADER", "ANNOUNCING", "WHY")]
    for a in doc.get("announcements", []):
        rows.append(
            (
                a["address"],
                a["service"],
                a["mode"],
                a.get("leader") or "-",
                "yes" if a["announcing"] else "no",
                a.get("reason", ""),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    peers = doc.get("bgp", {}).get("peers", [])
    if peers:
        lines += ["", "BGP PEER  ASN  STATE  ADVERTISED"]
        lines += [f"{p.get('address')}  {p.get('asn')}  {p.get('state')}  {p.get('advertised')}" for p in peers]
    return "\n".join(line.rstrip() for line in lines)


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(args.url, timeout=5) as resp:
            doc = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"cannot read {args.url}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(doc, indent=2) if args.json else render_table(doc))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lb-speaker", description="baremetal.lb speaker")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the daemon")
    p_run.add_argument("--config", default=config_mod.default_path())
    p_run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p_run.set_defaults(func=_cmd_run)
    p_check = sub.add_parser("check", help="validate a config file")
    p_check.add_argument("--config", default=config_mod.default_path())
    p_check.set_defaults(func=_cmd_check)
    p_ctl = sub.add_parser("controller", help="allocate addresses to a cluster's LoadBalancer Services")
    p_ctl.add_argument("--config", default=controller_config.default_path())
    p_ctl.add_argument("--identity", default=None, help="this controller's name in the Lease and its events")
    p_ctl.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p_ctl.set_defaults(func=_cmd_controller)
    p_status = sub.add_parser("status", help="show what this node announces")
    p_status.add_argument("--url", default=DEFAULT_URL)
    p_status.add_argument("--json", action="store_true")
    p_status.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
