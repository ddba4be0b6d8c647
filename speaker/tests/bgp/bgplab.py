"""Network-namespace lab for the BGP interop tests and bench/bgp.

A router namespace with a bridge ``br0`` (198.51.100.1/24, 2001:db8:1::1/64)
and node namespaces each attached to the bridge by a veth (``eth0``,
198.51.100.(10+i)/24, 2001:db8:1::(10+i)/64). Every name carries the prefix
``lbbg-`` and a per-run suffix; ``Lab.destroy`` removes all by name and kills
only processes the lab started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

ROUTER_V4 = "198.51.100.1"
ROUTER_V6 = "2001:db8:1::1"
ROUTER_ASN = 64500
NODE_ASN = 64501
SRC = Path(__file__).resolve().parents[2] / "src"


def node_v4(i: int) -> str:
    return f"198.51.100.{10 + i}"


def node_v6(i: int) -> str:
    return f"2001:db8:1::{10 + i:x}"


def run(cmd: list[str], check: bool = True, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, check=False, timeout=timeout, capture_output=True, text=True, **kw)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()} {proc.stdout.strip()}")
    return proc


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``pred`` until truthy; bounded in time. Returns its value or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (subprocess.SubprocessError, OSError, ValueError, RuntimeError) as exc:
            last = exc
            if isinstance(last, subprocess.CalledProcessError):
                last = f"{exc}: {last.stderr}"
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name

    def create(self) -> None:
        run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        for s in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                  "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                  "net.ipv4.fib_multipath_hash_policy=1"):
            self.exec(["sysctl", "-qw", s], check=False)

    def delete(self) -> None:
        run(["ip", "netns", "del", self.name], check=False)

    def ip(self, *args: str, check: bool = True) -> str:
        return run(["ip", "-n", self.name, *args], check=check).stdout

    def exec(self, cmd: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.name, *cmd], check=check, timeout=timeout)

    def popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)

    def route(self, prefix: str) -> str:
        fam = "-6" if ":" in prefix else "-4"
        return self.ip(fam, "route", "show", prefix, check=False)


class Lab:
    """Router + nodes in namespaces; a temp dir for every daemon's files."""

    def __init__(self, nodes: int = 1, tag: str | None = None) -> None:
        self.tag = tag or f"{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
        self.router = Netns(f"lbbg-r-{self.tag}")
        self.nodes = [Netns(f"lbbg-n{i}-{self.tag}") for i in range(1, nodes + 1)]
        self.dir = Path(tempfile.mkdtemp(prefix=f"lbbg-{self.tag}-"))
        os.chmod(self.dir, 0o755)
        self.procs: list[subprocess.Popen[Any]] = []
        self.pidfiles: list[Path] = []

    def create(self) -> Lab:
        self.router.create()
        r = self.router
        r.ip("link", "add", "br0", "type", "bridge")
        r.ip("addr", "add", f"{ROUTER_V4}/24", "dev", "br0")
        r.ip("addr", "add", f"{ROUTER_V6}/64", "dev", "br0", "nodad")
        r.ip("link", "set", "br0", "up")
        for i, n in enumerate(self.nodes, start=1):
            n.create()
            r.ip("link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", n.name)
            r.ip("link", "set", f"v{i}", "master", "br0", "up")
            n.ip("addr", "add", f"{node_v4(i)}/24", "dev", "eth0")
            n.ip("addr", "add", f"{node_v6(i)}/64", "dev", "eth0", "nodad")
            n.ip("link", "set", "eth0", "up")
        return self

    def track(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.procs.append(proc)
        return proc

    def destroy(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        killed: list[int] = []
        for pidfile in self.pidfiles:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(pidfile.read_text().split()[0])
                # Only a daemon this lab started writes into the lab's own temp dir.
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        deadline = time.monotonic() + 5
        while killed and time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in killed):
            time.sleep(0.05)
        for ns in [*self.nodes, self.router]:
            with contextlib.suppress(Exception):
                ns.delete()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- BIRD ------------------------------------------------------------

    def start_bird(self, peers_conf: str, bfd: bool = False, extra: str = "") -> Bird:
        bird = Bird(self, peers_conf, bfd, extra)
        bird.start()
        return bird

    # ---- speaker ---------------------------------------------------------

    def start_speaker(self, node: int, bgp: dict[str, Any], announcements: Iterable[dict[str, Any]],
                      name: str = "") -> Speaker:
        sp = Speaker(self, node, bgp, list(announcements), name or f"sp{node}")
        sp.start()
        return sp


class Bird:
    def __init__(self, lab: Lab, peers_conf: str, bfd: bool, extra: str) -> None:
        self.lab = lab
        self.dir = lab.dir / f"bird-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.ctl = self.dir / "bird.ctl"
        conf = f"""
log "{self.dir}/bird.log" all;
router id {ROUTER_V4};
protocol device {{ scan time 10; }}
protocol kernel k4 {{ ipv4 {{ export all; import none; }}; merge paths on; }}
protocol kernel k6 {{ ipv6 {{ export all; import none; }}; merge paths on; }}
{"protocol bfd { }" if bfd else ""}
template bgp nodes {{
  local {ROUTER_V4} as {ROUTER_ASN};
  passive on;
  error wait time 1, 5;
  connect retry time 1;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
{extra}
{peers_conf}
"""
        (self.dir / "bird.conf").write_text(conf)

    def start(self) -> None:
        pid = self.dir / "bird.pid"
        self.lab.pidfiles.append(pid)
        self.lab.router.exec(["bird", "-c", str(self.dir / "bird.conf"), "-s", str(self.ctl), "-P", str(pid)])
        wait_for(self.ctl.exists, 10, what="bird control socket")

    def cmd(self, *args: str, check: bool = True) -> str:
        return self.lab.router.exec(["birdc", "-s", str(self.ctl), *args], check=check).stdout

    def protocol(self, name: str) -> str:
        return self.cmd("show", "protocols", "all", name)

    def established(self, name: str) -> bool:
        return "Established" in self.cmd("show", "protocols", name)

    def route(self, prefix: str) -> str:
        out = self.cmd("show", "route", "for", prefix, "all", check=False)
        return out if prefix.split("/", maxsplit=1)[0] in out else ""

    def routes(self, table: str = "master4") -> str:
        return self.cmd("show", "route", "table", table)


class Frr:
    """zebra + bgpd (+ bfdd) of FRR, run by hand in the router namespace."""

    def __init__(self, lab: Lab, bgp_conf: str, bfd: bool = False) -> None:
        self.lab = lab
        self.bfd = bfd
        self.dir = lab.dir / f"frr-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        shutil.chown(self.dir, "frr", "frr")
        self.conf = self.dir / "frr.conf"
        self.conf.write_text(f"""frr defaults traditional
hostname lbbg-router
log file {self.dir}/frr.log debugging
!
{bgp_conf}
!
""")
        shutil.chown(self.conf, "frr", "frr")

    def start(self) -> None:
        daemons = ["zebra", "bgpd"] + (["bfdd"] if self.bfd else [])
        for d in daemons:
            pid = self.dir / f"{d}.pid"
            self.lab.pidfiles.append(pid)
            cmd = [f"/usr/lib/frr/{d}", "-d", "-u", "frr", "-g", "frr", "-z", str(self.dir / "zserv.api"),
                   "-i", str(pid), "--vty_socket", str(self.dir), "-f", str(self.conf), "-A", "127.0.0.1"]
            if d == "bfdd":
                cmd += ["--bfdctl", str(self.dir / "bfdd.sock")]
            self.lab.router.exec(cmd)
            wait_for(pid.exists, 15, what=f"FRR {d} pid file")
            if d == "zebra":
                wait_for((self.dir / "zserv.api").exists, 15, what="zebra API socket")
        wait_for(lambda: "bgpd" in self.vtysh("show daemons"), 15, what="vtysh reaching bgpd")

    def vtysh(self, *commands: str) -> str:
        cmd = ["vtysh", "--vty_socket", str(self.dir)]
        for c in commands:
            cmd += ["-c", c]
        return self.lab.router.exec(cmd, check=False).stdout

    def json(self, command: str) -> Any:
        out = self.vtysh(command)
        return json.loads(out) if out.strip() else {}

    def established(self, address: str) -> bool:
        data = self.json(f"show bgp neighbors {address} json")
        return data.get(address, {}).get("bgpState") == "Established"

    def route(self, prefix: str) -> dict[str, Any]:
        afi = "ipv6" if ":" in prefix else "ipv4"
        data = self.json(f"show bgp {afi} unicast {prefix} json")
        return data if data.get("paths") else {}


class Gobgp:
    """gobgpd in the router namespace, API on the namespace's own loopback."""

    def __init__(self, lab: Lab, toml: str) -> None:
        self.lab = lab
        self.dir = lab.dir / f"gobgp-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.conf = self.dir / "gobgpd.toml"
        self.conf.write_text(toml)

    def start(self) -> None:
        with open(self.dir / "gobgpd.log", "ab") as log:
            self.lab.track(self.lab.router.popen(
                ["gobgpd", "-f", str(self.conf), "--api-hosts", "127.0.0.1:50051", "-l", "info"],
                stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: self.cli("global").strip(), 20, what="gobgpd API")

    def cli(self, *args: str) -> str:
        return self.lab.router.exec(["gobgp", "-u", "127.0.0.1", "-p", "50051", *args], check=False).stdout

    def neighbors(self) -> list[dict[str, Any]]:
        out = self.cli("neighbor", "-j")
        return json.loads(out) if out.strip() else []

    def established(self, address: str) -> bool:
        for n in self.neighbors():
            if n.get("state", {}).get("neighbor_address") == address:
                return n.get("state", {}).get("session_state") == 6
        return False

    def rib(self, family: str = "ipv4") -> dict[str, Any]:
        out = self.cli("global", "rib", "-a", family, "-j")
        return json.loads(out) if out.strip() else {}


class Speaker:
    """``python -m lbspeaker.bgp`` in a node namespace."""

    def __init__(self, lab: Lab, node: int, bgp: dict[str, Any], announcements: list[dict[str, Any]],
                 name: str) -> None:
        self.lab = lab
        self.node = lab.nodes[node - 1]
        self.config = lab.dir / f"{name}.yaml"
        self.status_file = lab.dir / f"{name}.status.json"
        self.log = lab.dir / f"{name}.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.write(bgp, announcements)

    def write(self, bgp: dict[str, Any], announcements: list[dict[str, Any]]) -> None:
        self.config.write_text(yaml.safe_dump({"bgp": bgp, "announcements": announcements}))

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(SRC))
        with open(self.log, "ab") as log:
            self.proc = self.lab.track(self.node.popen(
                [sys.executable, "-m", "lbspeaker.bgp", "--config", str(self.config),
                 "--status-file", str(self.status_file), "--log-level", "DEBUG"],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        # The first status file means the signal handlers are installed (SIGUSR1 would kill it before).
        wait_for(lambda: self.status_file.exists() or self.proc.poll() is not None, 20, 0.05, "speaker start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"speaker exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def status(self) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError):
            self.status_file.unlink()
        self.send(signal.SIGUSR1)
        wait_for(self.status_file.exists, 10, 0.05, "status file")
        return json.loads(self.status_file.read_text())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)
