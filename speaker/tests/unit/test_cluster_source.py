"""The cluster source's own logic without a cluster: sync before the first state, coalescing, 410, heartbeats.

The API is a fake here (a list and a queue of watch events per collection);
tests/kubernetes/test_speaker_source.py runs the same source against the real
control plane.
"""

import asyncio
import queue
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from lbspeaker.config import parse_cluster
from lbspeaker.controller.kube import ENDPOINT_SLICES, NODES, SERVICES
from lbspeaker.core.cluster import NODE_UNKNOWN_GRACE_S, ClusterState, DesiredService
from lbspeaker.core.pools import parse_pool_list
from lbspeaker.desired import merge
from lbspeaker.errors import ConfigError
from lbspeaker.sources.announcing import annotation_key
from lbspeaker.sources.cluster import ClusterSource, desired_from_cluster, trim_service

POOLS = parse_pool_list([{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]}])


def service(name, ip, rv="1"):
    return {"metadata": {"namespace": "apps", "name": name, "resourceVersion": rv},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


def node(name, ready="True", heartbeat="2026-12-03T12:00:00Z", rv="1"):
    return {"metadata": {"name": name, "resourceVersion": rv},
            "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]}}


class FakeStream:
    """One watch: the collection's queued events until closed (bounded: 10 s at most)."""

    def __init__(self, events):
        self.events = events
        self.closed = threading.Event()

    def __iter__(self):
        deadline = time.monotonic() + 10
        while not self.closed.is_set() and time.monotonic() < deadline:
            try:
                yield self.events.get(timeout=0.02)
            except queue.Empty:
                continue

    def close(self):
        self.closed.set()


class FakeKube:
    def __init__(self):
        self.items = {SERVICES: [], ENDPOINT_SLICES: [], NODES: []}
        self.events = {p: queue.Queue() for p in self.items}
        self.list_gate = {p: threading.Event() for p in self.items}
        self.lists = {p: 0 for p in self.items}
        self.watch_failures = {p: 0 for p in self.items}
        for gate in self.list_gate.values():
            gate.set()

    def list_all(self, path):
        assert self.list_gate[path].wait(10)
        self.lists[path] += 1
        return list(self.items[path]), "10"

    def watch(self, path, resource_version, timeout_s):
        if self.watch_failures[path]:
            self.watch_failures[path] -= 1
            raise ConnectionRefusedError("connection refused")
        return FakeStream(self.events[path])


class Harness:
    def __init__(self, kube):
        self.kube = kube
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.states = []
        self.source = ClusterSource(kube, POOLS, self.states.append, load_balancer_class="baremetal.lb/speaker",
                                    loop=self.loop, debounce_s=0.05)

    def __enter__(self):
        self.thread.start()
        self.loop.call_soon_threadsafe(self.source.start)
        return self

    def __exit__(self, *exc):
        self.source.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def wait(self, check, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.states and check(self.states[-1]):
                return self.states[-1]
            time.sleep(0.01)
        raise AssertionError(f"no such state; last: {self.states[-1:]}")


def test_nothing_is_emitted_before_every_kind_is_listed():
    kube = FakeKube()
    kube.items[SERVICES] = [service("web", "198.51.100.100")]
    kube.items[NODES] = [node("n1")]
    kube.list_gate[NODES].clear()
    with Harness(kube) as h:
        time.sleep(0.3)
        assert h.states == []  # the Services are known, the Nodes not yet: no state that announces nowhere
        kube.list_gate[NODES].set()
        state = h.wait(lambda s: True)
        assert state.announcers("apps/web") == {"n1"}
        assert len(h.states) == 1


def test_a_burst_of_changes_is_one_evaluation():
    kube = FakeKube()
    kube.items[NODES] = [node("n1")]
    with Harness(kube) as h:
        h.wait(lambda s: True)
        for i in range(50):
            kube.events[SERVICES].put({"type": "ADDED", "object": service(f"s{i}", f"198.51.100.{100 + i % 10}",
                                                                          rv=str(20 + i))})
        state = h.wait(lambda s: len(s.services) == 50)
        assert len(h.states) <= 3, len(h.states)  # the first state, then one or two for the burst
        assert state.services["apps/s7"].addresses == ("198.51.100.107",)


def test_a_heartbeat_wakes_nobody_and_a_condition_does():
    kube = FakeKube()
    kube.items[NODES] = [node("n1")]
    with Harness(kube) as h:
        h.wait(lambda s: True)
        for i in range(5):
            kube.events[NODES].put({"type": "MODIFIED", "object": node("n1", heartbeat=f"2026-12-03T12:0{i}:00Z")})
        time.sleep(0.3)
        assert len(h.states) == 1
        assert h.source.informers["nodes"].events == 5
        kube.events[NODES].put({"type": "MODIFIED", "object": node("n1", ready="False")})
        state = h.wait(lambda s: s.nodes["n1"] != "")
        assert state.nodes["n1"] == "NotReady: Ready is False"


def test_410_relists_and_replaces_the_cache():
    kube = FakeKube()
    kube.items[SERVICES] = [service("old", "198.51.100.100")]
    kube.items[NODES] = [node("n1")]
    with Harness(kube) as h:
        h.wait(lambda s: "apps/old" in s.services)
        kube.items[SERVICES] = [service("new", "198.51.100.101")]  # old deleted while the watch was away
        expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
        kube.events[SERVICES].put({"type": "ERROR", "object": expired})
        state = h.wait(lambda s: "apps/new" in s.services)
        assert "apps/old" not in state.services
        informer = h.source.informers["services"]
        assert (informer.expired, informer.lists, kube.lists[SERVICES]) == (1, 2, 2)


def test_a_failed_watch_is_retried_from_where_it_was():
    kube = FakeKube()
    kube.items[NODES] = [node("n1")]
    kube.watch_failures[SERVICES] = 2
    with Harness(kube) as h:
        h.wait(lambda s: True)
        kube.events[SERVICES].put({"type": "ADDED", "object": service("web", "198.51.100.100", rv="30")})
        h.wait(lambda s: "apps/web" in s.services)
        informer = h.source.informers["services"]
        assert informer.errors == 2
        assert kube.lists[SERVICES] == 1  # retried the watch, no relist
        assert informer.resource_version == "30"


def test_an_api_error_other_than_410_backs_off_without_relisting():
    kube = FakeKube()
    kube.items[NODES] = [node("n1")]
    with Harness(kube) as h:
        h.wait(lambda s: True)
        kube.events[SERVICES].put({"type": "ERROR", "object": {"code": 500, "message": "etcd timeout"}})
        deadline = time.monotonic() + 5
        while h.source.informers["services"].errors < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.source.informers["services"].errors == 1
        assert kube.lists[SERVICES] == 1


# -- the cluster as the daemon's desired state ------------------------------------------------------------


def _cluster_config(**raw):
    return parse_cluster({"kubeconfig": "/nonexistent", "pools": [
        {"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]},
        {"name": "wan", "addresses": ["203.0.113.0/28"]},
        {"name": "dark", "addresses": ["203.0.113.64/28"]},
    ], "node_name": "k8s-node1", **raw}, "node1")


def _state():
    return ClusterState(
        services={
            "apps/web": DesiredService("apps/web", ("198.51.100.100",), "lan"),
            "apps/local": DesiredService("apps/local", ("198.51.100.101",), "lan", external_traffic_policy="Local",
                                         local_nodes=frozenset({"k8s-node1", "node3"})),
            "apps/routed": DesiredService("apps/routed", ("203.0.113.1",), "wan"),
            "apps/dark": DesiredService("apps/dark", ("203.0.113.65",), "dark"),
        },
        nodes={"k8s-node1": "", "node2": "NotReady (Ready is False)", "node3": ""},
    )


def test_desired_from_cluster_follows_the_pools_advertisements_and_names_this_node():
    cfg = _cluster_config(l2_advertisements=[{"pools": ["lan"], "interfaces": ["eth1"], "nodes": ["node1", "node2"]}],
                          bgp_advertisements=[{"pools": ["wan"]}])
    desired = desired_from_cluster(_state(), cfg, "node1")
    modes = {s.name: (s.mode, s.interfaces, s.external_traffic_policy) for s in desired.services}
    assert modes == {"apps/web": ("l2", ("eth1",), "Cluster"), "apps/local": ("l2", ("eth1",), "Local"),
                     "apps/routed": ("bgp", (), "Cluster")}  # dark: no advertisement, not announced
    # Local: serving nodes (k8s-node1 is this speaker, node1), within the advertisement's nodes
    assert desired.allowed_nodes == {"apps/web": frozenset({"node1", "node2"}), "apps/local": frozenset({"node1"})}
    assert desired.excluded_nodes == {"node2": "NotReady (Ready is False)"}
    assert desired.allowed_here("node1") == frozenset({"apps/local"})


def test_desired_from_cluster_without_advertisements_is_l2_everywhere():
    desired = desired_from_cluster(_state(), _cluster_config(), "node1")
    assert {s.name: s.mode for s in desired.services} == {
        "apps/web": "l2", "apps/local": "l2", "apps/routed": "l2", "apps/dark": "l2"}
    assert desired.allowed_nodes == {"apps/local": frozenset({"node1", "node3"})}


def test_bad_advertisements_in_the_kubernetes_section_are_named():
    with pytest.raises(ConfigError) as refused:
        _cluster_config(bgp_advertisements=[{"pools": "wan", "local_pref": "high"}])
    assert refused.value.field.startswith("kubernetes.bgp_advertisements[0]"), refused.value


def test_a_bgp_service_carries_its_pools_advertisements_as_its_bgp_policy():
    cfg = _cluster_config(l2_advertisements=[{"pools": ["lan"]}], bgp_advertisements=[
        {"pools": ["wan"], "communities": ["64500:100", "no-export"], "local_pref": 250},
        {"pools": ["wan"], "large_communities": ["64500:1:2"], "peers": ["tor"]},
        {"pools": ["dark"], "communities": ["64500:999"]},
    ])
    services = {s.name: s for s in desired_from_cluster(_state(), cfg, "node1").services}
    routed = services["apps/routed"]
    assert [(a.communities, a.large_communities, a.local_pref, a.peers) for a in routed.advertisements] == [
        (("64500:100", "no-export"), (), 250, ()), ((), ("64500:1:2",), None, ("tor",))]
    assert services["apps/dark"].advertisements[0].communities == ("64500:999",)
    assert services["apps/web"].advertisements == ()  # L2: no BGP policy


def test_an_advertisement_for_other_nodes_is_not_this_nodes_policy():
    ads = [
        {"pools": ["wan"], "nodes": ["k8s-node1"], "communities": ["64500:1"]},
        {"pools": ["wan"], "nodes": ["node3"], "communities": ["64500:3"]},
    ]
    here = desired_from_cluster(_state(), _cluster_config(bgp_advertisements=ads), "node1")
    routed = {s.name: s for s in here.services}["apps/routed"]
    assert [a.communities for a in routed.advertisements] == [("64500:1",)]  # k8s-node1 is this speaker
    there = desired_from_cluster(_state(), _cluster_config(node_name="node3", bgp_advertisements=ads), "node3")
    routed = {s.name: s for s in there.services}["apps/routed"]
    assert [a.communities for a in routed.advertisements] == [("64500:3",)]


def test_a_node_silent_for_less_than_the_grace_keeps_announcing_and_is_left_out_after_it():
    kube = FakeKube()
    # Ready=Unknown since just under the grace: eligible now, excluded when the grace ends, by a timer alone
    since = datetime.now(UTC) - timedelta(seconds=NODE_UNKNOWN_GRACE_S - 0.5)
    silent = node("n1", ready="Unknown")
    silent["status"]["conditions"][0].update(reason="NodeStatusUnknown", lastTransitionTime=since.isoformat())
    kube.items[NODES] = [silent, node("n2")]
    kube.items[SERVICES] = [service("web", "198.51.100.100")]
    with Harness(kube) as h:
        first = h.wait(lambda s: True)
        assert first.nodes == {"n1": "", "n2": ""}
        assert first.announcers("apps/web") == {"n1", "n2"}
        later = h.wait(lambda s: s.nodes["n1"] != "")
        assert later.nodes["n1"] == "NotReady: Ready is Unknown (NodeStatusUnknown)"
        assert later.announcers("apps/web") == {"n2"}
        assert kube.lists[NODES] == 1  # no new list or event: the timer


def test_a_control_plane_clock_ahead_does_not_keep_a_silent_node_announcing(monkeypatch):
    # the control plane's clock is an hour ahead: the Unknown's lastTransitionTime is in our future. The
    # grace must still end NODE_UNKNOWN_GRACE_S after this source first saw it (shortened here)
    monkeypatch.setattr("lbspeaker.core.cluster.NODE_UNKNOWN_GRACE_S", 0.5)
    kube = FakeKube()
    ahead = datetime.now(UTC) + timedelta(hours=1)
    silent = node("n1", ready="Unknown")
    silent["status"]["conditions"][0].update(reason="NodeStatusUnknown", lastTransitionTime=ahead.isoformat())
    kube.items[NODES] = [silent, node("n2")]
    kube.items[SERVICES] = [service("web", "198.51.100.100")]
    with Harness(kube) as h:
        first = h.wait(lambda s: True)
        assert first.nodes == {"n1": "", "n2": ""}
        later = h.wait(lambda s: s.nodes["n1"] != "")
        assert later.nodes["n1"] == "NotReady: Ready is Unknown (NodeStatusUnknown)"
        assert kube.lists[NODES] == 1  # no new list or event: the timer


def test_this_nodes_record_is_kept_in_the_cache_and_named_in_the_desired_state():
    mine, theirs = annotation_key("node1"), annotation_key("node2")
    web, api = service("web", "198.51.100.100"), service("api", "198.51.100.101")
    web["metadata"]["annotations"] = {mine: '{"node": "node1"}', theirs: "{}", "other": "x"}
    api["metadata"]["annotations"] = {theirs: "{}"}
    assert trim_service(web, (mine,))["metadata"]["annotationKeys"] == [mine]
    assert "annotationKeys" not in trim_service(api, (mine,))["metadata"]  # another node's: nothing to wake on
    rewritten = {**web, "metadata": {**web["metadata"], "annotations": {mine: '{"node": "node1", "addresses": {}}'}}}
    assert trim_service(rewritten, (mine,)) == trim_service(web, (mine,))  # the record rewritten: no change
    kube = FakeKube()
    kube.items[SERVICES] = [web, api]
    kube.items[NODES] = [node("node1")]
    h = Harness(kube)
    h.source = ClusterSource(kube, POOLS, h.states.append, load_balancer_class="baremetal.lb/speaker",
                             loop=h.loop, debounce_s=0.05, annotations=(mine,))
    with h:
        h.wait(lambda s: len(s.services) == 2)
        assert h.source.annotated(mine) == frozenset({"apps/web"})
    desired = desired_from_cluster(_state(), _cluster_config(), "node1", {"apps/web", "apps/gone"})
    assert desired.recorded == frozenset({"apps/web"})
    assert merge([("cluster", desired)]).state.recorded == frozenset({"apps/web"})
