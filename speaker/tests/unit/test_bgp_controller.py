"""The BGP controller without root: per service IP, advertise or withdraw, and why."""

import ipaddress

from lbspeaker.bgp.config import RouteAdvertisement, parse_bgp_config, route_advertisement
from lbspeaker.bgp.manager import Announcement, routes_for_peer
from lbspeaker.config import ServiceConfig
from lbspeaker.core.advertisements import AGGREGATION_LENGTH, AGGREGATION_LENGTH_V6, parse_advertisement
from lbspeaker.core.dataplane import HealthCheck
from lbspeaker.decisions.bgp import BgpController, announcements
from lbspeaker.decisions.view import Eligibility
from lbspeaker.desired import DesiredServices

CHECK = HealthCheck("tcp", host="127.0.0.1", port=80)
A = ipaddress.ip_address("203.0.113.10")
A6 = ipaddress.ip_address("2001:db8:ff::10")
B = ipaddress.ip_address("203.0.113.11")


def bgp_svc(name, *addresses, policy="Cluster"):
    return ServiceConfig(name, addresses, "bgp", policy, CHECK if policy == "Local" else None)


def decide(services, established=1, healthy=(), node="node1", allowed=None, excluded=None):
    c = BgpController()
    c.set_desired(DesiredServices(tuple(services), allowed or {}, excluded or {}))
    return c.decide(Eligibility(node, frozenset(healthy)), established)


def test_cluster_every_node_advertises_each_address():
    d = decide([bgp_svc("default/web", A, A6)], established=2)
    assert [(x.address, x.advertise, x.announcing) for x in d] == [(A, True, True), (A6, True, True)]
    assert {x.reason for x in d} == {"Cluster: every node announces; advertised to 2 peer(s)"}


def test_without_an_established_session_it_is_advertised_but_not_announcing():
    (d,) = decide([bgp_svc("default/web", A)], established=0)
    assert d.advertise and not d.announcing and d.reason == "no BGP session established"


def test_local_follows_the_local_endpoint():
    (down,) = decide([bgp_svc("default/api", A, policy="Local")])
    assert not down.advertise and not down.announcing
    assert down.reason == "Local: no healthy local endpoint here, withdrawn"
    (up,) = decide([bgp_svc("default/api", A, policy="Local")], healthy={"default/api"})
    assert up.advertise and up.announcing and up.reason == "Local: healthy local endpoint, advertised to 1 peer(s)"


def test_only_advertised_decisions_reach_the_bgp_speaker_with_their_policy():
    d = decide([bgp_svc("default/web", A), bgp_svc("default/api", B, policy="Local")])
    assert announcements(d) == (Announcement("default/web", A, "Cluster"),)
    d = decide([bgp_svc("default/web", A), bgp_svc("default/api", B, policy="Local")], healthy={"default/api"})
    assert announcements(d) == (Announcement("default/web", A, "Cluster"), Announcement("default/api", B, "Local"))


def test_an_excluded_node_withdraws_everything():
    d = decide(
        [bgp_svc("default/web", A), bgp_svc("default/api", B, policy="Local")],
        healthy={"default/api"},
        excluded={"node1": "labelled node.kubernetes.io/exclude-from-external-load-balancers"},
    )
    assert announcements(d) == ()
    assert {x.reason for x in d} == {
        "this node may not announce (labelled node.kubernetes.io/exclude-from-external-load-balancers), withdrawn"
    }


def test_allow_list_restricts_cluster_and_local():
    allowed = {"default/web": frozenset({"node2"}), "default/api": frozenset({"node1"})}
    services = [bgp_svc("default/web", A), bgp_svc("default/api", B, policy="Local")]
    web, api = decide(services, allowed=allowed, healthy={"default/api"})
    assert not web.advertise and web.reason == "not among the nodes allowed to announce it, withdrawn"
    assert api.advertise
    web2, api2 = decide(services, node="node2", allowed=allowed, healthy={"default/api"})
    assert web2.advertise and not api2.advertise
    assert api2.reason == "Local: no healthy local endpoint here, withdrawn"


def test_l2_services_are_not_the_bgp_controllers():
    l2 = ServiceConfig("default/l2", (A,))
    assert decide([l2, bgp_svc("default/web", B)])[0].service == "default/web"
    assert len(decide([l2])) == 0


def _with_policy(name, address, *raw_ads, policy="Cluster"):
    ads = tuple(parse_advertisement(ad, "bgp", i, "kubernetes.") for i, ad in enumerate(raw_ads))
    return ServiceConfig(name, (address,), "bgp", policy, advertisements=ads)


def test_a_cluster_services_pool_policy_reaches_the_bgp_speaker_in_place_of_the_sections():
    svc = _with_policy("apps/web", A, {"pools": ["wan"], "communities": ["64500:100", "no-export"],
                                       "local_pref": 250, "aggregation_length": 24},
                       {"pools": ["wan"], "large_communities": ["64500:1:2"], "peers": ["tor"]})
    plain = bgp_svc("apps/plain", B)
    (web, other) = announcements(decide([svc, plain]))
    assert web.advertisements == (
        RouteAdvertisement(communities=(64500 << 16 | 100, 0xFFFFFF01), local_pref=250, aggregation_length=24),
        RouteAdvertisement(peers=("tor",), large_communities=((64500, 1, 2),)))
    assert other.advertisements == ()

    config = parse_bgp_config({"asn": 64500, "router_id": "198.51.100.11", "peers": [
        {"name": "tor", "address": "198.51.100.1", "asn": 64500},
        {"name": "edge", "address": "198.51.100.2", "asn": 64999}],
        # the section's own policy: what every other announcement gets, and not the cluster Service
        "advertisements": [{"communities": ["65000:1"]}]})
    tor, edge = config.peers
    to_tor = {str(net): attrs for net, attrs in routes_for_peer(config, tor, (web, other)).items()}
    assert to_tor["203.0.113.0/24"].communities == (64500 << 16 | 100, 0xFFFFFF01)
    assert to_tor["203.0.113.0/24"].local_pref == 250  # iBGP
    assert to_tor["203.0.113.10/32"].large_communities == ((64500, 1, 2),)  # the second ad: no aggregation
    assert to_tor["203.0.113.11/32"].communities == (65000 << 16 | 1,)
    to_edge = {str(net): attrs for net, attrs in routes_for_peer(config, edge, (web, other)).items()}
    assert set(to_edge) == {"203.0.113.0/24", "203.0.113.11/32"}  # the "tor" advertisement goes to tor alone
    assert to_edge["203.0.113.0/24"].local_pref is None  # eBGP: no local-pref


def test_a_local_cluster_service_is_never_aggregated():
    svc = _with_policy("apps/api", A, {"communities": ["64500:5"], "aggregation_length": 24}, policy="Local")
    (ann,) = announcements(decide([svc], healthy={"apps/api"}))
    config = parse_bgp_config({"asn": 64501, "router_id": "198.51.100.11",
                               "peers": [{"address": "198.51.100.1", "asn": 64500}]})
    assert [str(n) for n in routes_for_peer(config, config.peers[0], (ann,))] == ["203.0.113.10/32"]


def test_unset_aggregation_lengths_are_host_routes_from_either_kind_of_advertisement():
    assert (AGGREGATION_LENGTH, AGGREGATION_LENGTH_V6) == (32, 128)
    section = parse_bgp_config({"asn": 64501, "router_id": "198.51.100.11",
                                "peers": [{"address": "198.51.100.1", "asn": 64500}],
                                "advertisements": [{"communities": ["65000:1"]}]}).advertisements[0]
    cluster = route_advertisement(parse_advertisement({"pools": ["wan"]}, "bgp", 0, "kubernetes."))
    for ad in (section, cluster, RouteAdvertisement()):
        assert (ad.aggregation_length, ad.aggregation_length_v6) == (AGGREGATION_LENGTH, AGGREGATION_LENGTH_V6)
