"""A TCP relay from inside network namespaces to a server on this host's loopback.

The control plane of the tests listens on 127.0.0.1 of the host's namespace;
speakers run in namespaces of their own and cannot reach it, and the tests may
not add routes to the host. This process opens, for each namespace given, a
listening socket on that namespace's 127.0.0.1 (setns(2) into it for the
socket() and bind(), then back), and forwards every connection to the target
on the host's loopback. A socket keeps the namespace it was made in.

    python netns_relay.py --target 127.0.0.1:6443 NS:PORT [NS:PORT ...]

NS is a namespace's name (``ip netns``) or a path to it (``/proc/PID/ns/net``: the lab's containers).

Prints "ready" once every listener is up; runs until killed.
:func:`start` runs it for a test or a bench and writes the kubeconfig the speakers in the namespaces use.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import yaml

CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def listen_in(namespace: str, port: int) -> socket.socket:
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    # a name made by `ip netns add`, or a path such as /proc/PID/ns/net (a podman container's)
    there = os.open(namespace if namespace.startswith("/") else f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        setns(there)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            sock.setblocking(False)
        finally:
            setns(home)
    finally:
        os.close(there)
        os.close(home)
    return sock


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("listen", nargs="+")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    servers = []
    for spec in args.listen:
        namespace, lport = spec.rsplit(":", 1)
        servers.append(await asyncio.start_server(relay, sock=listen_in(namespace, int(lport))))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))
    return 0


def read_line(stream: IO[str], timeout: float, what: str, limit: int = 65536) -> str:
    """The next line a child process writes to the pipe ``stream`` (with its newline; "" at end of file), within
    ``timeout`` seconds and ``limit`` bytes, else an error naming ``what``. Reads the pipe a byte at a time, so
    nothing past the line is taken (read the pipe only this way). UTF-8."""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    line = bytearray()
    while not line.endswith(b"\n"):
        if len(line) >= limit:
            raise RuntimeError(f"{what}: a line longer than {limit} bytes: {bytes(line[:80])!r}...")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: no line within {timeout:g} s (got {line.decode(errors='replace')!r})")
        readable = select.select([fd], [], [], left)[0]
        if readable:
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
    return line.decode(errors="replace")


def start(apiserver_port: int, namespaces: Iterable[str], port: int, kubeconfig: Path,
          out: Path, ready_timeout: float = 30.0) -> subprocess.Popen[str]:
    """The relay from 127.0.0.1:``port`` of each namespace to the apiserver on the host's loopback (stop it by its
    PID: it runs in a session of its own), and at ``out`` the ``kubeconfig`` pointed at it. An error if it does
    not say "ready" within ``ready_timeout`` seconds."""
    relay = subprocess.Popen(
        [sys.executable, __file__, "--target", f"127.0.0.1:{apiserver_port}", *(f"{ns}:{port}" for ns in namespaces)],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert relay.stdout is not None
    try:
        line = read_line(relay.stdout, ready_timeout, "the relay")
    except (TimeoutError, RuntimeError) as exc:
        line = str(exc)
    if line.strip() != "ready":
        relay.kill()
        relay.wait(timeout=10)
        relay.stdout.close()
        raise RuntimeError(f"netns_relay.py did not start: {line.strip() or 'it exited'}")
    config = yaml.safe_load(kubeconfig.read_text())
    for c in config["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"  # the relay, inside each namespace
    out.write_text(yaml.safe_dump(config))
    return relay


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
