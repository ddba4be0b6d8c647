"""An echo backend: answers every HTTP request with the source address it sees.

``python -m lbspeaker.echo --port 8080 --name node1`` answers
``{"node": "node1", "client": "198.51.100.130", "client_port": 40112, "server": "..."}``
on every path, with keep-alive, on IPv4 and IPv6. Used by the lab, the
forwarding tests and bench/forwarding to show what a backend sees under
Cluster (a node's address) and Local (the client's address).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal

MAX_HEADER = 16384


def client_address(peer: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """The peer's address, with IPv4-mapped IPv6 addresses shown as IPv4."""
    host = peer[0]
    return host.removeprefix("::ffff:") if host.startswith("::ffff:") and "." in host else host


class EchoServer:
    def __init__(self, name: str) -> None:
        self.name = name

    def answer(self, peer: tuple[str, int], local: tuple[str, int]) -> bytes:
        body = json.dumps(
            {"node": self.name, "client": client_address(peer), "client_port": peer[1], "server": local[0]}
        ).encode() + b"\n"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        try:
            while True:
                async with asyncio.timeout(30):
                    request = await reader.readuntil(b"\r\n\r\n")
                response = self.answer(peer, local)
                close = b"connection: close" in request.lower() or request.startswith(b"GET / HTTP/1.0")
                if close:
                    response = response.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
                writer.write(response)
                await writer.drain()
                if close:
                    break
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(port: int, name: str, host: str | None = None) -> None:
    server = await asyncio.start_server(EchoServer(name).handle, host, port, limit=MAX_HEADER, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbspeaker.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", required=True, help="node name to report")
    parser.add_argument("--address", default=None, help="address to listen on (default: all, IPv4 and IPv6)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.name, args.address))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
