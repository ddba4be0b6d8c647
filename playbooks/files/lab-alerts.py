#!/usr/bin/env python
"""Lab monitor: what the lab's Prometheus says about a failover, as report lines.

`lab-alerts failover --stopped NODE --address IP --since EPOCH [--timeout S]` waits (a poll
every 2 s, at most S seconds) until an alert naming NODE fires (as the node that alerts or as
the member it misses), then prints: Prometheus' version and intervals, how long that took after EPOCH and the `for:`
of that alert's rule as Prometheus loaded it, every alert firing or pending, which nodes
announced IP (lbspeaker_address_announced == 1) just before EPOCH and now and which alerts name
it, and the speakers whose scrape fails. Exits 1, after printing the same report, when nothing named NODE in time.

Reads Prometheus' HTTP API on 127.0.0.1:9090 (the lab runs it on the monitor host).
"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request

API = "http://127.0.0.1:9090/api/v1/"
POLL_S = 2.0


def api(path, **params):
    url = API + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]


def alerts():
    return api("alerts")["alerts"]


def names(alert, node):
    return node in (alert["labels"].get("node"), alert["labels"].get("member"))


def query(expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    return api("query", **params)["result"]


def rule_for_s():
    return {
        rule["name"]: rule.get("duration", 0)
        for group in api("rules")["groups"]
        for rule in group["rules"]
        if rule.get("type") == "alerting"
    }


def setting(config_yaml, name):
    """A duration of the loaded configuration's global section (the API returns it as YAML text)."""
    found = re.search(rf"^\s+{name}: (\S+)$", config_yaml, re.MULTILINE)
    return found.group(1) if found else "?"


def label_text(labels):
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")


def announcers(address, at=None):
    rows = query(f'lbspeaker_address_announced{{address="{address}"}} == 1', at)
    return sorted({row["metric"].get("node", "?") for row in rows}) or ["no node"]


def failover(args):
    deadline = time.monotonic() + args.timeout
    fired = []
    while True:
        current = alerts()
        fired = [a for a in current if a["state"] == "firing" and names(a, args.stopped)]
        if fired or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    waited = time.time() - args.since
    durations = rule_for_s()
    version = api("status/buildinfo").get("version", "?")
    config = api("status/config")["yaml"]
    lines = [
        f"Prometheus {version} on the monitor host: scrape every {setting(config, 'scrape_interval')}, "
        f"rules evaluated every {setting(config, 'evaluation_interval')}"
    ]
    if fired:
        rules = sorted({a["labels"]["alertname"] for a in fired})
        lines.append(
            f"fired {waited:.0f} s after the stop: "
            + ", ".join(f"{r} (for: {durations.get(r, 0):.0f}s)" for r in rules)
        )
    else:
        lines.append(f"NO alert naming {args.stopped} fired within {waited:.0f} s of the stop")
    for alert in sorted(current, key=lambda a: (a["state"], a["labels"]["alertname"], label_text(a["labels"]))):
        lines.append(
            f"  {alert['state']:8} {alert['labels']['alertname']} {{{label_text(alert['labels'])}}}: "
            f"{alert['annotations'].get('summary', '')}"
        )
    about_ip = sorted({a["labels"]["alertname"] for a in current if a["labels"].get("address") == args.address})
    lines.append(
        f"{args.address} announced (lbspeaker_address_announced == 1) by "
        f"{', '.join(announcers(args.address, args.since - 1))} just before the stop, by "
        f"{', '.join(announcers(args.address))} now; alerts naming it: {', '.join(about_ip) or 'none'}"
    )
    down = sorted(row["metric"].get("instance", "?") for row in query('up{job="baremetal-lb-speaker"} == 0'))
    lines.append(f"speakers Prometheus cannot scrape now: {', '.join(down) or 'none'}")
    print("\n".join(lines))
    return 0 if fired else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("failover")
    p.add_argument("--stopped", required=True, help="the node whose speaker was stopped")
    p.add_argument("--address", required=True, help="the service IP it led")
    p.add_argument("--since", required=True, type=float, help="when it was stopped (seconds since the epoch)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the alert (default 180)")
    args = parser.parse_args()
    return failover(args)


if __name__ == "__main__":
    sys.exit(main())
