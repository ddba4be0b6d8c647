"""A Layer 2 lab in network namespaces: a bridge (in its own namespace), N
speaker nodes and a client. Used by the integration tests and bench/l2_failover.

Everything is named ``lbl2-<tag>-*`` (or ``<name>-<tag>-*``); ``destroy()`` removes it by name and
ends only the processes this lab started, by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SPEAKER_ROOT = HERE.parent
PY = sys.executable
LB_SPEAKER = str(Path(PY).with_name("lb-speaker"))
VIP4 = "198.51.100.100"
VIP6 = "2001:db8:1::100"
SECRET = "lab-secret-0123456789abcdef0123456789abcdef"
BACKEND_PORT = 8080
HEALTH_PORT = 10256


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def node_v4(i: int) -> str:
    return f"198.51.100.{10 + i}"


def node_v6(i: int) -> str:
    return f"2001:db8:1::{10 + i}"


@dataclass
class Node:
    index: int
    name: str  # speaker node name
    ns: str
    port: str  # bridge port name in the bridge namespace
    mac: str = ""
    speaker: subprocess.Popen[bytes] | None = None
    backend: subprocess.Popen[bytes] | None = None
    keepalived: subprocess.Popen[bytes] | None = None
    config_path: str = ""
    log_path: str = ""


@dataclass
class Lab:
    n_nodes: int = 3
    tag: str = field(default_factory=lambda: f"{os.getpid() % 4096:x}{secrets.token_hex(2)}")
    nodes: list[Node] = field(default_factory=list)
    workdir: str = ""
    name: str = "lbl2"  # first part of every namespace name (benches use their own)

    def __post_init__(self) -> None:
        self.prefix = f"{self.name}-{self.tag}"
        self.br = f"{self.prefix}-br"
        self.client = f"{self.prefix}-c"
        self.workdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        self.nodes = [Node(i, f"node{i}", f"{self.prefix}-n{i}", f"pn{i}") for i in range(1, self.n_nodes + 1)]
        self.procs: list[subprocess.Popen[bytes]] = []

    # --- building -----------------------------------------------------------------

    def namespaces(self) -> list[str]:
        return [self.br, self.client] + [n.ns for n in self.nodes]

    def create(self) -> None:
        for ns in self.namespaces():
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.br, "link", "set", "br0", "up")
        hosts = [(n.ns, n.port, node_v4(n.index), node_v6(n.index)) for n in self.nodes]
        hosts.append((self.client, "pc", "198.51.100.50", "2001:db8:1::50"))
        for ns, port, v4, v6 in hosts:
            sh("ip", "-n", self.br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.br, "link", "set", port, "master", "br0", "up")
            # forwarding off: a namespace inherits the host's forwarding=1, and an old
            # owner that forwards to the new one hides an L2 black hole
            for knob in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                         "net.ipv6.conf.eth0.accept_dad=0", "net.ipv4.ip_forward=0",
                         "net.ipv6.conf.all.forwarding=0"):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", knob)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
        for n in self.nodes:
            n.mac = self.mac_of(n.ns)

    def mac_of(self, ns: str) -> str:
        out = sh("ip", "-n", ns, "-j", "link", "show", "eth0").stdout
        return json.loads(out)[0]["address"]

    def destroy(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        for ns in self.namespaces():
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def spawn(self, ns: str, *cmd: str, log: str | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out, stderr=out, start_new_session=True)
        self.procs.append(proc)
        return proc

    # --- backends and speakers ---------------------------------------------------

    def start_backends(self) -> None:
        for n in self.nodes:
            n.backend = self.spawn(n.ns, PY, str(HERE / "backend.py"), n.name, self.health_file(n))
        probe = (PY, str(HERE / "l2probe.py"), "tcp", "127.0.0.1", str(BACKEND_PORT))
        for n in self.nodes:
            self.wait_for(lambda n=n: self.exec(n.ns, *probe, check=False).returncode == 0, 10)

    def health_file(self, n: Node) -> str:
        return os.path.join(self.workdir, f"{n.name}.healthy")

    def set_healthy(self, n: Node, healthy: bool) -> None:
        path = Path(self.health_file(n))
        if healthy:
            path.write_text("1")
        else:
            path.unlink(missing_ok=True)

    def speaker_config(self, n: Node, services: list[dict[str, object]], **membership: object) -> dict[str, object]:
        return {
            "node": n.name,
            "nodes": [{"name": m.name, "address": node_v4(m.index)} for m in self.nodes],
            "membership": {"secret": SECRET, **membership},
            "interfaces": ["eth0"],
            "status": {"address": "127.0.0.1", "port": 7473},
            "services": services,
        }

    def write_config(self, n: Node, services: list[dict[str, object]], **membership: object) -> str:
        n.config_path = os.path.join(self.workdir, f"{n.name}.yaml")
        Path(n.config_path).write_text(yaml.safe_dump(self.speaker_config(n, services, **membership)))
        return n.config_path

    def start_speaker(self, n: Node, services: list[dict[str, object]] | None = None, **membership: object) -> None:
        if services is not None:
            self.write_config(n, services, **membership)
        n.log_path = os.path.join(self.workdir, f"{n.name}.log")
        n.speaker = self.spawn(n.ns, LB_SPEAKER, "run", "--config", n.config_path, log=n.log_path)

    def start_speakers(self, services: list[dict[str, object]], **membership: object) -> None:
        for n in self.nodes:
            self.start_speaker(n, services, **membership)
        for n in self.nodes:
            self.wait_for(lambda n=n: self.status(n) is not None, 15)

    def stop_speaker(self, n: Node, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        if n.speaker and n.speaker.poll() is None:
            n.speaker.send_signal(sig)
            if wait:
                n.speaker.wait(timeout=10)

    def exec(self, ns: str, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout)

    def status(self, n: Node) -> dict[str, object] | None:
        res = self.exec(n.ns, PY, str(HERE / "l2probe.py"), "get", "http://127.0.0.1:7473/status", check=False)
        if res.returncode != 0:
            return None
        return json.loads(res.stdout)

    def leaders(self, address: str) -> dict[str, tuple[str | None, bool]]:
        """Per running node: (leader it computes for ``address``, whether it announces it)."""
        out = {}
        for n in self.nodes:
            if not n.speaker or n.speaker.poll() is not None:
                continue
            doc = self.status(n)
            if doc is None:
                continue
            for a in doc["announcements"]:  # type: ignore[index]
                if a["address"] == address:
                    out[n.name] = (a["leader"], a["announcing"])
        return out

    def node_by_name(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    # --- client-side views ----------------------------------------------------

    def probe(self, *args: str, timeout: float = 30) -> str:
        return self.exec(self.client, PY, str(HERE / "l2probe.py"), *args, timeout=timeout).stdout

    def who_has(self, address: str) -> list[str]:
        """MACs answering ARP (IPv4) or NS (IPv6) for ``address``, seen from the client."""
        kind = "ndp" if ":" in address else "arp"
        return json.loads(self.probe(kind, "eth0", address, "0.4"))

    def tcp(self, address: str) -> str | None:
        res = self.exec(self.client, PY, str(HERE / "l2probe.py"), "tcp", address, str(BACKEND_PORT), check=False)
        return res.stdout.strip() if res.returncode == 0 else None

    def start_outage_probe(self, address: str, duration: float, out: str) -> subprocess.Popen[bytes]:
        return self.spawn(
            self.client, PY, str(HERE / "l2probe.py"), "outage", address, str(BACKEND_PORT), str(duration), out
        )

    def client_neighbor(self, address: str) -> str | None:
        out = sh("ip", "-n", self.client, "-j", "neigh", "show", address).stdout
        entries = json.loads(out or "[]")
        return entries[0].get("lladdr") if entries else None

    # --- failures -----------------------------------------------------------------

    def fail(self, node: Node, kind: str) -> None:
        """Lose ``node`` the way ``kind`` says: kill9, sigterm, linkdown or partition."""
        if kind == "kill9":
            self.stop_speaker(node, signal.SIGKILL)
        elif kind == "sigterm":
            self.stop_speaker(node, signal.SIGTERM)
        elif kind == "linkdown":
            sh("ip", "-n", node.ns, "link", "set", "eth0", "down")
        elif kind == "partition":
            rules = (
                f"add table bridge lbl2part\n"
                f"add chain bridge lbl2part isolate {{ type filter hook forward priority 0 ; }}\n"
                f"add rule bridge lbl2part isolate iifname {node.port} drop\n"
                f"add rule bridge lbl2part isolate oifname {node.port} drop\n"
            )
            subprocess.run(["ip", "netns", "exec", self.br, "nft", "-f", "-"], input=rules, text=True, check=True)

    def restore(self, node: Node, kind: str) -> None:
        """Undo ``fail``."""
        if kind in ("kill9", "sigterm"):
            self.start_speaker(node)
        elif kind == "linkdown":
            sh("ip", "-n", node.ns, "link", "set", "eth0", "up")
            # link-down flushed the IPv6 global address
            sh("ip", "-n", node.ns, "addr", "replace", f"{node_v6(node.index)}/64", "dev", "eth0", "nodad")
        elif kind == "partition":
            sh("ip", "netns", "exec", self.br, "nft", "delete", "table", "bridge", "lbl2part")

    def all_alive(self) -> None:
        """Wait until every speaker sees every member alive."""

        def check():
            for n in self.nodes:
                doc = self.status(n)
                if doc is None or sum(m["alive"] for m in doc["members"]) != len(self.nodes):
                    return False
            return True

        if not self.wait_for(check, 20, 0.2):
            raise AssertionError("members did not all come back")

    @staticmethod
    def wait_for(pred, timeout: float, interval: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(interval)
        return False


def stable(lab, address, timeout=10.0, skip=()):
    """Wait until every running speaker agrees on one leader for ``address`` and exactly
    that one announces it; return the leader's name (or None when nobody may lead)."""
    result = {}

    def check():
        views = {k: v for k, v in lab.leaders(address).items() if k not in skip}
        if not views:
            return False
        leaders = {leader for leader, _view in views.values()}
        announcing = [name for name, (_leader, ann) in views.items() if ann]
        if len(leaders) != 1:
            return False
        leader = leaders.pop()
        ok = not announcing if leader is None else announcing == [leader]
        result["leader"] = leader
        return ok

    if not lab.wait_for(check, timeout, 0.2):
        raise AssertionError(f"{address}: no stable leader: {lab.leaders(address)}")
    return result["leader"]
