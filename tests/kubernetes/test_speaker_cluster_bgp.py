"""The speaker following the real control plane over BGP: routes at a real BIRD 2, and across an apiserver restart.

Three ``lb-speaker run`` daemons in network namespaces (the BGP lab of the speaker's own tests,
speaker/tests/bgp/bgplab.py: a router namespace with BIRD on a bridge, node namespaces on veths), each
with a ``kubernetes:`` section whose pool is BGP-advertised with communities, a large community and a
local-pref (iBGP, so BIRD keeps the local-pref). The control plane runs on the host's loopback and is
reached from each namespace through ``netns_relay.py``. Services and EndpointSlices are written through
the API (no controller here: the test writes the ingress, as test_speaker_follows_cluster.py does); what
counts is what BIRD shows (``birdc show route all``): the prefix, its next hops, its attributes.

- Cluster: every eligible node is a next hop. Local: only the node with a serving endpoint; the route
  follows the endpoint to another node, and is withdrawn when the last endpoint goes.
- The apiserver stopped and started again (same port, same etcd): while it is away nothing is withdrawn
  and nothing new appears; a Service deleted in etcd behind its back, with etcd compacted, can only be
  learnt by a relist after a 410 Gone, and is withdrawn then; the nodes' heartbeats held back over the
  outage (kwok paused), kube-controller-manager marks every node Ready=Unknown when it is back, and that
  silence withdraws nothing either; a Service made after the restart is announced, and Local follows its
  endpoint again.

Root only (namespaces); run by ``make kubernetes-test``. Times are printed, never asserted as figures.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "speaker" / "tests"))

import netns_relay
from bgp.bgplab import ROUTER_ASN, ROUTER_V4, Bird, Lab, node_v4
from bgp.helpers import need
from bgp.test_daemon_bgp import Daemon
from conftest import NODES, Namespace, wait_for
from controlplane import ControlPlane, free_port, stop_pid
from lbspeaker.controller.kube import Kube

POOL = {"name": "routed", "addresses": ["203.0.113.10-203.0.113.29"]}
COMMUNITY, LARGE_COMMUNITY, LOCAL_PREF = "64500:100", "64500:1:2", 250
NEXT_HOPS = {name: node_v4(i) for i, name in enumerate(NODES, 1)}
# what BIRD prints for the attributes above
BIRD_COMMUNITY, BIRD_LARGE_COMMUNITY = "(64500,100)", "(64500, 1, 2)"
WAIT_S = 20.0
# how long the apiserver stays away: longer than the control plane's --node-monitor-grace-period (20 s), so
# that the node lifecycle controller, back with it, marks the nodes Ready=Unknown until their heartbeats
AWAY_S = 22.0
UNKNOWN_HOLD_S = 5.0  # how long the nodes then stay Unknown (kwok's heartbeats held back): under 30 s

# iBGP with every node (same ASN), so that the local-pref the speakers send is kept; ``direct``: the nodes
# are on the router's bridge (BIRD takes iBGP peers as multihop, next hops resolved recursively, otherwise)
IBGP_TEMPLATE = f"""
template bgp lbnodes {{
  local {ROUTER_V4} as {ROUTER_ASN};
  direct;
  passive on;
  error wait time 1, 5;
  connect retry time 1;
  ipv4 {{ import all; export none; }};
}}
"""


# -- what BIRD shows -------------------------------------------------------------------------------------


@dataclass
class BirdPath:
    protocol: str
    via: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def bird_routes(bird: Bird) -> dict[str, list[BirdPath]]:
    """``show route all`` of BIRD's IPv4 table: prefix -> its paths (one per announcing node)."""
    out = bird.cmd("show", "route", "table", "master4", "all")
    routes: dict[str, list[BirdPath]] = {}
    prefix = ""
    for line in out.splitlines():
        head = re.match(r"^(\S+/\d+)?\s+unicast \[(\S+) ", line)
        if head:
            prefix = head.group(1) or prefix
            routes.setdefault(prefix, []).append(BirdPath(head.group(2)))
            continue
        if not prefix or not routes.get(prefix):
            continue
        path = routes[prefix][-1]
        via = re.match(r"^\s+via (\S+) on ", line)
        if via:
            path.via = via.group(1)
        attr = re.match(r"^\s+(BGP\.\w+): ?(.*)$", line)
        if attr:
            path.attributes[attr.group(1)] = attr.group(2).strip()
    return routes


def hops(routes: dict[str, list[BirdPath]], address: str) -> list[str]:
    """The nodes BIRD has as next hops for ``address``/32, by name, sorted."""
    names = {v: k for k, v in NEXT_HOPS.items()}
    return sorted(names.get(p.via, p.via) for p in routes.get(f"{address}/32", ()))


def table(routes: dict[str, list[BirdPath]]) -> dict[str, list[str]]:
    return {prefix.split("/")[0]: hops(routes, prefix.split("/")[0]) for prefix in routes}


# -- the lab -------------------------------------------------------------------------------------------------


@dataclass
class BgpCluster:
    lab: Lab
    bird: Bird
    speakers: dict[str, Daemon]

    def routes(self) -> dict[str, list[BirdPath]]:
        return bird_routes(self.bird)

    def hops(self, address: str) -> list[str]:
        return hops(self.routes(), address)

    def wait_hops(self, what: str, address: str, expected: list[str], since: float | None = None) -> float:
        """Wait until BIRD's next hops for ``address`` are ``expected``; the seconds since ``since``."""
        wait_for(what, lambda: self.hops(address) == expected, timeout=WAIT_S, interval=0.01)
        return time.monotonic() - (since if since is not None else time.monotonic())

    def relists(self) -> int:
        """How often the speakers' watches were answered 410 Gone and listed again (their logs say so)."""
        return sum(d.log.read_text(errors="replace").count("; listing again") for d in self.speakers.values())

    def logs(self) -> str:
        return "\n".join(f"---- {n}\n{d.log.read_text(errors='replace')[-3000:]}" for n, d in self.speakers.items())


def speaker_config(i: int, kubeconfig: Path) -> dict[str, Any]:
    name = NODES[i - 1]
    return {
        "node": name,
        "nodes": [{"name": name, "address": node_v4(i)}],
        "membership": {"secret": "lab-secret-of-at-least-32-bytes!!"},
        "interfaces": ["eth0"],
        "status": {"address": "127.0.0.1", "port": 17473},
        "bgp": {"asn": ROUTER_ASN, "router_id": node_v4(i),
                "peers": [{"name": "router", "address": ROUTER_V4, "asn": ROUTER_ASN, "connect_retry_time": 0.5}]},
        "kubernetes": {
            "kubeconfig": str(kubeconfig),
            "pools": [POOL],
            "bgp_advertisements": [{"pools": [POOL["name"]], "peers": ["router"], "communities": [COMMUNITY],
                                    "large_communities": [LARGE_COMMUNITY], "local_pref": LOCAL_PREF}],
        },
    }


@pytest.fixture(scope="module")
def bgp_cluster(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BgpCluster]:
    if os.geteuid() != 0:
        raise RuntimeError("tests/kubernetes/test_speaker_cluster_bgp.py needs root (network namespaces)")
    need("bird", "birdc")
    lab = Lab(nodes=len(NODES), tag=f"k{uuid.uuid4().hex[:5]}")
    relay = None
    failed = True
    try:
        lab.create()
        bird = lab.start_bird("".join(f"protocol bgp {n} from lbnodes {{ neighbor {node_v4(i)} as {ROUTER_ASN}; }}\n"
                                      for i, n in enumerate(NODES, 1)), extra=IBGP_TEMPLATE)
        path = tmp_path_factory.mktemp("bgp-cluster") / "speaker.kubeconfig"
        relay = netns_relay.start(cluster.ports["apiserver"], (n.name for n in lab.nodes), free_port(),
                                  cluster.kubeconfig, path)
        speakers = {n: Daemon(lab, i, speaker_config(i, path)) for i, n in enumerate(NODES, 1)}
        for n in NODES:
            wait_for(f"BIRD's session with {n} Established", lambda n=n: bird.established(n), timeout=30)  # type: ignore[misc]
        failed = False
        yield BgpCluster(lab, bird, speakers)
    finally:
        if relay is not None:
            stop_pid(relay.pid)
        if failed:
            for log in sorted(lab.dir.glob("*.log")) + sorted(lab.dir.glob("*/*.log")):
                print(f"---- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        lab.destroy()


@pytest.fixture
def on_failure_logs(bgp_cluster: BgpCluster, request: pytest.FixtureRequest) -> Iterator[None]:
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:  # the call's report is counted before teardown
        print(bgp_cluster.logs())
        print(bgp_cluster.bird.cmd("show", "route", "table", "master4", "all", check=False))


# -- writing through the API -------------------------------------------------------------------------------


def announce(api: Kube, ns: Namespace, name: str, address: str, policy: str = "Cluster") -> float:
    """A Service of type LoadBalancer without selector (its slices are the test's), its ingress written;
    the monotonic time of the write that makes it announceable."""
    ns.apply(name, selector=None, externalTrafficPolicy=policy)
    t0 = time.monotonic()
    api.patch_service_status(ns.name, name, {"status": {"loadBalancer": {"ingress": [{"ip": address}]}}})
    return t0


def endpoints_on(api: Kube, ns: Namespace, service: str, *nodes: str, serving: bool = True) -> float:
    """:meth:`Namespace.endpoints`; the monotonic time of the write."""
    t0 = time.monotonic()
    ns.endpoints(service, *nodes, serving=serving)
    return t0


def etcd_key(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- the tests -------------------------------------------------------------------------------------------


def test_a_service_is_routed_from_every_node_with_its_pools_attributes_and_local_follows_its_endpoint(
        bgp_cluster: BgpCluster, api: Kube, ns: Namespace, on_failure_logs: None) -> None:
    lab = bgp_cluster
    vip = "203.0.113.10"
    t0 = announce(api, ns, "web", vip)
    took = lab.wait_hops("the Service's /32 at BIRD from every node (Cluster)", vip, list(NODES), t0)
    print(f"\n  Cluster: ingress written -> {vip}/32 at BIRD via {len(NODES)} nodes in {took * 1000:.0f} ms")
    paths = lab.routes()[f"{vip}/32"]
    assert sorted(p.protocol for p in paths) == list(NODES), "one path per node, each from that node's session"
    for p in paths:
        assert p.attributes.get("BGP.community") == BIRD_COMMUNITY, p
        assert p.attributes.get("BGP.large_community") == BIRD_LARGE_COMMUNITY, p
        assert p.attributes.get("BGP.local_pref") == str(LOCAL_PREF), p
        assert p.attributes.get("BGP.next_hop") == p.via, p

    # Local: the endpoint on node2 only -> node2 alone; moved to node3 -> node3 alone; gone -> withdrawn
    ns.patch("web", {"spec": {"externalTrafficPolicy": "Local"}})
    t1 = endpoints_on(api, ns, "web", "node2")
    took = lab.wait_hops("node2 alone under Local", vip, ["node2"], t1)
    print(f"  Local: endpoint on node2 -> BIRD via node2 alone {took * 1000:.0f} ms after the slice was written")
    assert lab.routes()[f"{vip}/32"][0].attributes.get("BGP.community") == BIRD_COMMUNITY
    t2 = endpoints_on(api, ns, "web", "node3")
    took = lab.wait_hops("the endpoint moved: node3 alone", vip, ["node3"], t2)
    print(f"  Local: endpoint moved node2 -> node3 -> BIRD follows in {took * 1000:.0f} ms")
    t3 = endpoints_on(api, ns, "web")
    took = lab.wait_hops("the last endpoint gone: withdrawn at BIRD", vip, [], t3)
    print(f"  Local: last endpoint deleted -> withdrawn at BIRD in {took * 1000:.0f} ms")

    # an endpoint that is not serving (terminating) is none; serving on two nodes: both
    endpoints_on(api, ns, "web", "node1", serving=False)
    time.sleep(1.0)  # no event to wait for: give the speakers time to do the wrong thing
    assert lab.hops(vip) == []
    endpoints_on(api, ns, "web", "node1", "node3")
    lab.wait_hops("endpoints on node1 and node3", vip, ["node1", "node3"])
    ns.delete("web")
    lab.wait_hops("the Service deleted: withdrawn", vip, [])


class Sampler:
    """BIRD's table every ``interval`` s in a thread, each sample with its monotonic time (bounded)."""

    def __init__(self, lab: BgpCluster, interval: float = 0.1, limit_s: float = 180.0) -> None:
        self.lab = lab
        self.interval = interval
        self.limit_s = limit_s
        self.samples: list[tuple[float, dict[str, list[str]]]] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        end = time.monotonic() + self.limit_s
        while not self.stopping.is_set() and time.monotonic() < end:
            try:
                self.samples.append((time.monotonic(), table(self.lab.routes())))
            except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
                self.errors.append(str(exc))
            self.stopping.wait(self.interval)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)

    def between(self, start: float, end: float) -> list[dict[str, list[str]]]:
        return [s for t, s in self.samples if start <= t <= end]


def node_readiness(api: Kube) -> dict[str, str]:
    """Each of the test's nodes -> its Ready condition's status, as the API has it now."""
    out = {}
    for n in api.list_all("/api/v1/nodes")[0]:
        if n["metadata"]["name"] in NODES:
            ready: dict[str, Any] = next((c for c in n["status"].get("conditions") or () if c["type"] == "Ready"), {})
            out[n["metadata"]["name"]] = str(ready.get("status"))
    return out


def test_an_apiserver_restart_withdraws_nothing_and_the_watches_resume(
        bgp_cluster: BgpCluster, api: Kube, ns: Namespace, cluster: ControlPlane, on_failure_logs: None) -> None:
    lab = bgp_cluster
    kept, dropped, local, after = "203.0.113.20", "203.0.113.21", "203.0.113.22", "203.0.113.23"
    announce(api, ns, "kept", kept)
    announce(api, ns, "dropped", dropped)
    announce(api, ns, "local", local, policy="Local")
    endpoints_on(api, ns, "local", "node2")
    for vip, expected in ((kept, list(NODES)), (dropped, list(NODES)), (local, ["node2"])):
        lab.wait_hops(f"{vip} announced before the restart", vip, expected)
    before = {vip: lab.hops(vip) for vip in (kept, dropped, local)}
    relists = lab.relists()
    marks: dict[str, float] = {}

    def while_down() -> None:
        marks["down"] = time.monotonic()
        # the nodes' heartbeats stop too (kwok paused), so that kube-controller-manager, back with the apiserver,
        # surely marks every node Ready=Unknown, as after an outage longer than its node grace period
        os.kill(cluster.pids["kwok"], signal.SIGSTOP)
        # gone while nobody can watch: deleted in etcd itself, and etcd's history compacted up to now, so that
        # a watch from the speakers' resourceVersions can only be answered 410 Gone, and a relist tells them
        deleted = cluster.etcd("kv/deleterange", {"key": etcd_key(f"/registry/services/specs/{ns.name}/dropped")})
        assert deleted.get("deleted") == "1", deleted
        revision = int(cluster.etcd("kv/range", {"key": etcd_key("/registry/")})["header"]["revision"])  # type: ignore[index]
        cluster.etcd("kv/compaction", {"revision": revision, "physical": True})
        time.sleep(AWAY_S)  # the speakers retry against a closed port meanwhile, backing off
        marks["starting"] = time.monotonic()

    try:
        with Sampler(lab) as sampler:
            cluster.restart_apiserver(while_down)
            marks["ready"] = time.monotonic()
            took = lab.wait_hops("the Service deleted behind the watches' back withdrawn (a relist)", dropped, [],
                                 marks["ready"])
            marks["relisted"] = time.monotonic()
            wait_for("kube-controller-manager marking every node Ready=Unknown",
                     lambda: set(node_readiness(api).values()) == {"Unknown"}, timeout=60, interval=0.2)
            marks["unknown"] = time.monotonic()
            time.sleep(UNKNOWN_HOLD_S)  # silent for a while, well within the speakers' grace for it
            os.kill(cluster.pids["kwok"], signal.SIGCONT)
            wait_for("every node Ready again", lambda: set(node_readiness(api).values()) == {"True"},
                     timeout=60, interval=0.2)
            marks["settled"] = time.monotonic()
    finally:
        os.kill(cluster.pids["kwok"], signal.SIGCONT)
    gone = next((t for t, sample in sampler.samples if t >= marks["starting"] and dropped not in sample), None)
    print(f"\n  apiserver stopped, {marks['starting'] - marks['down']:.1f} s away, /readyz "
          f"{marks['ready'] - marks['starting']:.1f} s after its start; the Service deleted in etcd meanwhile "
          f"withdrawn at BIRD {(gone or marks['relisted']) - marks['starting']:.1f} s after the start "
          f"({took * 1000:.0f} ms after /readyz)")
    assert not sampler.errors, sampler.errors[:3]

    # while it was away: every route as it was (nothing withdrawn, nothing new); from its start (its watches
    # may answer before /readyz does) until the relist was seen: only the Service deleted behind its back goes
    away = sampler.between(marks["down"], marks["starting"])
    assert len(away) >= 10, f"too few samples of BIRD's table while the apiserver was away: {len(away)}"
    for sample in away:
        assert {vip: sample.get(vip, []) for vip in before} == before, sample
        assert set(sample) <= set(before), f"something new while the apiserver was away: {sample}"
    for sample in sampler.between(marks["starting"], marks["settled"]):
        assert sample.get(kept) == list(NODES) and sample.get(local) == ["node2"], sample
        assert set(sample) <= set(before), f"something new after the restart: {sample}"
    print(f"  every node Ready=Unknown {marks['unknown'] - marks['starting']:.1f} s after the apiserver's start, "
          f"Ready again {marks['settled'] - marks['unknown']:.1f} s later: no route withdrawn for that")
    assert lab.hops(kept) == list(NODES) and lab.hops(local) == ["node2"]
    new_relists = lab.relists() - relists
    assert new_relists >= len(NODES), f"each speaker's watches relisted after 410 Gone (seen {new_relists})"
    print(f"  410 Gone -> relist: {new_relists} watches over {len(NODES)} speakers")

    # the watches resumed: a new Service, and Local following its endpoint
    t0 = announce(api, ns, "after", after)
    took = lab.wait_hops("a Service made after the restart announced from every node", after, list(NODES), t0)
    print(f"  after the restart: a new Service at BIRD via {len(NODES)} nodes in {took * 1000:.0f} ms")
    t1 = endpoints_on(api, ns, "local", "node1")
    took = lab.wait_hops("Local follows its endpoint after the restart", local, ["node1"], t1)
    print(f"  after the restart: Local endpoint moved node2 -> node1, followed in {took * 1000:.0f} ms")
    assert lab.hops(kept) == list(NODES)
    for name in ("kept", "local", "after"):
        ns.delete(name)
    for vip in (kept, local, after):
        lab.wait_hops(f"{vip} withdrawn with its Service", vip, [])
