"""/status and the per-address metrics, assembled from the controllers' decisions."""

import ipaddress

from lbspeaker.config import Config, MembershipConfig, NodeConfig, ServiceConfig, StatusConfig
from lbspeaker.core.dataplane import HealthCheck
from lbspeaker.daemon import Speaker
from lbspeaker.decisions.bgp import BgpDecision
from lbspeaker.decisions.l2 import L2Announcement
from lbspeaker.decisions.view import MembershipView
from lbspeaker.status import address_samples, announcement_rows

V4 = ipaddress.ip_address("198.51.100.100")
V6 = ipaddress.ip_address("2001:db8:1::100")
B = ipaddress.ip_address("203.0.113.10")


def test_rows_follow_the_documented_status_format():
    l2 = [L2Announcement(V4, ("a/dns-tcp", "a/dns-udp"), ("eth0",), "node2", True, "elected leader")]
    bgp = [BgpDecision("a/api", B, "Local", False, False, "Local: no healthy local endpoint here, withdrawn")]
    assert announcement_rows(l2, bgp) == [
        {
            "address": "198.51.100.100",
            "service": "a/dns-tcp",
            "mode": "l2",
            "announcing": True,
            "leader": "node2",
            "reason": "elected leader",
            "interfaces": ["eth0"],
        },
        {
            "address": "198.51.100.100",
            "service": "a/dns-udp",
            "mode": "l2",
            "announcing": True,
            "leader": "node2",
            "reason": "elected leader",
            "interfaces": ["eth0"],
        },
        {
            "address": "203.0.113.10",
            "service": "a/api",
            "mode": "bgp",
            "announcing": False,
            "leader": None,
            "reason": "Local: no healthy local endpoint here, withdrawn",
        },
    ]
    assert address_samples("node2", l2, bgp) == [
        ((("node", "node2"), ("address", "198.51.100.100"), ("service", "a/dns-tcp"), ("mode", "l2")), True),
        ((("node", "node2"), ("address", "198.51.100.100"), ("service", "a/dns-udp"), ("mode", "l2")), True),
        ((("node", "node2"), ("address", "203.0.113.10"), ("service", "a/api"), ("mode", "bgp")), False),
    ]


def test_the_daemons_status_is_what_its_controllers_decided():
    """A speaker (not started): its /status rows are the controllers' rows, reasons included."""
    web = ServiceConfig("default/web", (V6, V4))
    api = ServiceConfig(
        "default/api",
        (B,),
        mode="bgp",
        external_traffic_policy="Local",
        health_check=HealthCheck("tcp", host="127.0.0.1", port=80),
    )
    nodes = (
        NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),
        NodeConfig("node2", ipaddress.ip_address("198.51.100.12")),
    )
    config = Config("node1", nodes, MembershipConfig(b"s" * 32), ("eth0",), StatusConfig(), (web, api))
    speaker = Speaker("/etc/baremetal-lb/speaker.yaml", config)
    doc = speaker.status()
    assert [(r["address"], r["mode"], r["announcing"], r["reason"]) for r in doc["announcements"]] == [
        ("198.51.100.100", "l2", False, "starting"),
        ("2001:db8:1::100", "l2", False, "starting"),
        ("203.0.113.10", "bgp", False, "Local: no healthy local endpoint here, withdrawn"),
    ]
    assert [m["name"] for m in doc["members"]] == ["node1", "node2"]

    view = MembershipView(True, {"node1": frozenset()}, {"node1": frozenset({4, 6})})
    speaker.l2_controller.plan(view, speaker._eligibility())
    reasons = {r["address"]: (r["leader"], r["reason"]) for r in speaker.status()["announcements"]}
    assert reasons["198.51.100.100"] == ("node1", "only eligible node (Cluster)")
    assert reasons["2001:db8:1::100"] == ("node1", "only eligible node (Cluster)")
