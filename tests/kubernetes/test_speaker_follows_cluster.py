"""The speaker following the real control plane (``kubernetes:`` in its config), on real links.

Three speakers in network namespaces on one bridge (speaker/tests/l2lab.py),
the control plane on the host's loopback, reached from each namespace through
``netns_relay.py``. A Service made through the API, its ingress written
through the API (no controller here), must be answered for over ARP by one
node; under Local only by the node its serving endpoint is on, following the
endpoint when it moves; and a node labelled
``node.kubernetes.io/exclude-from-external-load-balancers``, NotReady or
NetworkUnavailable stops announcing. Throughout, the Service's record
(annotation ``announcing.baremetal.lb/<node>`` and the Event ``nodeAssigned``,
what ``kubectl describe service`` shows) names exactly the node that answers
ARP. Root only (namespaces); run by ``make kubernetes-test``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "speaker" / "tests"))

import netns_relay
from conftest import Namespace, wait_for
from controlplane import KWOK_NODE_ANNOTATION, ControlPlane, free_port, stop_pid
from l2lab import Lab
from lbspeaker.controller.kube import Kube
from lbspeaker.sources.announcing import ANNOTATION_PREFIX, EVENT_REASON

VIP = "198.51.100.100"
POOLS = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]}]
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


@pytest.fixture
def lab(cluster: ControlPlane, tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        raise RuntimeError("tests/kubernetes/test_speaker_follows_cluster.py needs root (network namespaces)")
    lab = Lab(name="lbk8s")
    relay = None
    try:
        lab.create()
        path = tmp_path / "speaker.kubeconfig"
        relay = netns_relay.start(cluster.ports["apiserver"], (n.ns for n in lab.nodes), free_port(),
                                  cluster.kubeconfig, path)
        for n in lab.nodes:
            cfg: dict[str, Any] = lab.speaker_config(n, [])
            cfg["kubernetes"] = {"kubeconfig": str(path), "pools": POOLS}
            n.config_path = os.path.join(lab.workdir, f"{n.name}.yaml")
            Path(n.config_path).write_text(yaml.safe_dump(cfg))
            lab.start_speaker(n)
        for n in lab.nodes:
            assert lab.wait_for(lambda n=n: lab.status(n) is not None, 20), f"{n.name}: no /status"
        yield lab
    finally:
        if relay is not None:
            stop_pid(relay.pid)
        lab.destroy()


def announcers(lab: Lab) -> list[str]:
    return sorted(name for name, (_leader, announcing) in lab.leaders(VIP).items() if announcing)


def answered_by(lab: Lab) -> list[str]:
    macs = {n.mac: n.name for n in lab.nodes}
    return sorted(macs.get(m, m) for m in lab.who_has(VIP))


def slice_on(api: Kube, ns: Namespace, service: str, node: str | None, serving: bool = True) -> None:
    """The Service's one EndpointSlice, with one endpoint on ``node`` (none: no endpoint)."""
    ns.endpoints(service, *([node] if node else []), serving=serving)


def records(ns: Namespace, service: str) -> dict[str, dict[str, Any]]:
    """The Service's record of who announces: node -> address -> {mode, reason, since}."""
    annotations = ns.get(service)["metadata"].get("annotations") or {}
    out = {}
    for key, value in annotations.items():
        if key.startswith(ANNOTATION_PREFIX):
            doc = json.loads(value)
            out[doc["node"]] = doc["addresses"]
    return out


def recorded_announcers(ns: Namespace, service: str) -> list[str]:
    return sorted(node for node, addresses in records(ns, service).items() if VIP in addresses)


def wait_recorded(ns: Namespace, service: str, nodes: list[str], what: str) -> dict[str, dict[str, Any]]:
    """Until the record names exactly ``nodes`` (and no node holds an empty or other entry)."""
    def check() -> tuple[dict[str, dict[str, Any]]] | None:
        rec = records(ns, service)
        return (rec,) if sorted(rec) == nodes and recorded_announcers(ns, service) == nodes else None
    return wait_for(f"the record naming {nodes}: {what}", check, timeout=20)[0]  # type: ignore[no-any-return]


def assigned_to(ns: Namespace, service: str) -> list[str]:
    """The ``nodeAssigned`` Events' messages, oldest first."""
    return [e["message"] for e in ns.events(service) if e["reason"] == EVENT_REASON]


def report_lag(lab: Lab, node: str, service: str) -> float:
    """From the speaker's own log: its last takeover of the VIP to the record and Event written for ``service``."""
    took = told = None
    for line in Path(next(n for n in lab.nodes if n.name == node).log_path).read_text().splitlines():
        stamp = line[:23]
        if "now announcing" in line and VIP in line:
            took = stamp
        elif f"/{service}: announcing {VIP} (l2)" in line:
            told = stamp
    assert took and told, f"{node}'s log lacks the takeover or the report of {service}"
    fmt = "%Y-%m-%d %H:%M:%S,%f"
    return (datetime.strptime(told, fmt) - datetime.strptime(took, fmt)).total_seconds()


def describe(cluster: ControlPlane, ns: Namespace, service: str) -> str:
    """``kubectl describe service``: its Annotations and Events, as an operator reads them."""
    out = cluster.kubectl("describe", "service", "-n", ns.name, service).stdout
    lines = out.splitlines()
    keep = [ln for ln in lines if ln.startswith(("Name:", "Annotations:", "                ")) or EVENT_REASON in ln
            or ln.startswith(("Events:", "  Type "))]
    return "\n".join(keep)


def label_node(api: Kube, node: str, value: str | None) -> None:
    api.request("PATCH", f"/api/v1/nodes/{node}", {"metadata": {"labels": {EXCLUDE: value}}},
                content_type="application/merge-patch+json")


def test_a_service_made_through_the_api_is_answered_for_and_local_follows_its_endpoint(
        lab: Lab, api: Kube, ns: Namespace, cluster: ControlPlane) -> None:
    name = f"web-{uuid.uuid4().hex[:4]}"
    ns.apply(name, selector=None)  # no selector: the endpoints are this test's own slice
    t0 = time.monotonic()
    api.patch_service_status(ns.name, name, {"status": {"loadBalancer": {"ingress": [{"ip": VIP}]}}})

    def exactly_one() -> list[str] | None:
        a = announcers(lab)
        return a if len(a) == 1 else None

    one = wait_for("one node announcing the Service's ingress (Cluster)", exactly_one, timeout=20)
    took = time.monotonic() - t0
    assert answered_by(lab) == one, "the client's ARP reply comes from the node that says it announces"
    print(f"\n  Cluster: ingress written -> announced by {one[0]} in {took:.2f} s")

    # the cluster is told: the record names exactly that node, l2, and why; an Event for the takeover
    rec = wait_recorded(ns, name, one, "Cluster")
    assert rec[one[0]][VIP]["mode"] == "l2"
    assert rec[one[0]][VIP]["reason"] == "elected among the eligible nodes (Cluster)"
    print(f"  record and Event written {report_lag(lab, one[0], name):.3f} s after {one[0]} took over (its log)")
    assigned = wait_for("a nodeAssigned Event", lambda: assigned_to(ns, name))
    assert assigned == [f"announcing {VIP} from node {one[0]} (l2): {rec[one[0]][VIP]['reason']}"]
    print(describe(cluster, ns, name))

    # Local: only the node with a serving endpoint
    ns.patch(name, {"spec": {"externalTrafficPolicy": "Local"}})
    slice_on(api, ns, name, "node2")
    wait_for("node2 alone announcing under Local", lambda: announcers(lab) == ["node2"], timeout=20)
    assert answered_by(lab) == ["node2"]
    rec = wait_recorded(ns, name, ["node2"], "Local on node2")
    assert rec["node2"][VIP] == {
        **rec["node2"][VIP], "mode": "l2", "reason": "elected among the nodes with a serving endpoint (Local)"}
    t1 = time.monotonic()
    slice_on(api, ns, name, "node3")
    wait_for("the endpoint moved: node3 alone", lambda: announcers(lab) == ["node3"], timeout=20)
    print(f"  Local: endpoint moved node2 -> node3, announced by node3 after {time.monotonic() - t1:.2f} s")
    assert answered_by(lab) == ["node3"]
    rec = wait_recorded(ns, name, ["node3"], "the endpoint moved: node2's entry gone, node3's there")
    assert rec["node3"][VIP]["reason"] == "elected among the nodes with a serving endpoint (Local)"
    assert any(m.startswith(f"announcing {VIP} from node node3 (l2)") for m in assigned_to(ns, name))
    print(describe(cluster, ns, name))

    # excluded from external load balancers: node3 may not announce, and no other node serves it
    label_node(api, "node3", "true")
    try:
        wait_for("node3 excluded: nobody announces the Local Service", lambda: announcers(lab) == [], timeout=20)
        assert answered_by(lab) == []
        wait_recorded(ns, name, [], "node3 excluded: no record left")
        ns.patch(name, {"spec": {"externalTrafficPolicy": "Cluster"}})
        again = wait_for("Cluster again: one node", exactly_one, timeout=20)
        assert again != ["node3"], "node3 is excluded from external load balancers"
        rec = wait_recorded(ns, name, again, "Cluster without node3")
        assert rec[again[0]][VIP]["reason"] == "elected among the eligible nodes (Cluster)"
    finally:
        label_node(api, "node3", None)

    # the Service deleted: nobody announces; made again under the same name, it starts with no stale record
    ns.delete(name)
    wait_for("the Service deleted: nobody announces", lambda: announcers(lab) == [], timeout=20)
    ns.apply(name, selector=None)
    created = ns.get(name)["metadata"]["creationTimestamp"]  # RFC 3339 to the second, UTC, as "since"
    api.patch_service_status(ns.name, name, {"status": {"loadBalancer": {"ingress": [{"ip": VIP}]}}})
    anew = wait_for("the new Service announced by one node", exactly_one, timeout=20)
    rec = wait_recorded(ns, name, anew, "the new Service: one node, nothing left from the old one")
    assert rec[anew[0]][VIP]["since"] >= created, "the record is the new Service's, not carried over from the old"
    assert len(assigned_to(ns, name)) >= 1
    ns.delete(name)
    wait_for("deleted again: nobody announces", lambda: announcers(lab) == [], timeout=20)


def set_node_condition(api: Kube, node: str, kind: str, status: str) -> None:
    """One condition of the Node's status, as a kubelet posts it (strategic merge: by type, the others kept)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    reason = {"Ready": "KubeletNotReady" if status != "True" else "KubeletReady",
              "NetworkUnavailable": "NoRouteCreated" if status == "True" else "RouteCreated"}[kind]
    condition = {"type": kind, "status": status, "reason": reason, "message": "set by the test",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}
    api.request("PATCH", f"/api/v1/nodes/{node}/status", {"status": {"conditions": [condition]}},
                content_type="application/strategic-merge-patch+json")


def kwok_manages(api: Kube, node: str, yes: bool) -> None:
    """kwok keeps its nodes Ready (it would undo a NotReady at once): take the node out of its hands, or back."""
    api.request("PATCH", f"/api/v1/nodes/{node}",
                {"metadata": {"annotations": {KWOK_NODE_ANNOTATION: "fake" if yes else "held-by-test"}}},
                content_type="application/merge-patch+json")


def node_condition(api: Kube, node: str, kind: str) -> str | None:
    conditions = api.request("GET", f"/api/v1/nodes/{node}").get("status", {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == kind), None)


@pytest.mark.parametrize(("condition", "bad", "good"), [("Ready", "False", "True"),
                                                        ("NetworkUnavailable", "True", "False")])
def test_a_node_not_ready_stops_announcing_and_another_takes_over(
        lab: Lab, api: Kube, ns: Namespace, cluster: ControlPlane, condition: str, bad: str, good: str) -> None:
    name = f"web-{uuid.uuid4().hex[:4]}"
    ns.apply(name, selector=None)
    api.patch_service_status(ns.name, name, {"status": {"loadBalancer": {"ingress": [{"ip": VIP}]}}})

    def exactly_one() -> list[str] | None:
        a = announcers(lab)
        return a if len(a) == 1 else None

    first = wait_for("one node announcing (Cluster)", exactly_one, timeout=20)[0]
    wait_recorded(ns, name, [first], "before")
    others = sorted(n for n in ("node1", "node2", "node3") if n != first)
    kwok_manages(api, first, False)
    try:
        set_node_condition(api, first, condition, bad)
        t0 = time.monotonic()
        taken = wait_for(f"{first} {condition}={bad}: another node announces",
                         lambda: (a := exactly_one()) is not None and a != [first] and a, timeout=20)
        took = time.monotonic() - t0
        assert taken[0] in others
        assert answered_by(lab) == taken, "the ARP reply comes from the node that took over"
        assert node_condition(api, first, condition) == bad, "the condition held while the test looked"
        rec = wait_recorded(ns, name, taken, f"{first} {condition}={bad}")
        assert rec[taken[0]][VIP]["reason"] == "elected among the eligible nodes (Cluster)"
        assert any(m.startswith(f"announcing {VIP} from node {taken[0]} (l2)") for m in assigned_to(ns, name))
        print(f"\n  {first} {condition}={bad}: {taken[0]} announces after {took:.2f} s (the test's polling included);"
              f" its record {report_lag(lab, taken[0], name):.3f} s after its takeover")
        print(describe(cluster, ns, name))
    finally:
        set_node_condition(api, first, condition, good)
        kwok_manages(api, first, True)
    t1 = time.monotonic()
    settled = wait_for(f"{first} {condition}={good} again: it announces alone",
                       lambda: exactly_one() == [first] and [first], timeout=20)
    print(f"  {first} {condition}={good}: back to {first} after {time.monotonic() - t1:.2f} s")
    assert answered_by(lab) == settled
    rec = wait_recorded(ns, name, [first], "settled: one announcer again")
    assert rec[first][VIP]["reason"] == "elected among the eligible nodes (Cluster)"
    ns.delete(name)
    wait_for("the Service deleted: nobody announces", lambda: announcers(lab) == [], timeout=20)
