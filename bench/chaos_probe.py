"""The client of bench/chaos, run inside the client namespace for the whole bench.

    chaos_probe.py OUT STOP_FILE MAX_SECONDS PORT VIP [VIP ...]

Every 10 ms, for every VIP, a TCP connection on its own (0.5 s timeout), so a
probe lost to a dead MAC or route does not delay the next. Each finished probe
appends "VIP START WHO" to OUT (START: time.monotonic() when it was sent, the
same clock as the bench's in every namespace; WHO: the backend's node name, or
why the probe failed: "-timeout", "-refused", "-reset", "-unreachable", "-error").
Stops when STOP_FILE exists or after MAX_SECONDS, whichever comes first.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

# the probe is the speaker tests' (l2probe.py), with its reasons for a failed connection
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speaker" / "tests"))
from l2probe import probe_reason

INTERVAL_S = 0.01
TIMEOUT_S = 0.5


async def probe_all(out: str, stop_file: str, max_s: float, port: int, vips: list[str]) -> None:
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(vip: str) -> None:
        t = time.monotonic()
        who = await probe_reason(vip, port, TIMEOUT_S)
        lines.append(f"{vip} {t:.4f} {who}\n")

    start = loop.time()
    n = 0
    with open(out, "a", buffering=1 << 16) as fh:
        while loop.time() - start < max_s:
            due = start + n * INTERVAL_S
            await asyncio.sleep(max(0.0, due - loop.time()))
            for vip in vips:
                task = asyncio.ensure_future(one(vip))
                pending.add(task)
                task.add_done_callback(pending.discard)
            n += 1
            if n % 10 == 0:  # every 100 ms: write out, look for the stop file
                fh.writelines(lines)
                lines.clear()
                fh.flush()
                if os.path.exists(stop_file):
                    break
        if pending:
            await asyncio.wait(pending, timeout=TIMEOUT_S + 1)
        fh.writelines(lines)


def main() -> int:
    out, stop_file, max_s, port, *vips = sys.argv[1:]
    asyncio.run(probe_all(out, stop_file, float(max_s), int(port), vips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
