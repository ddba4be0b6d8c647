"""The speaker's cluster source and its reporter against the real control plane (controlplane.py).

Services get their ingress through the API's status subresource (as the
controller writes it); EndpointSlices are written by the test for Services
without a selector, so that ``ready`` and ``serving`` can be set apart; Nodes
that must be NotReady or NetworkUnavailable are plain Node objects (no kwok:
nothing rewrites their conditions), deleted at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import NODES, Namespace, wait_for
from controlplane import ControlPlane
from lbspeaker.config import KubernetesAccess
from lbspeaker.controller.kube import NODES as NODES_PATH
from lbspeaker.controller.kube import SERVICES, ApiError, Kube
from lbspeaker.core.cluster import EXCLUDE_LABEL, UNSCHEDULABLE_TAINT, ClusterState, node_exclusion
from lbspeaker.core.pools import parse_pool_list
from lbspeaker.sources.announcing import EVENT_REASON, AnnouncementReporter, annotation_key, read_record
from lbspeaker.sources.cluster import ClusterSource, Informer, trim_service

POOLS = parse_pool_list([{"name": "default", "addresses": ["198.51.100.100-198.51.100.109", "2001:db8:1::/120"]}])
POD_IPS = [f"198.51.100.{230 + i}" for i in range(8)]  # in controlplane.POD_CIDR


class Running:
    """A ClusterSource on an asyncio loop of its own thread, with every state it emitted."""

    def __init__(self, cluster: ControlPlane, **options: Any) -> None:
        self.kube = Kube(KubernetesAccess(kubeconfig=str(cluster.kubeconfig)), user_agent="lbt-speaker-source")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lbt-loop", daemon=True)
        self.states: list[tuple[float, ClusterState]] = []
        self.lock = threading.Lock()
        self.source = ClusterSource(self.kube, POOLS, self._record, load_balancer_class="baremetal.lb/speaker",
                                    loop=self.loop, **options)

    def _record(self, state: ClusterState) -> None:
        assert threading.current_thread() is self.thread  # on the loop, as the speaker needs it
        with self.lock:
            self.states.append((time.monotonic(), state))

    def start(self) -> Running:
        self.thread.start()
        self.loop.call_soon_threadsafe(self.source.start)
        wait_for("the source's first state", lambda: self.states)
        return self

    def stop(self) -> None:
        self.source.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.kube.close()

    @property
    def last(self) -> ClusterState:
        with self.lock:
            return self.states[-1][1]

    def wait(self, what: str, check: Callable[[ClusterState], Any], timeout: float = 15.0,
             interval: float = 0.01) -> ClusterState:
        """The first emitted state (from now on, or the last one) for which ``check`` holds."""
        def found() -> ClusterState | None:
            state = self.last
            return state if check(state) else None
        return wait_for(what, found, timeout, interval=interval)  # type: ignore[no-any-return]


@pytest.fixture
def running(cluster: ControlPlane) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**options: Any) -> Running:
        run = Running(cluster, **options).start()
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


@pytest.fixture
def nodes(api: Kube) -> Iterator[Callable[..., str]]:
    """Plain Node objects (no kubelet, no kwok) with the conditions given; deleted at the end."""
    made: list[str] = []

    def make(*, ready: str = "True", network: str | None = None, labels: dict[str, str] | None = None,
             unschedulable: bool = False) -> str:
        name = f"lbt-{uuid.uuid4().hex[:8]}"
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
                "spec": {"unschedulable": unschedulable}}
        api.request("POST", "/api/v1/nodes", node)
        made.append(name)
        set_conditions(api, name, ready=ready, network=network)
        return name

    yield make
    for name in made:
        try:
            api.request("DELETE", f"/api/v1/nodes/{name}")
        except ApiError:
            pass


def set_conditions(api: Kube, name: str, *, ready: str, network: str | None = None) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions = [{"type": "Ready", "status": ready, "reason": "LbtSet", "lastHeartbeatTime": now,
                   "lastTransitionTime": now, "message": "set by the test"}]
    if network is not None:
        conditions.append({"type": "NetworkUnavailable", "status": network, "reason": "NoRouteCreated",
                           "lastHeartbeatTime": now, "lastTransitionTime": now, "message": "set by the test"})
    api.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": {"conditions": conditions}},
                content_type="application/merge-patch+json")


def set_ingress(ns: Namespace, name: str, *ips: str) -> None:
    ns.api.patch_service_status(ns.name, name, {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}})


def endpoint(node: str, ip: str, *, ready: bool, serving: bool, terminating: bool = False) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node,
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}


def put_slice(ns: Namespace, service: str, endpoints: list[dict[str, Any]], name: str | None = None) -> str:
    """Create or replace an EndpointSlice of ``service`` (one with no selector: ours to write)."""
    name = name or f"{service}-lbt"
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns.name,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "lbt-test"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}
    path = f"/apis/discovery.k8s.io/v1/namespaces/{ns.name}/endpointslices"
    try:
        ns.api.request("POST", path, body)
    except ApiError as exc:
        if exc.status != 409:
            raise
        ns.api.request("PATCH", f"{path}/{name}", {"endpoints": endpoints},
                       content_type="application/merge-patch+json")
    return name


def test_a_service_appears_with_its_ingress_in_the_pools(running: Callable[..., Running], ns: Namespace) -> None:
    run = running()
    key = f"{ns.name}/web"
    ns.apply("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53,
                                                                             "protocol": "UDP"}])
    ns.apply("theirs", loadBalancerClass="example.com/other")
    set_ingress(ns, "theirs", "198.51.100.108")
    written = time.monotonic()
    set_ingress(ns, "web", "198.51.100.100", "203.0.113.50")  # the second is in no pool of ours
    state = run.wait("web in the state", lambda s: key in s.services)
    latency = time.monotonic() - written
    entry = state.services[key]
    assert entry.addresses == ("198.51.100.100",)
    assert entry.pool == "default"
    assert [str(p) for p in entry.ports] == ["80/tcp", "53/udp"]
    assert entry.external_traffic_policy == "Cluster"
    assert f"{ns.name}/theirs" not in state.services  # another controller's class
    assert set(NODES) <= state.eligible_nodes
    assert set(NODES) <= state.announcers(key)
    print(f"status written -> state emitted: {latency * 1000:.0f} ms")
    assert latency < 1.0

    ns.patch("web", {"spec": {"externalTrafficPolicy": "Local"}})
    run.wait("web Local with no endpoint", lambda s: s.services[key].external_traffic_policy == "Local"
             and not s.announcers(key))
    ns.delete("web")
    run.wait("web gone", lambda s: key not in s.services)


def test_local_follows_the_serving_endpoints_between_nodes(running: Callable[..., Running], ns: Namespace) -> None:
    run = running()
    key = f"{ns.name}/local"
    ns.apply("local", externalTrafficPolicy="Local", selector=None)
    set_ingress(ns, "local", "198.51.100.101")
    put_slice(ns, "local", [endpoint("node1", POD_IPS[0], ready=True, serving=True)])
    run.wait("local on node1", lambda s: s.services.get(key) is not None and s.announcers(key) == {"node1"})

    # the pod moves: the old one terminates and stops serving, a new one serves on node2
    put_slice(ns, "local", [endpoint("node1", POD_IPS[0], ready=False, serving=False, terminating=True),
                            endpoint("node2", POD_IPS[1], ready=True, serving=True)])
    run.wait("local on node2 only", lambda s: s.announcers(key) == {"node2"})

    # a terminating pod that still serves (ready false, serving true) keeps its node (MetalLB #2074)
    put_slice(ns, "local", [endpoint("node3", POD_IPS[2], ready=False, serving=True, terminating=True),
                            endpoint("node2", POD_IPS[1], ready=True, serving=True)])
    run.wait("local on node2 and the terminating node3", lambda s: s.announcers(key) == {"node2", "node3"})

    # a second slice of the same Service counts too
    put_slice(ns, "local", [endpoint("node1", POD_IPS[3], ready=True, serving=True)], name="local-second")
    run.wait("local on all three", lambda s: s.announcers(key) == {"node1", "node2", "node3"})

    # the last local endpoints go: withdrawn with the event that removed them
    before = len(run.states)
    gone = time.monotonic()
    for name in ("local-lbt", "local-second"):
        ns.api.request("DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{ns.name}/endpointslices/{name}")
    state = run.wait("local announced nowhere", lambda s: not s.announcers(key))
    print(f"last EndpointSlice deleted -> withdrawn in the state: {(time.monotonic() - gone) * 1000:.0f} ms, "
          f"{len(run.states) - before} state(s) emitted")
    assert state.services[key].local_nodes == frozenset()


def test_excluded_nodes_are_left_out_with_their_reason(running: Callable[..., Running], ns: Namespace,
                                                       nodes: Callable[..., str], api: Kube) -> None:
    run = running()
    key = f"{ns.name}/web"
    ns.apply("web")
    set_ingress(ns, "web", "198.51.100.102")
    fine = nodes()
    labelled = nodes(labels={EXCLUDE_LABEL: "true"})
    not_ready = nodes(ready="False")
    no_network = nodes(network="True")
    cordoned = nodes(unschedulable=True)  # the node lifecycle controller adds the taint: draining
    expected = {
        fine: "",
        labelled: f"labelled {EXCLUDE_LABEL}",
        not_ready: "NotReady: Ready is False (LbtSet)",
        no_network: "NetworkUnavailable (NoRouteCreated)",
        cordoned: f"draining: spec.unschedulable and the {UNSCHEDULABLE_TAINT} taint",
    }
    state = run.wait("every node's verdict", lambda s: key in s.services
                     and {n: s.nodes.get(n) for n in expected} == expected)
    announcers = state.announcers(key)
    assert fine in announcers
    assert not announcers & {labelled, not_ready, no_network, cordoned}

    # back to health: each returns
    set_conditions(api, not_ready, ready="True")
    api.request("PATCH", f"/api/v1/nodes/{cordoned}", {"spec": {"unschedulable": False}},
                content_type="application/merge-patch+json")
    run.wait("the NotReady node Ready again", lambda s: s.nodes.get(not_ready) == "")
    run.wait("the cordoned node uncordoned", lambda s: s.nodes.get(cordoned) == "")
    api.request("PATCH", f"/api/v1/nodes/{labelled}",
                {"metadata": {"labels": {EXCLUDE_LABEL: None}}}, content_type="application/merge-patch+json")
    run.wait("the label removed", lambda s: labelled in s.announcers(key))


def etcd_key(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_watch_resumes_after_an_apiserver_restart(running: Callable[..., Running], ns: Namespace,
                                                      cluster: ControlPlane, api: Kube) -> None:
    run = running()
    kept, dropped = f"{ns.name}/kept", f"{ns.name}/dropped"
    for name, ip in (("kept", "198.51.100.103"), ("dropped", "198.51.100.104")):
        ns.apply(name)
        set_ingress(ns, name, ip)
    run.wait("both services", lambda s: {kept, dropped} <= set(s.services))
    before = len(run.states)
    services = run.source.informers["services"]
    lists, errors = services.lists, services.errors

    def delete_behind_its_back() -> None:
        # gone while nobody could watch: only a relist can tell the source
        deleted = cluster.etcd("kv/deleterange", {"key": etcd_key(f"/registry/services/specs/{ns.name}/dropped")})
        assert deleted.get("deleted") == "1", deleted
        time.sleep(1.0)  # the source retries against a closed port meanwhile

    down = time.monotonic()
    cluster.restart_apiserver(delete_behind_its_back)
    print(f"apiserver stopped, restarted and ready in {time.monotonic() - down:.1f} s")
    state = run.wait("the dropped service gone after the restart", lambda s: dropped not in s.services, timeout=30)
    assert kept in state.services
    assert services.errors > errors  # the cut connection was seen and retried
    assert services.lists > lists  # and the watch from the old resourceVersion answered 410: relisted
    assert services.expired >= 1
    # nothing withdrawn wrongly meanwhile: every state since had the kept service, and no state said less
    # than the cluster did (no empty or partial node list while the apiserver was away)
    for _when, s in run.states[before:]:
        assert kept in s.services
        assert set(NODES) <= set(s.nodes), s.nodes

    def as_the_api_says(s: ClusterState) -> bool:
        listed = api.list_all(NODES_PATH)[0]
        return dict(s.nodes) == {n["metadata"]["name"]: node_exclusion(n) for n in listed}

    final = run.wait("node verdicts as the API has them now", as_the_api_says, timeout=60, interval=0.2)
    print("node verdicts after the restart:", {n: final.nodes[n] for n in NODES})
    ns.apply("after")
    set_ingress(ns, "after", "198.51.100.105")
    run.wait("a service made after the restart", lambda s: f"{ns.name}/after" in s.services)


def test_a_410_gone_relists_and_drops_what_was_deleted(api: Kube, ns: Namespace, cluster: ControlPlane) -> None:
    ns.apply("old")
    set_ingress(ns, "old", "198.51.100.106")
    items, old_rv = api.list_all(SERVICES)
    stale = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": trim_service(o) for o in items}
    ns.delete("old")
    ns.apply("new")
    # compact etcd up to now, and restart the apiserver: its watch cache starts afresh from etcd's present,
    # so nothing remembers the history since old_rv (as for a watcher that was away over a restart)
    revision = int(cluster.etcd("kv/range", {"key": etcd_key("/registry/")})["header"]["revision"])  # type: ignore[index]
    cluster.etcd("kv/compaction", {"revision": revision, "physical": True})
    cluster.restart_apiserver()

    # what the real apiserver answers a watch from that resourceVersion: 410 Gone (an ERROR event, or the status)
    code: object = None
    try:
        for event in api.watch(SERVICES, old_rv, 5):
            obj = event.get("object") or {}
            code = obj.get("code") if event.get("type") == "ERROR" else f"{event.get('type')} event"
            break
    except ApiError as exc:
        code = exc.status
    assert code == 410, code

    # an informer holding the cache and resourceVersion of before (a watcher long disconnected) resumes
    stopping = threading.Event()
    changes: list[float] = []
    informer = Informer(api, "services", SERVICES, trim=trim_service,
                        key=lambda o: f"{o['metadata']['namespace']}/{o['metadata']['name']}",
                        changed=lambda: changes.append(time.monotonic()), stopping=stopping, watch_timeout_s=30)
    informer.cache = dict(stale)
    informer.resource_version = old_rv
    informer.thread.start()
    try:
        wait_for("the informer relisted", lambda: informer.lists >= 1)
        keys = set(informer.cache)
        assert informer.expired == 1
        assert f"{ns.name}/old" in stale and f"{ns.name}/old" not in keys
        assert f"{ns.name}/new" in keys
        assert changes
    finally:
        stopping.set()
        informer.close_stream()
        informer.thread.join(10)
    assert not informer.thread.is_alive()


def annotations(ns: Namespace, name: str) -> dict[str, str]:
    return ns.get(name)["metadata"].get("annotations") or {}


def test_the_reporter_records_which_node_announces(ns: Namespace, api: Kube, cluster: ControlPlane) -> None:
    ns.apply("web")
    set_ingress(ns, "web", "198.51.100.107", "2001:db8:1::7")
    key = f"{ns.name}/web"
    reporters = {n: AnnouncementReporter(api) for n in NODES}

    # takeover by node1 over L2: the Event and its key
    assert reporters["node1"].announce(key, "198.51.100.107", "node1", "l2", "elected: first in the hash order")
    event = ns.wait_event("web", EVENT_REASON)
    assert event["message"] == "announcing 198.51.100.107 from node node1 (l2): elected: first in the hash order"
    assert event["type"] == "Normal" and event["reportingInstance"] == "node1"
    record = read_record(ns.get("web"), "node1")
    assert record["198.51.100.107"]["mode"] == "l2"

    # the same again, or a new reason: no second takeover Event
    assert not reporters["node1"].announce(key, "198.51.100.107", "node1", "l2", "elected: first in the hash order")
    assert not reporters["node1"].announce(key, "198.51.100.107", "node1", "l2", "elected: node3 left")
    assert read_record(ns.get("web"), "node1")["198.51.100.107"]["reason"] == "elected: node3 left"

    # three nodes write at once (BGP: all announce); each patch touches its own key only
    barrier = threading.Barrier(len(NODES))

    def announce(node: str) -> None:
        barrier.wait(5)
        reporters[node].announce(key, "2001:db8:1::7", node, "bgp", "eligible, peers established")

    threads = [threading.Thread(target=announce, args=(n,)) for n in NODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    found = annotations(ns, "web")
    for n in NODES:
        assert "2001:db8:1::7" in read_record(ns.get("web"), n), found
    assert set(read_record(ns.get("web"), "node1")) == {"198.51.100.107", "2001:db8:1::7"}
    takeovers = [e for e in ns.events("web") if e["reason"] == EVENT_REASON]
    assert len(takeovers) == 4, [e["message"] for e in takeovers]

    described = cluster.kubectl("describe", "service", "-n", ns.name, "web").stdout
    assert annotation_key("node2") in described and EVENT_REASON in described, described

    # a restarted speaker reads its key back: no repeated Event, and its withdrawal clears the key
    again = AnnouncementReporter(api)
    assert not again.announce(key, "2001:db8:1::7", "node2", "bgp", "eligible, peers established")
    assert again.withdraw(key, "2001:db8:1::7", "node2")
    left = annotations(ns, "web")
    assert annotation_key("node2") not in left
    assert annotation_key("node1") in left and annotation_key("node3") in left
    assert reporters["node1"].withdraw(key, "2001:db8:1::7", "node1")
    assert set(read_record(ns.get("web"), "node1")) == {"198.51.100.107"}
    assert reporters["node1"].withdraw(key, "198.51.100.107", "node1")
    assert annotation_key("node1") not in annotations(ns, "web")
    assert len([e for e in ns.events("web") if e["reason"] == EVENT_REASON]) == 4


def test_a_long_node_name_gets_a_valid_key() -> None:
    name = "worker-" + "a" * 70 + ".example.com"
    key = annotation_key(name)
    prefix, _sep, rest = key.partition("/")
    assert prefix == "announcing.baremetal.lb" and len(rest) <= 63 and rest[0].isalnum() and rest[-1].isalnum()
    assert annotation_key(name) != annotation_key(name + "x")
    assert json.loads(json.dumps({"k": key}))


def test_how_fast_the_source_follows(running: Callable[..., Running], ns: Namespace) -> None:
    """Medians over 20: an ingress written -> the state has it; a serving endpoint moved -> the state follows."""
    run = running()
    ingress, moves = [], []
    for i in range(20):
        name = f"m{i}"
        ns.apply(name, externalTrafficPolicy="Local", selector=None)
        written = time.monotonic()
        set_ingress(ns, name, f"198.51.100.{100 + i % 10}")
        run.wait(f"{name} in the state", lambda s, k=f"{ns.name}/{name}": k in s.services)
        ingress.append(time.monotonic() - written)
    key = f"{ns.name}/m0"
    put_slice(ns, "m0", [endpoint("node1", POD_IPS[0], ready=True, serving=True)])
    run.wait("m0 on node1", lambda s: s.announcers(key) == {"node1"})
    for i in range(20):
        target = NODES[(i + 1) % len(NODES)]
        moved = time.monotonic()
        put_slice(ns, "m0", [endpoint(target, POD_IPS[0], ready=True, serving=True)])
        run.wait(f"m0 on {target}", lambda s, t=target: s.announcers(key) == {t})
        moves.append(time.monotonic() - moved)
    median_ingress, median_move = statistics.median(ingress), statistics.median(moves)
    print(f"ingress written -> state: median {median_ingress * 1000:.0f} ms (max {max(ingress) * 1000:.0f}); "
          f"serving endpoint moved -> state: median {median_move * 1000:.0f} ms (max {max(moves) * 1000:.0f})")
    assert median_ingress < 0.3 and median_move < 0.3
