# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each finding: a small desired state that triggers it and one that does not."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_desired_state, validate

L2_POOL = {"name": "lan", "addresses": ["198.51.100.100-198.51.100.120"]}
BGP_POOL = {"name": "routed", "addresses": ["203.0.113.0/24"]}
NODES = ["node-a", "node-b", "node-c"]


def run(services, *, pools=None, l2=None, bgp=None, nodes=None, placement=None):
    state = parse_desired_state(
        pools=[L2_POOL, BGP_POOL] if pools is None else pools,
        services=services,
        l2_advertisements=[{"pools": ["lan"]}] if l2 is None else l2,
        bgp_advertisements=[{"pools": ["routed"]}] if bgp is None else bgp,
        nodes=NODES if nodes is None else nodes,
        placement=placement,
    )
    return validate(state).to_dict()


def svc(name, **kw):
    data = {"namespace": "default", "name": name, "ports": [{"port": 80, "protocol": "TCP"}]}
    data.update(kw)
    return data


def messages(findings, service=None):
    return [f["message"] for f in findings if service is None or f["service"] == service]


# --- a clean state -------------------------------------------------------------------------------


def test_clean_state_has_no_findings():
    result = run(
        [svc("web", address_pool="routed", external_traffic_policy="Local")],
        placement={"default/web": {"node-a": 1, "node-b": 1, "node-c": 1}},
    )
    assert result["errors"] == []
    assert result["warnings"] == []
    assert [p["share"] for p in result["traffic"]["default/web"]["per_pod"]] == [0.3334, 0.3333, 0.3333]


# --- sharing groups ------------------------------------------------------------------------------


def dns(name, protocol, **kw):
    fields = {
        "ports": [{"port": 53, "protocol": protocol}],
        "sharing_key": "dns",
        "load_balancer_ips": ["198.51.100.110"],
        "external_traffic_policy": "Local",
        "selector": {"app": "dns"},
    }
    fields.update(kw)
    return svc(name, **fields)


def test_dns_tcp_and_udp_on_one_ip_can_share():
    result = run([dns("dns-tcp", "TCP"), dns("dns-udp", "UDP")])
    assert result["errors"] == []
    assert result["warnings"] == []


def test_same_requested_ip_with_different_selectors_is_an_error_naming_both():
    result = run([dns("dns-tcp", "TCP"), dns("dns-udp", "UDP", selector={"app": "other"})])
    (message,) = messages(result["errors"], "default/dns-udp")
    assert "default/dns-tcp" in message and "198.51.100.110" in message and "backends differ" in message


def test_same_requested_ip_with_different_policies_is_an_error():
    result = run([dns("dns-tcp", "TCP"), dns("dns-udp", "UDP", external_traffic_policy="Cluster")])
    assert "backends differ" in messages(result["errors"], "default/dns-udp")[0]


def test_same_requested_ip_with_overlapping_port_is_an_error():
    result = run([dns("dns-a", "TCP"), dns("dns-b", "TCP")])
    assert "TCP/53" in messages(result["errors"], "default/dns-b")[0]


def test_same_requested_ip_without_sharing_key_is_an_error():
    a = svc("a", load_balancer_ips=["198.51.100.111"])
    b = svc("b", load_balancer_ips=["198.51.100.111"], ports=[{"port": 443}])
    result = run([a, b])
    assert "no sharing_key" in messages(result["errors"], "default/b")[0]


def test_sharing_key_group_with_different_policies_is_a_warning():
    a = svc("a", sharing_key="web", address_pool="lan")
    b = svc(
        "b",
        sharing_key="web",
        address_pool="lan",
        ports=[{"port": 443}],
        external_traffic_policy="Local",
        selector={"app": "web"},
    )
    result = run([a, b])
    assert result["errors"] == []
    (message,) = messages(result["warnings"], "default/b")
    assert "default/a" in message and "separate addresses" in message


def test_sharing_key_group_with_overlapping_ports_is_a_warning():
    result = run([svc("a", sharing_key="web"), svc("b", sharing_key="web")])
    assert "TCP/80" in messages(result["warnings"], "default/b")[0]


def test_sharing_key_group_with_disjoint_ports_is_clean():
    result = run([svc("a", sharing_key="web"), svc("b", sharing_key="web", ports=[{"port": 443}])])
    assert result["warnings"] == [] and result["errors"] == []


def test_sharing_key_group_whose_requested_ips_disagree_is_a_warning():
    a = svc("a", sharing_key="web", load_balancer_ips=["198.51.100.101"])
    b = svc("b", sharing_key="web", load_balancer_ips=["198.51.100.102"], ports=[{"port": 443}])
    message = messages(run([a, b])["warnings"], "default/b")[0]
    assert "requested IPs disagree" in message and "198.51.100.101" in message and "198.51.100.102" in message


def test_sharing_key_group_in_different_pools_is_a_warning():
    a = svc("a", sharing_key="web", address_pool="lan")
    b = svc("b", sharing_key="web", address_pool="routed", ports=[{"port": 443}])
    assert "pool 'routed', not 'lan'" in messages(run([a, b])["warnings"], "default/b")[0]


# --- requested IPs and pools ---------------------------------------------------------------------


def test_requested_ip_in_no_pool_is_an_error():
    result = run([svc("a", load_balancer_ips=["198.51.100.5"])])
    assert "no pool owns" in messages(result["errors"], "default/a")[0]


def test_requested_ip_in_a_pool_is_fine():
    assert run([svc("a", load_balancer_ips=["198.51.100.105"])])["errors"] == []


def test_requested_pool_that_does_not_exist_is_an_error():
    assert "does not exist" in messages(run([svc("a", address_pool="nope")])["errors"], "default/a")[0]


def test_requested_pool_that_does_not_own_the_ip_is_an_error():
    result = run([svc("a", address_pool="routed", load_balancer_ips=["198.51.100.105"])])
    message = messages(result["errors"], "default/a")[0]
    assert "'routed', which does not own it" in message and "'lan' does" in message


def test_requested_ips_from_two_pools_are_an_error():
    pools = [L2_POOL, {"name": "v6", "addresses": ["2001:db8:1::100-2001:db8:1::120"]}]
    service = svc("a", load_balancer_ips=["198.51.100.105", "2001:db8:1::105"], ip_family_policy="RequireDualStack")
    result = run([service], pools=pools, bgp=[], l2=[{"pools": ["lan", "v6"]}])
    assert "one pool" in messages(result["errors"], "default/a")[0]


def test_buggy_ip_of_a_pool_that_avoids_it_is_an_error():
    pools = [{"name": "lan", "addresses": ["198.51.100.0/24"], "avoid_buggy_ips": True}]
    result = run([svc("a", load_balancer_ips=["198.51.100.255"])], pools=pools, bgp=[])
    assert "avoid_buggy_ips" in messages(result["errors"], "default/a")[0]


def test_pool_restricted_to_other_namespaces_is_an_error():
    pools = [{"name": "lan", "addresses": ["198.51.100.0/25"], "service_allocation": {"namespaces": ["prod"]}}]
    result = run([svc("a", address_pool="lan")], pools=pools, bgp=[])
    assert "serves only namespaces prod" in messages(result["errors"], "default/a")[0]


def test_no_automatic_pool_is_an_error():
    pools = [{"name": "lan", "addresses": ["198.51.100.0/25"], "auto_assign": False}]
    result = run([svc("a")], pools=pools, bgp=[])
    assert "no pool can give it an address" in messages(result["errors"], "default/a")[0]


def test_overlapping_pools_are_an_error():
    pools = [L2_POOL, {"name": "other", "addresses": ["198.51.100.120/29"]}]
    result = run([], pools=pools, bgp=[])
    assert messages(result["errors"]) == [
        "pools overlap: 198.51.100.120/29 of pool 'other' overlaps 198.51.100.100-198.51.100.120 of pool 'lan'; "
        "pools never share addresses"
    ]


def test_advertisement_of_unknown_pool_is_an_error():
    result = run([], l2=[{"pools": ["nope"]}])
    assert messages(result["errors"]) == ["l2_advertisements[0] announces pool 'nope', which does not exist"]


def test_pool_without_advertisement_is_a_warning():
    result = run([svc("a", address_pool="routed")], bgp=[])
    assert "nobody announces it" in messages(result["warnings"], "default/a")[0]


def test_advertisement_without_pools_announces_every_pool():
    result = run([svc("a", address_pool="routed")], bgp=[{}])
    assert result["warnings"] == []


# --- L2 + Local coverage -------------------------------------------------------------------------


def local_l2(**kw):
    return svc("web", address_pool="lan", external_traffic_policy="Local", **kw)


def test_l2_local_with_an_uncovered_candidate_node_warns_with_the_fix():
    result = run([local_l2()], placement={"default/web": {"node-a": 2, "node-b": 1}})
    (message,) = messages(result["warnings"], "default/web")
    assert "node-c" in message and "nobody answers" in message
    for fix in ("topologySpreadConstraints", "anti-affinity", "DaemonSet"):
        assert fix in message
    traffic = result["traffic"]["default/web"]
    assert traffic["mode"] == "l2" and traffic["leader"] == "node-a"
    assert [p["share"] for p in traffic["per_pod"]] == [0.5, 0.5, 0.0]
    assert "leader" in traffic["note"]


def test_l2_local_covering_every_candidate_is_clean():
    result = run([local_l2()], placement={"default/web": {"node-a": 1, "node-b": 1, "node-c": 1}})
    assert result["warnings"] == [] and result["errors"] == []


def test_l2_local_with_advertisement_nodes_checks_only_those():
    result = run(
        [local_l2()],
        l2=[{"pools": ["lan"], "nodes": ["node-a", "node-b"]}],
        placement={"default/web": {"node-a": 1, "node-b": 1}},
    )
    assert result["warnings"] == []


def test_l2_local_with_no_pod_on_any_candidate_is_an_error():
    result = run(
        [local_l2()],
        l2=[{"pools": ["lan"], "nodes": ["node-a"]}],
        placement={"default/web": {"node-b": 2}},
    )
    assert "nobody answers" in messages(result["errors"], "default/web")[0]


def test_l2_cluster_needs_no_coverage():
    result = run(
        [svc("web", address_pool="lan")],
        placement={"default/web": {"node-a": 1}},
    )
    assert result["warnings"] == []


# --- BGP + Local imbalance -----------------------------------------------------------------------


def test_seed_example_bgp_local_imbalance():
    result = run(
        [svc("web", address_pool="routed", external_traffic_policy="Local")],
        placement={"default/web": {"node-a": 2, "node-b": 1}},
    )
    traffic = result["traffic"]["default/web"]
    assert traffic["mode"] == "bgp" and traffic["policy"] == "Local"
    assert traffic["per_pod"] == [
        {"node": "node-a", "share": 0.25},
        {"node": "node-a", "share": 0.25},
        {"node": "node-b", "share": 0.5},
    ]
    other = [p["share"] for p in traffic["other_policy_per_pod"]]
    assert [round(s, 2) for s in other] == [0.33, 0.33, 0.33]
    assert sum(other) == pytest.approx(1)
    (message,) = messages(result["warnings"], "default/web")
    assert "node-a: 2 pods x 25%, node-b: 1 pod x 50%" in message
    assert "under Cluster: node-a: 2 pods x 33.3%, node-b: 1 pod x 33.3%" in message


def test_seed_example_under_cluster_is_even_and_clean():
    result = run(
        [svc("web", address_pool="routed")],
        placement={"default/web": {"node-a": 2, "node-b": 1}},
    )
    assert result["warnings"] == []
    traffic = result["traffic"]["default/web"]
    assert [round(p["share"], 2) for p in traffic["per_pod"]] == [0.33, 0.33, 0.33]
    assert [p["share"] for p in traffic["other_policy_per_pod"]] == [0.25, 0.25, 0.5]


def test_bgp_local_with_pods_only_outside_the_advertisement_is_an_error():
    result = run(
        [svc("web", address_pool="routed", external_traffic_policy="Local")],
        bgp=[{"pools": ["routed"], "nodes": ["node-c"]}],
        placement={"default/web": {"node-a": 1, "node-b": 1}},
    )
    assert "no node announces" in messages(result["errors"], "default/web")[0]


def test_bgp_local_pods_outside_the_advertisement_warn():
    result = run(
        [svc("web", address_pool="routed", external_traffic_policy="Local")],
        bgp=[{"pools": ["routed"], "nodes": ["node-a", "node-b"]}],
        placement={"default/web": {"node-a": 1, "node-b": 1, "node-c": 1}},
    )
    assert "node-c get no traffic" in messages(result["warnings"], "default/web")[0]


def test_placement_for_unknown_service_warns():
    result = run([], placement={"default/ghost": {"node-a": 1}})
    assert messages(result["warnings"], "default/ghost") == ["has a placement but is not among the services"]


# --- bad input names the field -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("services", "field"),
    [
        ([svc("a", external_traffic_policy="Nearest")], "services[0].external_traffic_policy"),
        ([svc("a", ports=[{"port": 70000}])], "services[0].ports[0].port"),
        ([svc("a", selector=["app=web"])], "services[0].selector"),
    ],
)
def test_bad_service_input_names_the_field(services, field):
    with pytest.raises(InputError) as info:
        run(services)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"placement": {"web": {"node-a": 1}}}, "placement['web']"),
        ({"placement": {"default/web": {"node-a": -1}}}, "placement['default/web'].node-a"),
        ({"l2": [{"pools": "lan"}]}, "l2_advertisements[0].pools"),
        ({"bgp": [{"pools": ["routed"], "peers": "tor"}]}, "bgp_advertisements[0].peers"),
    ],
)
def test_bad_other_input_names_the_field(kwargs, field):
    with pytest.raises(InputError) as info:
        run([], **kwargs)
    assert info.value.field == field


def test_pool_running_out_within_the_desired_state_is_an_error():
    pools = [{"name": "tiny", "addresses": ["198.51.100.100/32"]}]
    result = run([svc("a"), svc("b")], pools=pools, l2=[{"pools": ["tiny"]}], bgp=[])
    assert messages(result["errors"], "default/a") == []
    assert "no free IPv4 address" in messages(result["errors"], "default/b")[0]


def test_services_sharing_one_address_fit_a_one_address_pool():
    pools = [{"name": "tiny", "addresses": ["198.51.100.100/32"]}]
    services = [svc("a", sharing_key="web"), svc("b", sharing_key="web", ports=[{"port": 443}])]
    assert run(services, pools=pools, l2=[{"pools": ["tiny"]}], bgp=[])["errors"] == []


def test_full_pool_falls_through_to_the_next_for_the_announcement_mode():
    pools = [{"name": "tiny", "addresses": ["198.51.100.100/32"]}, BGP_POOL]
    result = run(
        [svc("a"), svc("b", external_traffic_policy="Local")],
        pools=pools,
        l2=[{"pools": ["tiny"]}],
        placement={"default/b": {"node-a": 2, "node-b": 1}},
    )
    assert result["errors"] == []
    assert result["traffic"]["default/b"]["mode"] == "bgp"


# --- workload shape instead of a placement -------------------------------------------------------


def run_shape(service, workload, **kw):
    state = parse_desired_state(
        pools=[L2_POOL, BGP_POOL],
        services=[service],
        l2_advertisements=[{"pools": ["lan"]}],
        bgp_advertisements=[{"pools": ["routed"]}],
        nodes=kw.get("nodes", NODES),
        workloads={"default/web": workload},
    )
    return validate(state).to_dict()


@pytest.mark.parametrize(
    "workload",
    [
        {"kind": "DaemonSet"},
        {"replicas": 3},  # spread by default, one per node
        {"replicas": 3, "spread": False, "anti_affinity": "required"},
    ],
)
def test_l2_local_workload_that_covers_every_node_is_clean(workload):
    result = run_shape(local_l2(), workload)
    assert result["warnings"] == [] and result["errors"] == []
    assert result["traffic"]["default/web"]["mode"] == "l2"


@pytest.mark.parametrize(
    ("workload", "text"),
    [
        ({"replicas": 2}, "2 replicas cannot cover 3 nodes"),
        ({"replicas": 5, "spread": False}, "nothing makes the scheduler put a pod on every node"),
        ({"replicas": 5, "spread": False, "anti_affinity": "preferred"}, "nothing makes the scheduler"),
    ],
)
def test_l2_local_workload_that_cannot_cover_every_node_warns(workload, text):
    (message,) = messages(run_shape(local_l2(), workload)["warnings"], "default/web")
    assert text in message and "DaemonSet" in message


def bgp_local():
    return svc("web", address_pool="routed", external_traffic_policy="Local")


def test_bgp_local_replicas_not_a_multiple_of_nodes_warns_with_shares():
    (message,) = messages(run_shape(bgp_local(), {"replicas": 4})["warnings"], "default/web")
    assert "4 replicas on 3 nodes" in message
    assert "node-a: 2 pods x 16.7%, node-b: 1 pod x 33.3%, node-c: 1 pod x 33.3%" in message
    assert "multiple of 3" in message


@pytest.mark.parametrize("workload", [{"replicas": 6}, {"replicas": 2}, {"kind": "DaemonSet"}])
def test_bgp_local_even_workload_is_clean(workload):
    result = run_shape(bgp_local(), workload)
    assert result["warnings"] == []
    shares = [p["share"] for p in result["traffic"]["default/web"]["per_pod"]]
    assert max(shares) - min(shares) <= 0.0001 + 1e-12  # equal up to the rounding that keeps the sum at 1


def test_required_anti_affinity_beyond_the_node_count_warns():
    workload = {"replicas": 4, "spread": False, "anti_affinity": "required"}
    message = messages(run_shape(bgp_local(), workload)["warnings"], "default/web")[0]
    assert "1 of 4 replicas stay pending" in message


def test_workload_for_an_unknown_service_names_the_field():
    with pytest.raises(InputError) as info:
        parse_desired_state(services=[svc("web")], workloads={"default/ghost": {"replicas": 1}})
    assert info.value.field == "workloads['default/ghost']"


def test_daemonset_with_replicas_in_workloads_names_the_field():
    with pytest.raises(InputError) as info:
        parse_desired_state(services=[svc("web")], workloads={"default/web": {"kind": "DaemonSet", "replicas": 2}})
    assert info.value.field == "workloads['default/web'].replicas"


def test_a_service_carries_its_own_workload_and_the_option_wins():
    """lb_services entries carry workload: validate checks it as if given in workloads."""
    own = validate(parse_desired_state(
        pools=[L2_POOL, BGP_POOL], services=[{**local_l2(), "workload": {"replicas": 2}}],
        l2_advertisements=[{"pools": ["lan"]}], nodes=NODES,
    )).to_dict()
    assert "2 replicas cannot cover 3 nodes" in messages(own["warnings"], "default/web")[0]
    given = validate(parse_desired_state(
        pools=[L2_POOL, BGP_POOL], services=[{**local_l2(), "workload": {"replicas": 2}}],
        l2_advertisements=[{"pools": ["lan"]}], nodes=NODES, workloads={"default/web": {"kind": "DaemonSet"}},
    )).to_dict()
    assert messages(given["warnings"], "default/web") == []
