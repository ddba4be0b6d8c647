#!/usr/bin/env python
"""Lab client probe. `lab-probe get URL`: one request, prints the answer.
`lab-probe watch URL SECONDS`: a request every 10 ms for SECONDS, prints JSON with
the longest time without an answer (the outage) and the nodes that answered."""

import json
import sys
import time
import urllib.request


def get(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode().strip()


def watch(url, seconds):
    start = time.monotonic()
    last_ok = None
    longest = 0.0
    answers = []
    failures = 0
    while time.monotonic() - start < seconds:
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


if __name__ == "__main__":
    if sys.argv[1] == "get":
        try:
            print(get(sys.argv[2], 2))
        except OSError as exc:
            print(f"no answer ({exc})")
    else:
        print(json.dumps(watch(sys.argv[2], float(sys.argv[3]))))
