"""A forwarding lab in network namespaces: a bridge, a client and three nodes,
each node running the echo backend; node 1 runs the forwarding agent
(``fwagent.py``: the speaker's ``StandaloneForwarding`` on its own).

Everything is named ``lbfw-<tag>-*`` and uses only 203.0.113.192/26 and
2001:db8:f0::/48. ``destroy()`` ends only the processes this lab started, by
PID, and removes its namespaces by name. Used by the namespace tests and by
bench/forwarding.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
ECHO_PORT = 8080
SERVICE_PORT = 80
CLIENT4, CLIENT6 = "203.0.113.193", "2001:db8:f0::193"
CLUSTER_VIP4, CLUSTER_VIP6 = "203.0.113.250", "2001:db8:f0:ff::250"
LOCAL_VIP4, LOCAL_VIP6 = "203.0.113.251", "2001:db8:f0:ff::251"
TABLE = "baremetal_lb"
# A table of someone else's in the forwarding node: it must come through untouched.
FOREIGN_RULESET = """table inet lbfw_foreign {
\tchain input {
\t\ttype filter hook input priority 0; policy accept;
\t\ttcp dport 9 counter accept
\t}
}
table ip lbfw_foreign_nat {
\tchain post {
\t\ttype nat hook postrouting priority 50; policy accept;
\t\tip daddr 203.0.113.254 counter
\t}
}
"""


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def node_v4(i: int) -> str:
    return f"203.0.113.{200 + i}"


def node_v6(i: int) -> str:
    return f"2001:db8:f0::{200 + i}"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Node:
    index: int
    name: str
    ns: str
    port: str
    echo: subprocess.Popen[bytes] | None = None

    @property
    def v4(self) -> str:
        return node_v4(self.index)

    @property
    def v6(self) -> str:
        return node_v6(self.index)


@dataclass
class Lab:
    n_nodes: int = 3
    # False when a real speaker in the forwarding node takes the VIPs (local route, ARP/NDP)
    vip_routes: bool = True
    tag: str = field(default_factory=lambda: f"{os.getpid() % 4096:x}{secrets.token_hex(2)}")
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = f"lbfw-{self.tag}"
        self.br = f"{self.prefix}-br"
        self.client = f"{self.prefix}-c"
        self.workdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        self.nodes = [Node(i, f"node{i}", f"{self.prefix}-n{i}", f"pn{i}") for i in range(1, self.n_nodes + 1)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.agent: subprocess.Popen[bytes] | None = None
        self.status_path = os.path.join(self.workdir, "status.json")
        self.foreign: list[dict[str, Any]] = []

    @property
    def forwarder(self) -> Node:
        return self.nodes[0]

    def namespaces(self) -> list[str]:
        return [self.br, self.client] + [n.ns for n in self.nodes]

    # --- building -------------------------------------------------------------------

    def create(self) -> None:
        for ns in self.namespaces():
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.br, "link", "set", "br0", "up")
        hosts = [(n.ns, n.port, n.v4, n.v6) for n in self.nodes]
        hosts.append((self.client, "pc", CLIENT4, CLIENT6))
        for ns, port, v4, v6 in hosts:
            sh("ip", "-n", self.br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.br, "link", "set", port, "master", "br0", "up")
            for knob in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", knob)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{v4}/26", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
        fwd = self.forwarder
        for knob in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            sh("ip", "netns", "exec", fwd.ns, "sysctl", "-qw", knob)
        # What the speaker does for a VIP it holds, and what the client's LAN learns by ARP/NDP.
        for vip in (CLUSTER_VIP4, LOCAL_VIP4, CLUSTER_VIP6, LOCAL_VIP6) if self.vip_routes else ():
            plen = "128" if ":" in vip else "32"
            sh("ip", "-n", fwd.ns, "route", "add", "local", f"{vip}/{plen}", "dev", "lo", "table", "local")
            via = fwd.v6 if ":" in vip else fwd.v4
            sh("ip", "-n", self.client, "route", "add", f"{vip}/{plen}", "via", via)
        self.nft_load(FOREIGN_RULESET)
        self.foreign = self.foreign_ruleset()

    def nft_load(self, script: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.forwarder.ns, "nft", "-f", "-"], input=script, text=True,
                       check=True, capture_output=True, timeout=20)

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

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    # --- backends and the agent -----------------------------------------------------

    def start_echo(self, node: Node) -> None:
        node.echo = self.spawn(node.ns, PY, "-m", "lbspeaker.echo", "--port", str(ECHO_PORT), "--name", node.name)
        wait_for(lambda: self.client_run("get", node.v4, str(ECHO_PORT), check=False).returncode == 0, 15,
                 f"echo on {node.name}")

    def stop_echo(self, node: Node) -> None:
        if node.echo:
            self.stop(node.echo)
            node.echo = None

    def backends(self, nodes: list[Node] | None = None, interval_ms: int = 500) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        check = {"type": "tcp", "interval_ms": interval_ms, "timeout_ms": min(250, interval_ms)}
        for n in nodes or self.nodes:
            for address in (n.v4, n.v6):
                out.append({"node": n.name, "address": address, "port": ECHO_PORT, "health_check": check})
        return out

    def services(self, interval_ms: int = 500) -> list[dict[str, Any]]:
        return [
            {"name": "default/cluster", "addresses": [CLUSTER_VIP4, CLUSTER_VIP6], "ports": [SERVICE_PORT],
             "external_traffic_policy": "Cluster", "backends": self.backends(interval_ms=interval_ms)},
            {"name": "default/local", "addresses": [LOCAL_VIP4, LOCAL_VIP6], "ports": [SERVICE_PORT],
             "external_traffic_policy": "Local", "backends": self.backends(interval_ms=interval_ms)},
        ]

    def start_agent(self, services: list[dict[str, Any]]) -> None:
        config = os.path.join(self.workdir, "agent.json")
        with open(config, "w", encoding="utf-8") as fh:
            json.dump({"node": self.forwarder.name, "services": services}, fh)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.status_path)
        self.agent = self.spawn(self.forwarder.ns, PY, str(HERE / "fwagent.py"), config, self.status_path,
                                log=os.path.join(self.workdir, "agent.log"))
        wait_for(self.all_applied, 20, "all backends healthy and applied")

    def stop_agent(self) -> int:
        assert self.agent
        code = self.stop(self.agent)
        self.agent = None
        return code

    def agent_log(self) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.workdir, "agent.log"), encoding="utf-8") as fh:
            return fh.read()
        return ""

    def status(self) -> dict[str, Any]:
        try:
            with open(self.status_path, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def all_applied(self) -> bool:
        """Every backend healthy, and the applied ruleset forwards to each one its policy allows."""
        doc = self.status().get("forwarding") or []
        return bool(doc) and all(
            b["healthy"] and b["forwarded"] == (s["policy"] == "Cluster" or b["node"] == self.forwarder.name)
            for s in doc
            for b in s["backends"]
        )

    def client_popen(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.client, PY, str(HERE / "fwclient.py"), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)  # type: ignore[arg-type]
        return proc

    # --- observing ------------------------------------------------------------------

    def client_run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.client, PY, str(HERE / "fwclient.py"), *args, check=check,
                  timeout=timeout)

    def client_json(self, *args: str, timeout: float = 60) -> dict[str, Any]:
        return json.loads(self.client_run(*args, timeout=timeout).stdout)

    def ruleset_json(self) -> list[dict[str, Any]]:
        out = sh("ip", "netns", "exec", self.forwarder.ns, "nft", "-j", "list", "ruleset").stdout
        return [e for e in json.loads(out)["nftables"] if "metainfo" not in e]

    def foreign_ruleset(self) -> list[dict[str, Any]]:
        """The forwarding node's ruleset without the speaker's table, counters zeroed."""
        out = []
        for entry in self.ruleset_json():
            (kind, body), = entry.items()
            owner = body.get("name") if kind == "table" else body.get("table")
            if owner != TABLE:
                out.append(entry)
        return _without_counters(out)

    def own_table(self) -> str | None:
        result = sh("ip", "netns", "exec", self.forwarder.ns, "nft", "list", "table", "inet", TABLE, check=False)
        return result.stdout if result.returncode == 0 else None


def _without_counters(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_counters(v) for k, v in value.items() if k not in ("packets", "bytes", "handle")}
    if isinstance(value, list):
        return [_without_counters(v) for v in value]
    return value
