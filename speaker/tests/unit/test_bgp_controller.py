"""The BGP controller without root: per service IP, advertise or withdraw, and why."""

import ipaddress

from lbspeaker.bgp.manager import Announcement
from lbspeaker.config import ServiceConfig
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
