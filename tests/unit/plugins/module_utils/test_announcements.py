"""From the inventory data model to speaker configurations: modes, nodes, BGP policy, inventory errors."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.announcements import (
    inventory_errors,
    node_config,
    resolve,
)
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError

SERVICES = [
    {"namespace": "demo", "name": "web", "ports": [{"port": 80}]},
    {"namespace": "demo", "name": "local", "external_traffic_policy": "Local",
     "health_check": {"type": "http", "url": "http://127.0.0.1:80/healthz"}},
    {"namespace": "demo", "name": "routed", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
     "backends": [{"node": "node1", "address": "198.51.100.11", "port": 8080}]},
    {"namespace": "demo", "name": "orphan"},
]
ALLOCATIONS = [
    {"namespace": "demo", "name": "web", "addresses": ["198.51.100.100", "2001:db8:1::100"], "pool": "lan"},
    {"namespace": "demo", "name": "local", "addresses": ["198.51.100.101"], "pool": "lan"},
    {"namespace": "demo", "name": "routed", "addresses": ["203.0.113.1"], "pool": "routed"},
    {"namespace": "demo", "name": "orphan", "addresses": ["203.0.113.200"], "pool": "nowhere"},
]
L2 = [{"name": "lan", "pools": ["lan"], "nodes": ["node1", "node2"], "interfaces": ["eth0"]}]
BGP = [{"name": "routed", "pools": ["routed"], "peers": ["tor"], "communities": ["64500:100"]}]
PEERS = [{"name": "tor", "address": "198.51.100.2", "asn": 64500, "password": "s3cret"}]
SECRET = "x" * 32


def test_modes_follow_the_pools_and_unadvertised_pools_are_not_announced():
    plan = resolve(ALLOCATIONS, SERVICES, L2, BGP)
    by_name = {s["name"]: s for s in plan["services"]}
    assert by_name["demo/web"]["mode"] == "l2"
    assert by_name["demo/web"]["nodes"] == ["node1", "node2"]
    assert by_name["demo/web"]["interfaces"] == ["eth0"]
    assert by_name["demo/local"]["external_traffic_policy"] == "Local"
    assert by_name["demo/local"]["health_check"]["type"] == "http"
    assert by_name["demo/routed"]["mode"] == "bgp"
    assert by_name["demo/routed"]["nodes"] == []
    assert by_name["demo/routed"]["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]
    # the core's model, as the speaker reads it: a backend without a check gets a TCP connect every second
    assert by_name["demo/routed"]["backends"] == [
        {"node": "node1", "address": "198.51.100.11", "port": 8080,
         "health_check": {"type": "tcp", "host": "198.51.100.11", "port": 8080, "interval_ms": 1000, "timeout_ms": 500}},
    ]
    assert "ports" not in by_name["demo/web"]  # no backends: kube-proxy (or the host) forwards
    assert "demo/orphan" not in by_name


def test_bgp_advertisements_name_their_services_and_never_go_out_empty():
    plan = resolve(ALLOCATIONS, SERVICES, L2, [*BGP, {"name": "unused", "pools": ["other"]}])
    assert plan["bgp_advertisements"] == [
        {"services": ["demo/routed"], "peers": ["tor"], "communities": ["64500:100"], "nodes": []}
    ]


def test_a_pool_with_both_advertisements_is_bgp():
    plan = resolve(ALLOCATIONS[:1], SERVICES, [{"pools": ["lan"]}], [{"pools": ["lan"]}])
    assert plan["services"][0]["mode"] == "bgp"


def test_node_config_keeps_a_node_to_its_services_and_peers():
    plan = resolve(ALLOCATIONS, SERVICES, L2, BGP)
    settings = {
        "interfaces": ["eth0"],
        "membership": {"secret_file": "/etc/baremetal-lb/membership.secret", "port": 7946},
        "status": {"address": "127.0.0.1", "port": 7473},
        "services": plan["services"],
        "bgp_advertisements": plan["bgp_advertisements"],
        "bgp_asn": 64501,
        "bgp_router_id": "198.51.100.13",
        "bgp_peers": PEERS,
    }
    nodes = [{"name": f"node{i}", "address": f"198.51.100.1{i}"} for i in (1, 2, 3)]
    node3 = node_config("node3", nodes, settings)
    assert [s["name"] for s in node3["services"]] == ["demo/routed"]
    assert "nodes" not in node3["services"][0]
    assert node3["bgp"]["peers"] == PEERS
    assert node3["bgp"]["advertisements"][0]["services"] == ["demo/routed"]
    node1 = node_config("node1", nodes, {**settings, "bgp_peers": [{**PEERS[0], "nodes": ["node3"]}]})
    assert [s["name"] for s in node1["services"]] == ["demo/web", "demo/local", "demo/routed"]
    assert "bgp" not in node1  # no peer is meant for node1


def test_inventory_errors_name_the_variable():
    assert inventory_errors(SECRET, PEERS, L2, BGP, [{"name": "lan"}, {"name": "routed"}]) == []
    errors = inventory_errors(
        "short",
        [{"name": "tor", "address": "not-an-ip", "asn": 1}, {"address": "198.51.100.3", "asn": "x", "password": "p" * 81}],
        [{"pools": ["lan", "missing"]}],
        [{"pools": ["routed"], "peers": ["tor", "tor9"]}],
        [{"name": "lan"}, {"name": "routed"}],
    )
    assert errors == [
        "lb_membership_secret: must be at least 32 bytes (got 5)",
        "lb_bgp_peers[0].address: must be an IP address (got 'not-an-ip')",
        "lb_bgp_peers[1].asn: must be an AS number (got 'x')",
        "lb_bgp_peers[1].password: must be a string of 1 to 80 bytes (TCP-MD5)",
        "lb_l2_advertisements[0].pools[1]: 'missing' is not a pool in lb_pools",
        "lb_bgp_advertisements[0].peers[0]: 'tor' is not a peer in lb_bgp_peers (by name or address)",
        "lb_bgp_advertisements[0].peers[1]: 'tor9' is not a peer in lb_bgp_peers (by name or address)",
    ]
    assert inventory_errors(None, [], [], [], [])[0].startswith("lb_membership_secret: is required")


def test_peers_named_alike_are_refused_unless_meant_for_different_nodes():
    peers = [
        {"name": "tor", "address": "198.51.100.1", "asn": 64500},
        {"name": "tor", "address": "198.51.100.2", "asn": 64500},  # the name again
        {"address": "198.51.100.1", "asn": 64501},  # the first one's address
        {"name": "198.51.100.3", "address": "198.51.100.4", "asn": 64500},
        {"address": "198.51.100.3", "asn": 64500},  # an address that is the peer above's name
        {"name": "edge", "address": "2001:db8::1", "asn": 64500, "nodes": ["node1"]},
        {"name": "edge", "address": "2001:DB8::1", "asn": 64500, "nodes": ["node2"]},  # another rack: fine
    ]
    assert inventory_errors(SECRET, peers, [], [], []) == [
        "lb_bgp_peers[1]: 'tor' names a peer already named by lb_bgp_peers[0] on a node both are meant for",
        "lb_bgp_peers[2]: '198.51.100.1' names a peer already named by lb_bgp_peers[0] on a node both are meant for",
        "lb_bgp_peers[4]: '198.51.100.3' names a peer already named by lb_bgp_peers[3] on a node both are meant for",
    ]
    # entries are named by their place in lb_bgp_peers, a broken one before them included
    assert inventory_errors(SECRET, ["x", *peers[:2]], [], [], [])[1:] == [
        "lb_bgp_peers[2]: 'tor' names a peer already named by lb_bgp_peers[1] on a node both are meant for"
    ]
    peers[6]["nodes"] = ["node2", "node1"]
    assert inventory_errors(SECRET, peers, [], [], [])[-1].startswith("lb_bgp_peers[6]: '2001:db8::1' names a peer")


def test_a_service_without_namespace_keeps_its_policy_and_data_plane_keys():
    """allocate saves it as default/NAME; the plan must find its spec under that key."""
    services = [
        {"name": "web", "external_traffic_policy": "Local", "ports": [{"port": 80}],
         "health_check": {"type": "tcp", "port": 8080},
         "backends": [{"node": "node1", "address": "198.51.100.11", "port": 8080}]},
    ]
    allocations = [{"namespace": "default", "name": "web", "addresses": ["198.51.100.100"], "pool": "lan"}]
    (entry,) = resolve(allocations, services, L2, [])["services"]
    assert entry["name"] == "default/web"
    assert entry["external_traffic_policy"] == "Local"
    assert entry["health_check"] == {"type": "tcp", "host": "127.0.0.1", "port": 8080, "interval_ms": 1000, "timeout_ms": 500}
    assert [(b["node"], b["address"], b["port"]) for b in entry["backends"]] == [("node1", "198.51.100.11", 8080)]
    assert entry["ports"] == [{"port": 80, "protocol": "TCP"}]


def test_node_config_carries_the_kubernetes_section_and_brings_bgp_for_it():
    settings = {
        "interfaces": ["eth0"],
        "membership": {"secret_file": "/etc/baremetal-lb/membership.secret"},
        "status": {"address": "127.0.0.1", "port": 7473},
        "services": [],
        "bgp_advertisements": [],
        "bgp_asn": 64501,
        "bgp_router_id": "198.51.100.11",
        "bgp_peers": PEERS,
    }
    nodes = [{"name": f"node{i}", "address": f"198.51.100.1{i}"} for i in (1, 2)]
    cluster = {"kubeconfig": "/etc/baremetal-lb/speaker.kubeconfig", "node_name": "node1",
               "pools": [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]},
                         {"name": "routed", "addresses": ["203.0.113.0/24", "2001:db8:2::10-2001:db8:2::1f"]}],
               "bgp_advertisements": [{"pools": ["routed"], "nodes": ["node1"], "peers": ["tor"],
                                       "communities": ["64500:100"], "local_pref": 200}]}
    node1 = node_config("node1", nodes, {**settings, "kubernetes": cluster})
    assert node1["kubernetes"] == cluster  # as given: the speaker reads the advertisements' nodes itself
    assert node1["bgp"]["peers"] == PEERS
    # no route policy for them in the bgp section: the speaker applies the pool's advertisement to the
    # cluster's Services itself (by their pool), so the section carries only the static advertisements
    assert node1["bgp"]["advertisements"] == []
    every_pool = {**cluster, "bgp_advertisements": [{}]}
    assert node_config("node2", nodes, {**settings, "kubernetes": every_pool})["bgp"]["peers"] == PEERS
    node2 = node_config("node2", nodes, {**settings, "kubernetes": cluster})
    assert "bgp" not in node2  # the advertisement is node1's only
    assert "kubernetes" not in node_config("node1", nodes, settings)  # not a cluster node: no section, no bgp
    assert "bgp" not in node_config("node1", nodes, settings)


RACK_PEERS = [
    {"name": "tor-a", "address": "198.51.100.1", "asn": 64500, "nodes": ["node1"]},
    {"name": "tor-b", "address": "198.51.100.2", "asn": 64500, "nodes": ["node2"]},
]
RACK_NODES = [{"name": f"node{i}", "address": f"198.51.100.1{i}"} for i in (1, 2)]


def rack_settings(bgp_advertisements, cluster=None):
    plan = resolve(ALLOCATIONS, SERVICES, L2, bgp_advertisements)
    return {
        "interfaces": ["eth0"],
        "membership": {"secret_file": "/etc/baremetal-lb/membership.secret"},
        "status": {"address": "127.0.0.1", "port": 7473},
        "services": plan["services"],
        "bgp_advertisements": plan["bgp_advertisements"],
        "bgp_asn": 64501,
        "bgp_router_id": "198.51.100.12",
        "bgp_peers": RACK_PEERS,
        "kubernetes": cluster,
    }


def test_node_config_keeps_other_racks_peers_out_of_a_nodes_advertisements():
    """A peer with nodes goes to those nodes only: an advertisement naming it uses it there only."""
    both = [{"pools": ["routed"], "peers": ["tor-a", "tor-b"], "communities": ["64500:100"]}]
    for node, own in (("node1", "tor-a"), ("node2", "tor-b")):
        bgp = node_config(node, RACK_NODES, rack_settings(both))["bgp"]
        assert [p["name"] for p in bgp["peers"]] == [own]
        assert bgp["advertisements"] == [{"services": ["demo/routed"], "peers": [own], "communities": ["64500:100"]}]
    # one naming the other rack's peer only is left out (no peers would mean every peer), the other kept whole
    split = [{"pools": ["routed"], "peers": ["tor-a"], "local_pref": 300}, {"pools": ["routed"], "local_pref": 100}]
    bgp = node_config("node2", RACK_NODES, rack_settings(split))["bgp"]
    assert bgp["advertisements"] == [{"services": ["demo/routed"], "local_pref": 100}]
    # a name that is nobody's peer stays, for the speaker to refuse by its field (bgp.advertisements[0].peers[1])
    typo = [{"pools": ["routed"], "peers": ["tor-a", "tor-b", "spine"]}]
    assert node_config("node2", RACK_NODES, rack_settings(typo))["bgp"]["advertisements"][0]["peers"] == [
        "tor-b", "spine"]


def test_node_config_checks_the_clusters_advertisements_peers_against_every_peer():
    cluster = {"kubeconfig": "/k", "node_name": "node2", "pools": [{"name": "routed", "addresses": ["203.0.113.0/24"]}],
               "bgp_advertisements": [{"pools": ["routed"], "peers": ["tor-a", "198.51.100.2"]}]}
    node2 = node_config("node2", RACK_NODES, rack_settings([], cluster))
    assert node2["kubernetes"] == cluster  # as given: the same on every node
    assert [p["name"] for p in node2["bgp"]["peers"]] == ["tor-b"]
    # the other rack's peer only: nothing for tor-b, so no bgp section for it
    theirs = {**cluster, "bgp_advertisements": [{"pools": ["routed"], "peers": ["tor-a"]}]}
    assert "bgp" not in node_config("node2", RACK_NODES, rack_settings([], theirs))
    assert "bgp" in node_config("node1", RACK_NODES, rack_settings([], theirs))
    nobodys = {**cluster, "bgp_advertisements": [{"pools": ["routed"], "nodes": ["node1"], "peers": ["tor-a", "spine"]}]}
    with pytest.raises(InputError) as exc:
        node_config("node2", RACK_NODES, rack_settings([], nobodys))
    assert str(exc.value) == (
        "lb_bgp_advertisements[0].peers[1]: is not a peer in lb_bgp_peers (by name or address) (got 'spine')")
