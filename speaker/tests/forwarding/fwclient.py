"""Client side of the forwarding tests and bench, run inside the client namespace.

  fwclient.py get HOST PORT                   one request; prints the echo's JSON
  fwclient.py burst HOST PORT COUNT CONC      COUNT connections, CONC at a time;
                                              prints counts per node and per client address
  fwclient.py steady HOST PORT SECONDS KEEP   one request after another (new connection each)
                                              for SECONDS, plus KEEP keep-alive connections
                                              asked once at the start and once at the end
  fwclient.py load HOST PORT SECONDS CONC     CONC workers on new connections for SECONDS;
                                              prints requests/s and latency percentiles
  fwclient.py latency HOST PORT SECONDS       blocking sockets, one connection at a time
                                              (less client jitter than asyncio); percentiles

Every request has a timeout; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import sys
import time
from collections import Counter

TIMEOUT_S = 2.0
MAX_REQUESTS = 200_000
REQUEST = b"GET / HTTP/1.1\r\nHost: lbfw\r\n\r\n"


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, object]:
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return json.loads(await reader.readexactly(length))


async def one(host: str, port: int) -> dict[str, object]:
    """One request on a new connection; never raises: failures come back as ``error``."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                return await ask(reader, writer)
            finally:
                writer.close()
    except TimeoutError:
        return {"error": "timeout"}
    except OSError as exc:
        return {"error": errno.errorcode.get(exc.errno or 0, type(exc).__name__)}
    except (asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
        return {"error": type(exc).__name__}


async def burst(host: str, port: int, count: int, concurrency: int) -> dict[str, object]:
    nodes: Counter[str] = Counter()
    clients: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    todo = iter(range(min(count, MAX_REQUESTS)))

    async def worker() -> None:
        for _unused in todo:
            answer = await one(host, port)
            if "error" in answer:
                errors[str(answer["error"])] += 1
            else:
                nodes[str(answer["node"])] += 1
                clients[str(answer["client"])] += 1

    await asyncio.gather(*(worker() for _unused in range(concurrency)))
    return {"nodes": dict(nodes), "clients": dict(clients), "errors": dict(errors)}


async def keepalive_round(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]) -> list[object]:
    out: list[object] = []
    for conn in conns:
        if conn is None:
            out.append({"error": "not connected"})
            continue
        try:
            async with asyncio.timeout(TIMEOUT_S):
                out.append(await ask(*conn))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
            out.append({"error": type(exc).__name__})
    return out


async def steady(host: str, port: int, seconds: float, keep: int) -> dict[str, object]:
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []
    for _unused in range(keep):
        try:
            async with asyncio.timeout(TIMEOUT_S):
                conns.append(await asyncio.open_connection(host, port))
        except (OSError, TimeoutError):
            conns.append(None)
    before = await keepalive_round(conns)
    print("ready", flush=True, file=sys.stderr)
    requests: list[tuple[float, float, object, object]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(requests) < MAX_REQUESTS:
        started = time.monotonic()
        answer = await one(host, port)
        requests.append((started, time.monotonic(), answer.get("node"), answer.get("error")))
        await asyncio.sleep(0.002)
    after = await keepalive_round(conns)
    for conn in conns:
        if conn:
            conn[1].close()
    return {"requests": requests, "keepalive_before": before, "keepalive_after": after}


async def load(host: str, port: int, seconds: float, concurrency: int) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < end and len(latencies) < MAX_REQUESTS:
            started = time.perf_counter()
            answer = await one(host, port)
            if "error" in answer:
                errors += 1
            else:
                latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _unused in range(concurrency)))
    elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6, 1) if latencies else 0.0

    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 3),
            "rps": round(len(latencies) / elapsed, 1), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99)}


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)

    def pct(p: float) -> float:
        return round(samples[min(len(samples) - 1, int(p * len(samples)))] * 1e6, 1) if samples else 0.0

    return {"p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99)}


def latency(host: str, port: int, seconds: float) -> dict[str, object]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    samples: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(samples) < MAX_REQUESTS:
        started = time.perf_counter()
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(TIMEOUT_S)
                sock.connect((host, port))
                sock.sendall(REQUEST)
                data = b""
                while b"}" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed early")
                    data += chunk
            samples.append(time.perf_counter() - started)
        except OSError:
            errors += 1
    return {"requests": len(samples), "errors": errors, **percentiles(samples)}


def main(argv: list[str]) -> int:
    mode, host, port = argv[0], argv[1], int(argv[2])
    if mode == "get":
        answer = asyncio.run(one(host, port))
        print(json.dumps(answer))
        return 1 if "error" in answer else 0
    if mode == "burst":
        print(json.dumps(asyncio.run(burst(host, port, int(argv[3]), int(argv[4])))))
    elif mode == "steady":
        print(json.dumps(asyncio.run(steady(host, port, float(argv[3]), int(argv[4])))))
    elif mode == "latency":
        print(json.dumps(latency(host, port, float(argv[3]))))
    elif mode == "load":
        print(json.dumps(asyncio.run(load(host, port, float(argv[3]), int(argv[4])))))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
