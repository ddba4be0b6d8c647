"""Aggregating the speakers' /status: leaders, announcers, disagreement, two L2 announcers."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.speaker_status import aggregate, check_document


def view(node, *announcements, **extra):
    return {"node": node, "members": [], "announcements": list(announcements), **extra}


def l2(address, leader, announcing, service="demo/web"):
    return {"address": address, "service": service, "mode": "l2", "leader": leader, "announcing": announcing}


def test_agreeing_nodes_give_one_leader():
    out = aggregate([
        view("node1", l2("198.51.100.100", "node2", False)),
        view("node2", l2("198.51.100.100", "node2", True)),
    ])
    (entry,) = out["addresses"]
    assert entry["leader"] == "node2"
    assert entry["announcing_nodes"] == ["node2"]
    assert entry["agreed"] is True
    assert out["errors"] == [] and out["disagreements"] == []


def test_two_nodes_announcing_one_l2_ip_is_an_error():
    out = aggregate([
        view("node1", l2("198.51.100.100", "node1", True)),
        view("node2", l2("198.51.100.100", "node2", True)),
    ])
    assert out["errors"] == ["198.51.100.100: 2 nodes answer ARP/NDP for it (node1, node2); exactly one may"]
    assert out["disagreements"] == ["198.51.100.100: nodes name different leaders (node1, node2)"]
    assert out["addresses"][0]["leader"] is None


def test_addresses_sorted_by_family_and_value_and_unreachable_nodes_listed():
    out = aggregate([
        view("node1", l2("2001:db8:1::100", "node1", True), l2("198.51.100.9", "node1", True),
             l2("198.51.100.10", "node1", True)),
        {"node": "node2", "error": "connection refused"},
    ])
    assert [a["address"] for a in out["addresses"]] == ["198.51.100.9", "198.51.100.10", "2001:db8:1::100"]
    assert out["unreachable"] == [{"node": "node2", "error": "connection refused"}]
    assert out["nodes"] == ["node1"]


def test_bgp_ips_list_every_announcing_node():
    bgp = {"address": "203.0.113.1", "service": "demo/routed", "mode": "bgp", "leader": None}
    out = aggregate([view("node1", {**bgp, "announcing": True}), view("node2", {**bgp, "announcing": True})])
    assert out["addresses"][0]["mode"] == "bgp"
    assert out["addresses"][0]["announcing_nodes"] == ["node1", "node2"]
    assert out["errors"] == []


def test_check_document_refuses_other_json():
    with pytest.raises(ValueError, match="did not answer"):
        check_document({"hello": 1}, "http://127.0.0.1:7473/status")
