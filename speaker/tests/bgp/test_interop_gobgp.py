"""Interop with GoBGP 3: routes and attributes in its RIB (GoBGP installs no FIB), 4-byte ASN, withdraw."""

from __future__ import annotations

from typing import Any

import pytest

from .bgplab import ROUTER_ASN, ROUTER_V4, Gobgp, Lab, node_v4, node_v6, wait_for
from .helpers import need

V4 = "203.0.113.10/32"
V6 = "2001:db8:ff::10/128"
FOUR_BYTE_ASN = 4200000001


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("gobgpd", "gobgp")


def toml(peer_as: int) -> str:
    return f"""
[global.config]
  as = {ROUTER_ASN}
  router-id = "{ROUTER_V4}"
[[peer-groups]]
  [peer-groups.config]
    peer-group-name = "nodes"
    peer-as = {peer_as}
  [peer-groups.transport.config]
    passive-mode = true
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
[[dynamic-neighbors]]
  [dynamic-neighbors.config]
    prefix = "198.51.100.0/24"
    peer-group = "nodes"
"""


def attrs_of(rib: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    paths = rib.get(prefix) or []
    return {a["type"]: a for a in paths[0]["attrs"]} if paths else {}


def test_routes_attributes_four_byte_asn_and_withdraw(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    gobgp = Gobgp(lab, toml(FOUR_BYTE_ASN))
    gobgp.start()
    # The router announces routes of its own to the speaker: accepted and ignored.
    gobgp.cli("global", "rib", "add", "198.51.100.128/26", "-a", "ipv4")
    gobgp.cli("global", "rib", "add", "2001:db8:2::/64", "-a", "ipv6")
    bgp = {"asn": FOUR_BYTE_ASN, "router_id": node_v4(1),
           "peers": [{"address": ROUTER_V4, "asn": ROUTER_ASN, "next_hop_ipv6": node_v6(1),
                      "connect_retry_time": 0.5, "connect_retry_max": 2, "graceful_restart": True}],
           "advertisements": [{"communities": ["64500:100"], "large_communities": ["64500:1:2"]}]}
    sp = lab.start_speaker(1, bgp, [{"service": "web", "address": "203.0.113.10"},
                                    {"service": "web", "address": "2001:db8:ff::10"}])
    wait_for(lambda: gobgp.established(node_v4(1)), 30, what="session with GoBGP")
    a4 = wait_for(lambda: attrs_of(gobgp.rib("ipv4"), V4), 15, what="IPv4 route in GoBGP")
    a6 = wait_for(lambda: attrs_of(gobgp.rib("ipv6"), V6), 15, what="IPv6 route in GoBGP")
    assert a4[3]["nexthop"] == node_v4(1)
    assert a6[14]["nexthop"] == node_v6(1)
    for attrs in (a4, a6):
        assert attrs[2]["as_paths"][0]["asns"] == [FOUR_BYTE_ASN]
        assert attrs[8]["communities"] == [(64500 << 16) | 100]
        assert attrs[32]["value"] == [{"ASN": 64500, "LocalData1": 1, "LocalData2": 2}]
    peer = wait_for(lambda: (p := sp.status()["bgp"]["peers"][0])["prefixes_received"] >= 2 and p, 15,
                    what="the router's own routes received")
    assert peer["state"] == "Established" and peer["last_error"] == ""
    assert sp.stop() == 0
    wait_for(lambda: not gobgp.rib("ipv4").get(V4) and not gobgp.rib("ipv6").get(V6), 15, what="withdrawn")


def test_md5_right_and_wrong_password(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    neighbors = "".join(f"""
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{node_v4(i)}"
    peer-as = 64501
    auth-password = "pw-{i}"
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
""" for i in (1, 2))
    gobgp = Gobgp(lab, f"""
[global.config]
  as = {ROUTER_ASN}
  router-id = "{ROUTER_V4}"
{neighbors}""")
    gobgp.start()

    def bgp(i: int, password: str) -> dict[str, Any]:
        return {"asn": 64501, "router_id": node_v4(i),
                "peers": [{"address": ROUTER_V4, "asn": ROUTER_ASN, "password": password,
                           "address_families": ["ipv4"], "connect_retry_time": 0.5, "connect_retry_max": 2}]}

    lab.start_speaker(1, bgp(1, "pw-1"), [{"service": "web", "address": "203.0.113.10"}])
    sp2 = lab.start_speaker(2, bgp(2, "pw-wrong"), [{"service": "x", "address": "203.0.113.20"}])
    wait_for(lambda: gobgp.established(node_v4(1)), 30, what="MD5 session with the right password")
    wait_for(lambda: attrs_of(gobgp.rib("ipv4"), V4), 15, what="route over MD5")
    wait_for(lambda: sp2.status()["bgp"]["peers"][0]["last_error"], 30, what="a connect error on node 2")
    assert not gobgp.established(node_v4(2))
    assert not gobgp.rib("ipv4").get("203.0.113.20/32")
