"""Rack-specific peers: each node's configuration, as the core builds it, passes the speaker's parser.

Two racks, MetalLB's "peers with node selectors": ``tor-a`` is node1's peer only, ``tor-b`` node2's, and
one advertisement without ``nodes`` names both. The core (``announcements.node_config``, what the role's
``lb_speaker_config`` filter calls) gives each node its own peer only; the advertisement's other peer
belongs to the other node and is not used here, but a name that is nobody's peer is still an error.
"""

from __future__ import annotations

import ipaddress

import pytest
from lbspeaker import config
from lbspeaker.bgp.config import route_advertisement
from lbspeaker.bgp.manager import Announcement, routes_for_peer
from lbspeaker.core.announcements import inventory_errors, node_config, resolve
from lbspeaker.core.errors import InputError
from lbspeaker.errors import ConfigError

SECRET = "x" * 32
PEERS = [
    {"name": "tor-a", "address": "198.51.100.1", "asn": 64500, "nodes": ["node1"]},
    {"name": "tor-b", "address": "198.51.100.2", "asn": 64500, "nodes": ["node2"]},
]
NODES = [{"name": "node1", "address": "127.0.0.1"}, {"name": "node2", "address": "127.0.0.2"}]
POOLS = [{"name": "routed", "addresses": ["203.0.113.0/28"]}]
ROUTE = ipaddress.ip_network("203.0.113.1/32")


def settings(bgp_advertisements, kubernetes=None):
    """The role's settings for node_config: a static BGP service in pool routed, and optionally the cluster's."""
    plan = resolve(
        [{"namespace": "demo", "name": "web", "addresses": ["203.0.113.1"], "pool": "routed"}],
        [{"namespace": "demo", "name": "web", "ports": [{"port": 80}]}],
        [],
        bgp_advertisements,
    )
    return {
        "interfaces": ["lo"],
        "membership": {"secret": SECRET},
        "status": {"address": "127.0.0.1", "port": 7473},
        "services": plan["services"],
        "bgp_advertisements": plan["bgp_advertisements"],
        "bgp_asn": 64501,
        "bgp_router_id": "198.51.100.12",
        "bgp_peers": PEERS,
        "kubernetes": kubernetes,
    }


def parsed(node, node_settings):
    return config.parse(node_config(node, NODES, node_settings), check_interfaces=False)


def routes(cfg, announcement):
    """Each configured peer's routes for ``announcement``."""
    assert cfg.bgp is not None
    return {p.key: sorted(routes_for_peer(cfg.bgp, p, [announcement])) for p in cfg.bgp.peers}


def test_an_advertisement_naming_both_racks_peers_goes_to_each_nodes_own_peer():
    ads = [{"pools": ["routed"], "peers": ["tor-a", "tor-b"], "communities": ["64500:100"]}]
    for node, own in (("node1", "tor-a"), ("node2", "tor-b")):
        cfg = parsed(node, settings(ads))  # node2 was refused: tor-a "names no configured peer"
        assert cfg.bgp is not None and [p.key for p in cfg.bgp.peers] == [own]
        (ad,) = cfg.bgp.advertisements
        assert ad.peers == (own,)  # the other rack's peer is not this node's to use
        assert routes(cfg, Announcement("demo/web", ROUTE.network_address)) == {own: [ROUTE]}


def test_an_advertisement_naming_only_the_other_racks_peer_announces_nothing_here():
    ads = [{"pools": ["routed"], "peers": ["tor-a"]}]
    cfg = parsed("node2", settings(ads))
    assert cfg.bgp is not None and [p.key for p in cfg.bgp.peers] == ["tor-b"]
    # left out on node2 rather than kept with no peers, which would mean every peer
    assert cfg.bgp.advertisements == ()
    assert routes(cfg, Announcement("demo/web", ROUTE.network_address)) == {"tor-b": []}
    cfg = parsed("node1", settings(ads))
    assert routes(cfg, Announcement("demo/web", ROUTE.network_address)) == {"tor-a": [ROUTE]}


def test_a_name_that_is_nobodys_peer_is_still_refused():
    ads = [{"pools": ["routed"], "peers": ["tor-a", "tor-b", "spine"]}]
    with pytest.raises(ConfigError) as exc:
        parsed("node2", settings(ads))
    assert exc.value.field == "bgp.advertisements[0].peers[1]"  # tor-a left out on node2, spine kept
    assert "'spine'" in str(exc.value) and "names no configured peer" in str(exc.value)


def cluster(ads):
    return {"kubeconfig": "/k", "node_name": "node2", "pools": POOLS, "bgp_advertisements": ads}


def test_the_clusters_advertisement_naming_both_racks_peers_passes_on_each_node():
    ads = [{"pools": ["routed"], "peers": ["tor-a", "tor-b"], "communities": ["64500:100"]}]
    cfg = parsed("node2", settings([], cluster(ads)))
    assert cfg.bgp is not None and [p.key for p in cfg.bgp.peers] == ["tor-b"]
    assert cfg.kubernetes is not None
    (ad,) = cfg.kubernetes.advertisements  # the cluster's, as given: the same pool decision on every node
    assert ad.peers == ("tor-a", "tor-b")
    announcement = Announcement("demo/web", ROUTE.network_address, advertisements=(route_advertisement(ad),))
    assert routes(cfg, announcement) == {"tor-b": [ROUTE]}


def test_the_clusters_advertisement_for_the_other_racks_peer_only_brings_no_bgp_section():
    ads = [{"pools": ["routed"], "peers": ["tor-a"]}]
    doc = node_config("node2", NODES, {**settings([], cluster(ads)), "services": [], "bgp_advertisements": []})
    assert "bgp" not in doc  # nothing of the cluster's goes to tor-b: no session for nothing
    assert config.parse(doc, check_interfaces=False).kubernetes is not None


def test_the_clusters_advertisement_naming_nobodys_peer_is_refused_with_the_variable():
    ads = [{"pools": ["routed"], "peers": ["tor-b", "spine"]}]
    with pytest.raises(InputError) as exc:
        node_config("node2", NODES, settings([], cluster(ads)))
    assert exc.value.field == "lb_bgp_advertisements[0].peers[1]"
    assert "'spine'" in str(exc.value) and "is not a peer in lb_bgp_peers" in str(exc.value)


def test_a_hand_written_config_may_name_other_nodes_peers_in_the_kubernetes_section():
    """The speaker's file holds this node's peers only: another name there is another node's peer."""
    raw = node_config("node2", NODES, settings([], cluster([{"pools": ["routed"], "peers": ["tor-b"]}])))
    raw["kubernetes"]["bgp_advertisements"] = [{"pools": ["routed"], "peers": ["tor-a"]}]
    cfg = config.parse(raw, check_interfaces=False)
    assert cfg.kubernetes is not None and cfg.kubernetes.advertisements[0].peers == ("tor-a",)


def test_one_router_address_seen_from_two_racks_is_two_peers_not_a_duplicate():
    """The same ToR address in each rack (each rack's own router): site.yml's inventory check and each node's
    speaker take it; meant for a node in common, the check refuses it by the rule the speaker refuses it by."""
    same = [{**PEERS[0], "name": "tor"}, {**PEERS[1], "name": "tor", "address": "198.51.100.1"}]
    ads = [{"pools": ["routed"], "peers": ["tor"]}]
    assert inventory_errors(SECRET, same, [], ads, POOLS) == []
    for node in ("node1", "node2"):
        cfg = parsed(node, {**settings(ads), "bgp_peers": same})
        assert cfg.bgp is not None and [str(p.address) for p in cfg.bgp.peers] == ["198.51.100.1"]
    overlapping = [same[0], {**same[1], "nodes": ["node2", "node1"]}]
    assert inventory_errors(SECRET, overlapping, [], ads, POOLS) == [
        "lb_bgp_peers[1]: '198.51.100.1' names a peer already named by lb_bgp_peers[0] on a node both are meant for"
    ]
    with pytest.raises(ConfigError) as exc:  # what node1's speaker would have said, later
        parsed("node1", {**settings(ads), "bgp_peers": overlapping})
    assert exc.value.field == "bgp.peers[1]"
