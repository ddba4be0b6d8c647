"""Client-side probes run inside a lab namespace (``ip netns exec``).

    l2probe.py arp IFACE IP WAIT        -> JSON list of MACs answering who-has IP
    l2probe.py ndp IFACE IP WAIT        -> JSON list of MACs answering an NS for IP
    l2probe.py arpfirst IFACE INTERVAL_MS
        long-lived, for benches: for each line "IP TIMEOUT_S" on stdin, a who-has
        IP every INTERVAL_MS until the first ARP frame from IP arrives (a reply to
        us, or a gratuitous one), then on until the first reply to us; prints
        "IP T KIND MAC T_REPLY" (T: time.monotonic(), the same clock in every
        namespace; KIND reply|gratuitous; T_REPLY "none" if no reply came within
        TIMEOUT_S) or "IP timeout".
    l2probe.py tcp IP PORT              -> what the backend said (exit 1 if nothing)
    l2probe.py get URL                  -> body of an HTTP GET (exit 1 on error)
    l2probe.py outage IP PORT SECONDS OUT
        TCP connect every 10 ms for SECONDS; writes JSON to OUT: the longest gap
        between two successful probes that has failures in it ("outage_s"),
        counts, and which backends answered.
"""

import asyncio
import contextlib
import errno
import ipaddress
import json
import select
import socket
import struct
import subprocess
import sys
import time
import urllib.request

from lbspeaker import arp, membership, ndp
from lbspeaker.layer2 import ETH_P_ALL, hardware_address


def _raw(iface: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.settimeout(0.05)
    return s


def _own_address(iface: str, family: int) -> str:
    out = subprocess.run(["ip", "-j", "addr", "show", iface], capture_output=True, text=True, check=True).stdout
    for a in json.loads(out)[0]["addr_info"]:
        if a["family"] == ("inet" if family == 4 else "inet6") and a.get("scope") == "global":
            return a["local"]
    raise SystemExit("no address")


def who_has(kind: str, iface: str, ip: str, wait: float) -> list[str]:
    mac = hardware_address(iface)
    s = _raw(iface)
    target = ipaddress.ip_address(ip)
    if kind == "arp":
        frame = arp.request_for(target, ipaddress.IPv4Address(_own_address(iface, 4)), mac)
    else:
        frame = ndp.encode_ns(mac=mac, src_ip=ipaddress.IPv6Address(_own_address(iface, 6)), target=target)
    s.send(frame)
    seen: list[str] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            data = s.recv(2048)
        except TimeoutError:
            continue
        try:
            if kind == "arp":
                p = arp.decode(data)
                if p.op == arp.OP_REPLY and p.sender_ip == target and p.target_mac == mac:
                    who = p.sender_mac
                else:
                    continue
            else:
                t, who = ndp.decode_na(data)
                if t != target or who is None or data[0:6] != mac:
                    continue
        except arp.MalformedPacket:
            continue
        text = ":".join(f"{b:02x}" for b in who)
        if text not in seen:
            seen.append(text)
    return seen


def first_arp(s: socket.socket, mac: bytes, own: ipaddress.IPv4Address, target: ipaddress.IPv4Address,
              interval: float, timeout: float) -> tuple[float, str, str, float | None] | None:
    """Ask who-has ``target`` every ``interval`` s until an ARP frame from it arrives: (time, kind, MAC,
    time of the first answer to our own request: the same frame's, or a later one's; None if none came
    before ``timeout``). None when nothing came."""
    frame = arp.request_for(target, own, mac)
    deadline = time.monotonic() + timeout
    next_send = 0.0
    first: tuple[float, str, str] | None = None
    while (now := time.monotonic()) < deadline:
        if now >= next_send:
            s.send(frame)
            next_send = now + interval
        ready, _w, _x = select.select([s], [], [], max(0.0, min(next_send, deadline) - time.monotonic()))
        if not ready:
            continue
        data = s.recv(2048)
        seen = time.monotonic()
        try:
            p = arp.decode(data)
        except arp.MalformedPacket:
            continue
        if p.sender_ip != target or p.sender_mac == mac:
            continue
        if p.op == arp.OP_REPLY and p.target_mac == mac:
            kind = "reply"
        elif p.target_ip == target:  # gratuitous: the new owner telling everyone
            kind = "gratuitous"
        else:
            continue
        if first is None:
            first = (seen, kind, ":".join(f"{b:02x}" for b in p.sender_mac))
        if kind == "reply":
            return (*first, seen)
    return None if first is None else (*first, None)


def drain(s: socket.socket, limit: int = 10_000) -> int:
    """Read and drop what is queued on the non-blocking ``s``; how many frames. At most ``limit``: a link
    flooded faster than this reads is an error, not an endless loop."""
    for count in range(limit + 1):
        try:
            if not s.recv(2048):
                return count
        except BlockingIOError:
            return count
    raise RuntimeError(f"more than {limit} frames queued while idle and still coming: the link is flooded")


def arp_first_loop(iface: str, interval_ms: float) -> None:
    mac = hardware_address(iface)
    own = ipaddress.IPv4Address(_own_address(iface, 4))
    s = _raw(iface)
    s.setblocking(False)
    print("ready", flush=True)
    for line in sys.stdin:
        ip, timeout = line.split()
        drain(s)  # what arrived while idle is old news
        found = first_arp(s, mac, own, ipaddress.IPv4Address(ip), interval_ms / 1000, float(timeout))
        if found is None:
            print(f"{ip} timeout", flush=True)
            continue
        reply = "none" if found[3] is None else f"{found[3]:.6f}"
        print(f"{ip} {found[0]:.6f} {found[1]} {found[2]} {reply}", flush=True)


def tcp_once(ip: str, port: int, timeout: float) -> str | None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        data = s.recv(64)
        return data.decode().strip() or None
    except OSError:
        return None
    finally:
        s.close()


async def probe_reason(ip: str, port: int, timeout: float) -> str:
    """One TCP connection: what the backend said, or why there was none ("-timeout", "-refused", "-reset",
    "-unreachable", "-error"; "-empty" for a connection closed without a word). bench/chaos reads the reasons."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                data = await reader.read(64)
            finally:
                writer.close()
        return data.decode().strip() or "-empty"
    except TimeoutError:
        return "-timeout"
    except ConnectionRefusedError:
        return "-refused"
    except ConnectionResetError:
        return "-reset"
    except OSError as exc:
        return "-unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "-error"


async def _probe_async(ip: str, port: int, timeout: float) -> str | None:
    who = await probe_reason(ip, port, timeout)
    return None if who.startswith("-") else who


async def _outage_async(ip: str, port: int, seconds: float) -> list[tuple[float, str | None]]:
    """Start a TCP probe every 10 ms, whether or not earlier ones finished: a probe
    whose SYN went to a dead MAC times out, and the next ones carry on."""
    interval = 0.01
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[tuple[float, asyncio.Task[str | None]]] = []
    n = 0
    while True:
        due = start + n * interval
        if due - start >= seconds:
            break
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append((loop.time() - start, asyncio.ensure_future(_probe_async(ip, port, 0.5))))
        n += 1
    return [(t, await task) for t, task in tasks]


def outage(ip: str, port: int, seconds: float, out: str) -> None:
    results = asyncio.run(_outage_async(ip, port, seconds))
    worst = 0.0
    last_ok = None
    failed_since_ok = False
    for t, who in results:
        if who is None:
            failed_since_ok = True
            continue
        if failed_since_ok and last_ok is not None:
            worst = max(worst, t - last_ok)
        last_ok = t
        failed_since_ok = False
    if failed_since_ok:  # never recovered
        worst = max(worst, results[-1][0] - (last_ok or 0.0))
    answered: list[str] = []
    for _t, who in results:
        if who and (not answered or answered[-1] != who):
            answered.append(who)
    doc = {
        "outage_s": round(worst, 4),
        "probes": len(results),
        "failed": sum(1 for _t, w in results if w is None),
        "recovered": bool(results) and results[-1][1] is not None,
        "answered": answered,
    }
    with open(out, "w") as fh:
        json.dump(doc, fh)


def garbage(iface: str, dst_mac: str, count: int) -> None:
    """Truncated and malformed ARP/NDP frames at ``dst_mac``."""
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    mac = hardware_address(iface)
    s = _raw(iface)
    good_arp = dst + arp.request_for(ipaddress.IPv4Address("198.51.100.100"), ipaddress.IPv4Address("198.51.100.50"),
                                     mac)[6:]
    good_ns = ndp.encode_ns(mac=mac, src_ip=ipaddress.IPv6Address("2001:db8:1::50"),
                            target=ipaddress.IPv6Address("2001:db8:1::100"))
    good_ns = dst + good_ns[6:]
    bad_opt = bytearray(good_ns)
    bad_opt[79] = 0
    samples = [good_arp[:20], good_arp[:30], good_ns[:60], good_ns[:80], bytes(bad_opt),
               dst + mac + b"\x08\x06" + b"\xff" * 28]
    for i in range(count):
        frame = samples[i % len(samples)]
        with contextlib.suppress(OSError):
            s.send(frame if len(frame) >= 14 else frame + b"\x00" * (14 - len(frame)))


def heartbeats(dst: str, port: int, secret: str, node: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msgs = [
        membership.encode(membership.Message(membership.HEARTBEAT, node, 2**62, 1, frozenset()), b"w" * 32),
        membership.encode(membership.Message(membership.HEARTBEAT, node, 2**62, 2, frozenset()), secret.encode()),
        membership.encode(membership.Message(membership.HEARTBEAT, "intruder", 1, 1, frozenset()), secret.encode()),
        b"\x00" * 80,
    ]
    for m in msgs:
        s.sendto(m, (dst, port))


def replay(dst: str, port: int, secret: str, node: str, src: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    old = membership.encode(membership.Message(membership.HEARTBEAT, node, 1, 1, frozenset()), secret.encode())
    for _unused in range(3):
        s.sendto(old, (dst, port))


def main() -> int:
    cmd = sys.argv[1]
    if cmd in ("arp", "ndp"):
        print(json.dumps(who_has(cmd, sys.argv[2], sys.argv[3], float(sys.argv[4]))))
        return 0
    if cmd == "arpfirst":
        arp_first_loop(sys.argv[2], float(sys.argv[3]))
        return 0
    if cmd == "tcp":
        who = tcp_once(sys.argv[2], int(sys.argv[3]), 1.0)
        if who is None:
            return 1
        print(who)
        return 0
    if cmd == "get":
        try:
            with urllib.request.urlopen(sys.argv[2], timeout=3) as r:
                sys.stdout.write(r.read().decode())
            return 0
        except OSError:
            return 1
    if cmd == "garbage":
        garbage(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    if cmd == "heartbeats":
        heartbeats(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return 0
    if cmd == "replay":
        replay(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
        return 0
    if cmd == "outage":
        outage(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
