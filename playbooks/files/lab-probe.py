#!/usr/bin/env python
"""Lab client probe. `lab-probe get URL`: one request, prints the answer.
`lab-probe watch URL SECONDS [STOPFILE]`: a request every 10 ms for SECONDS (or until
STOPFILE exists), prints JSON with the longest time without an answer (the outage)
and the nodes that answered, in order.
`lab-probe spread URL COUNT`: COUNT requests, each on a new connection; prints how many
each backend node answered and which source addresses the backends saw."""

import json
import os
import sys
import time
import urllib.request


def get(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode().strip()


def watch(url, seconds, stopfile=None):
    start = time.monotonic()
    last_ok = None
    longest = 0.0
    answers = []
    failures = 0
    while time.monotonic() - start < seconds and not (stopfile and os.path.exists(stopfile)):
        t = time.monotonic()
        try:
            node = get(url, 0.2).split()[0]
        except OSError:
            failures += 1
        else:
            if last_ok is not None:
                longest = max(longest, t - last_ok)
            last_ok = t
            if not answers or answers[-1] != node:
                answers.append(node)
        time.sleep(max(0.0, 0.01 - (time.monotonic() - t)))
    return {"url": url, "outage_s": round(longest, 3), "failed_requests": failures, "answered_by": answers}


def spread(url, count):
    nodes = {}
    sources = {}
    failures = 0
    for _attempt in range(count):
        try:
            node, _saw, source = get(url, 2).split()[:3]
        except (OSError, ValueError):
            failures += 1
            continue
        nodes[node] = nodes.get(node, 0) + 1
        sources[source] = sources.get(source, 0) + 1
    by_node = ", ".join(f"{n} {c}" for n, c in sorted(nodes.items()))
    seen = ", ".join(f"{s} x{c}" for s, c in sorted(sources.items()))
    return f"{count} requests: {by_node or 'none answered'}; backends saw {seen or '-'}; {failures} failed"


if __name__ == "__main__":
    if sys.argv[1] == "spread":
        print(f"{sys.argv[2]} -> {spread(sys.argv[2], int(sys.argv[3]))}")
    elif sys.argv[1] == "get":
        try:
            print(get(sys.argv[2], 2))
        except OSError as exc:
            print(f"no answer ({exc})")
    else:
        print(json.dumps(watch(sys.argv[2], float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)))
