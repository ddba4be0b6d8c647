"""Test backend for one lab node: TCP 8080 answers the node name (IPv4 and IPv6);
HTTP 10256 ``/healthz`` imitates kube-proxy: 200 with localEndpoints 1 while
HEALTH_FILE exists, else 503 with localEndpoints 0."""

import asyncio
import os
import socket
import sys


async def main(name: str, health_file: str) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode() + b"\n")
        await writer.drain()
        writer.close()

    async def health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        except (asyncio.IncompleteReadError, TimeoutError, asyncio.LimitOverrunError):
            writer.close()
            return
        ok = os.path.exists(health_file)
        body = b'{"localEndpoints": %d}' % (1 if ok else 0)
        status = b"200 OK" if ok else b"503 Service Unavailable"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    def dual_stack(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        return s

    s1 = await asyncio.start_server(echo, sock=dual_stack(8080), backlog=512)
    s2 = await asyncio.start_server(health, sock=dual_stack(10256))
    async with s1, s2:
        await asyncio.gather(s1.serve_forever(), s2.serve_forever())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
