"""What a speaker reads from a cluster (core.cluster): node eligibility, serving endpoints, desired Services."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.cluster import (
    EXCLUDE_LABEL,
    NODE_UNKNOWN_GRACE_S,
    UNSCHEDULABLE_TAINT,
    cluster_state,
    desired_service,
    is_ours,
    node_exclusion,
    serving_nodes,
    slice_service_key,
)
from ansible_collections.baremetal.lb.plugins.module_utils.pools import parse_pool_list
from ansible_collections.baremetal.lb.plugins.module_utils.service import ServicePort

POOLS = parse_pool_list([{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109", "2001:db8:1::/120"]},
                         {"name": "wan", "addresses": ["203.0.113.8/29"]}])


def node(name="n1", *, ready="True", network=None, unschedulable=False, taints=(), labels=None):
    conditions = [] if ready is None else [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]
    if network is not None:
        conditions.append({"type": "NetworkUnavailable", "status": network, "reason": "NoRouteCreated"})
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": unschedulable, "taints": [{"key": k, "effect": "NoSchedule"} for k in taints]},
            "status": {"conditions": conditions}}


def test_a_ready_node_is_eligible():
    assert node_exclusion(node()) == ""
    assert node_exclusion(node(network="False")) == ""


@pytest.mark.parametrize(("obj", "reason"), [
    (node(labels={EXCLUDE_LABEL: ""}), f"labelled {EXCLUDE_LABEL}"),
    (node(ready="False"), "NotReady: Ready is False (KubeletReady)"),
    (node(ready="Unknown"), "NotReady: Ready is Unknown (KubeletReady)"),
    (node(ready=None), "NotReady: no Ready condition"),
    (node(network="True"), "NetworkUnavailable (NoRouteCreated)"),
    (node(unschedulable=True, taints=[UNSCHEDULABLE_TAINT]),
     f"draining: spec.unschedulable and the {UNSCHEDULABLE_TAINT} taint"),
])
def test_an_excluded_node_says_why(obj, reason):
    assert node_exclusion(obj) == reason


def test_the_label_is_named_first_whatever_else_is_wrong():
    assert node_exclusion(node(ready="False", labels={EXCLUDE_LABEL: "true"})) == f"labelled {EXCLUDE_LABEL}"


def test_draining_needs_both_the_cordon_and_its_taint():
    assert node_exclusion(node(unschedulable=True)) == ""  # cordoned, not yet acted on by the control plane
    assert node_exclusion(node(taints=[UNSCHEDULABLE_TAINT])) == ""  # uncordoned, taint not yet removed
    assert node_exclusion(node(taints=["node.kubernetes.io/disk-pressure"])) == ""


def ep(node_name, **conditions):
    return {"nodeName": node_name, "conditions": conditions}


def eps(*endpoints, service="web", namespace="apps"):
    return {"metadata": {"namespace": namespace, "name": f"{service}-x",
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": list(endpoints)}


def test_serving_not_ready_is_what_counts():
    # a terminating pod that still serves: ready false, serving true (MetalLB #2074)
    assert serving_nodes([eps(ep("n1", ready=False, serving=True, terminating=True))]) == {"n1"}
    assert serving_nodes([eps(ep("n1", ready=True, serving=False))]) == set()


def test_without_serving_ready_decides_and_unset_is_true():
    assert serving_nodes([eps(ep("n1", ready=False), ep("n2", ready=True), ep("n3"))]) == {"n2", "n3"}


def test_serving_nodes_across_slices_skip_endpoints_without_a_node():
    slices = [eps(ep("n1", serving=True), {"conditions": {"serving": True}}), eps(ep("n2", serving=True))]
    assert serving_nodes(slices) == {"n1", "n2"}


def test_slice_key_is_its_services():
    assert slice_service_key(eps(service="web")) == "apps/web"
    assert slice_service_key({"metadata": {"namespace": "apps", "name": "x"}}) == ""


def svc(name="web", *ips, policy=None, cls=None, kind="LoadBalancer", ports=None):
    spec = {"type": kind, "ports": ports if ports is not None else [{"port": 80, "protocol": "TCP"}]}
    if policy:
        spec["externalTrafficPolicy"] = policy
    if cls:
        spec["loadBalancerClass"] = cls
    return {"metadata": {"namespace": "apps", "name": name}, "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def test_only_ingress_inside_the_pools_is_announced():
    entry = desired_service(svc("web", "198.51.100.100", "203.0.113.50", "2001:db8:1::5"), POOLS)
    assert entry.key == "apps/web"
    assert entry.addresses == ("198.51.100.100", "2001:db8:1::5")
    assert entry.pool == "lan"
    assert entry.ports == (ServicePort("TCP", 80),)
    assert entry.external_traffic_policy == "Cluster"
    assert desired_service(svc("web", "203.0.113.50"), POOLS) is None
    assert desired_service(svc("web"), POOLS) is None
    assert desired_service(svc("web", "198.51.100.100", kind="NodePort"), POOLS) is None


def test_local_takes_the_serving_nodes_of_its_slices():
    entry = desired_service(svc("web", "203.0.113.9", policy="Local"), POOLS,
                            [eps(ep("n1", serving=True), ep("n2", serving=False))])
    assert (entry.pool, entry.local_nodes) == ("wan", {"n1"})
    assert entry.may_announce("n1", "")
    assert not entry.may_announce("n2", "")
    assert not entry.may_announce("n1", "NotReady: Ready is False")


def test_cluster_state_joins_services_slices_and_nodes():
    state = cluster_state(
        [svc("web", "198.51.100.100", policy="Local"), svc("all", "198.51.100.101"), svc("none")],
        [eps(ep("n1", serving=True), service="web"), eps(ep("n2", serving=True), service="other")],
        [node("n1"), node("n2"), node("n3", ready="False")],
        POOLS,
    )
    assert set(state.services) == {"apps/web", "apps/all"}
    assert state.services["apps/web"].local_nodes == {"n1"}
    assert state.nodes == {"n1": "", "n2": "", "n3": "NotReady: Ready is False (KubeletReady)"}
    assert state.eligible_nodes == {"n1", "n2"}
    assert state.announcers("apps/web") == {"n1"}
    assert state.announcers("apps/all") == {"n1", "n2"}
    assert state.announcers("apps/none") == set()


def test_the_class_rule_is_the_controllers():
    assert is_ours(svc(), "baremetal.lb/speaker", True)
    assert not is_ours(svc(), "baremetal.lb/speaker", False)
    assert is_ours(svc(cls="baremetal.lb/speaker"), "baremetal.lb/speaker", False)
    assert not is_ours(svc(cls="other/lb"), "baremetal.lb/speaker", True)
    assert not is_ours(svc(kind="ClusterIP"), "baremetal.lb/speaker", True)


def unknown_node(since, name="n1"):
    obj = node(name, ready="Unknown")
    obj["status"]["conditions"][0].update(reason="NodeStatusUnknown", lastTransitionTime=since)
    return obj


def test_ready_unknown_excludes_only_once_it_has_lasted_the_grace():
    since = "2026-12-03T15:40:00Z"
    at = datetime(2026, 12, 3, 15, 40, tzinfo=UTC).timestamp()
    assert node_exclusion(unknown_node(since), at + 5) == ""  # silence for 5 s: as after an apiserver restart
    assert node_exclusion(unknown_node(since), at + NODE_UNKNOWN_GRACE_S) == "NotReady: Ready is Unknown (NodeStatusUnknown)"
    assert node_exclusion(unknown_node(since)) == "NotReady: Ready is Unknown (NodeStatusUnknown)"  # no time: at once
    assert node_exclusion(unknown_node(""), at) == "NotReady: Ready is Unknown (NodeStatusUnknown)"  # no transition time
    # a failure the node reports itself excludes at once, whatever the time
    failed = node(ready="False")
    failed["status"]["conditions"][0]["lastTransitionTime"] = since
    assert node_exclusion(failed, at + 1) == "NotReady: Ready is False (KubeletReady)"
    # within the grace the other checks still apply
    draining = unknown_node(since)
    draining["spec"] = {"unschedulable": True, "taints": [{"key": UNSCHEDULABLE_TAINT}]}
    assert node_exclusion(draining, at + 1).startswith("draining")


def test_the_state_says_when_a_verdict_changes_by_time_alone():
    at = datetime(2026, 12, 3, 15, 40, tzinfo=UTC).timestamp()
    nodes = [unknown_node("2026-12-03T15:40:00Z", "n1"), unknown_node("2026-12-03T15:40:10Z", "n2"), node("n3")]
    state = cluster_state([], [], nodes, POOLS, at + 15)
    assert state.nodes == {"n1": "", "n2": "", "n3": ""}
    assert state.recheck_at == at + NODE_UNKNOWN_GRACE_S
    later = cluster_state([], [], nodes, POOLS, at + NODE_UNKNOWN_GRACE_S + 1)
    assert later.nodes["n1"].startswith("NotReady") and later.nodes["n2"] == ""
    assert later.recheck_at == at + 10 + NODE_UNKNOWN_GRACE_S
    assert cluster_state([], [], nodes, POOLS).recheck_at is None  # no time given: every verdict at once


def test_a_control_plane_clock_ahead_does_not_lengthen_the_grace():
    """The Unknown's lastTransitionTime is the control plane's clock: an hour ahead of ours, the grace
    still lasts NODE_UNKNOWN_GRACE_S of ours, from when this speaker first saw the condition."""
    at = datetime(2026, 12, 3, 15, 40, tzinfo=UTC).timestamp()
    nodes = [unknown_node("2026-12-03T16:40:00Z", "n1"), node("n2")]  # "now" on a control plane 1 h ahead
    assert node_exclusion(nodes[0], at) == ""  # it just went silent: within the grace
    first = cluster_state([], [], nodes, POOLS, at)
    assert first.nodes == {"n1": "", "n2": ""}
    assert first.recheck_at == at + NODE_UNKNOWN_GRACE_S  # not an hour and a half from now
    still = cluster_state([], [], nodes, POOLS, at + NODE_UNKNOWN_GRACE_S - 1, unknown=first.unknown)
    assert still.nodes["n1"] == "" and still.recheck_at == at + NODE_UNKNOWN_GRACE_S
    over = cluster_state([], [], nodes, POOLS, at + NODE_UNKNOWN_GRACE_S, unknown=still.unknown)
    assert over.nodes["n1"] == "NotReady: Ready is Unknown (NodeStatusUnknown)" and over.recheck_at is None
    # it stays over: the next evaluations do not start the grace again
    later = cluster_state([], [], nodes, POOLS, at + 600, unknown=over.unknown)
    assert later.nodes["n1"].startswith("NotReady") and later.recheck_at is None
    # Ready again, then Unknown again (a new lastTransitionTime): a new grace, from when it is seen
    back = cluster_state([], [], [node("n1"), node("n2")], POOLS, at + 700, unknown=later.unknown)
    assert back.nodes["n1"] == "" and back.unknown == {}
    again = [unknown_node("2026-12-03T16:52:00Z", "n1"), node("n2")]
    assert cluster_state([], [], again, POOLS, at + 720, unknown=later.unknown).nodes["n1"] == ""
    # a control plane clock behind ours: its own lastTransitionTime counts, as without skew
    behind = cluster_state([], [], [unknown_node("2026-12-03T15:39:00Z")], POOLS, at, unknown=first.unknown)
    assert behind.nodes["n1"].startswith("NotReady")
