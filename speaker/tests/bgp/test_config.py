"""Config parsing and the advertisement policy."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from lbspeaker.bgp.__main__ import load
from lbspeaker.bgp.codec import RouteAttributes
from lbspeaker.bgp.config import parse_bgp_config
from lbspeaker.bgp.manager import Announcement, routes_for_peer
from lbspeaker.errors import ConfigError


def base(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "asn": 64501,
        "router_id": "198.51.100.11",
        "peers": [{"address": "198.51.100.1", "asn": 64500, "name": "r1"},
                  {"address": "2001:db8:1::1", "asn": 64501}],
    }
    data.update(over)
    return data


def test_defaults() -> None:
    cfg = parse_bgp_config(base())
    p = cfg.peers[0]
    assert (p.port, p.hold_time, p.keepalive_time, p.passive, p.bfd.enabled) == (179, 90, 30, False, False)
    assert cfg.advertisements[0].aggregation_length == 32


def test_full_peer() -> None:
    cfg = parse_bgp_config(base(peers=[{
        "address": "198.51.100.1", "asn": "64000.1", "password": "s3cret", "multihop": True, "ttl": 5,
        "source_address": "198.51.100.11", "passive": True, "hold_time": 9, "keepalive_time": 3,
        "graceful_restart": True, "restart_time": 30, "next_hop_ipv6": "2001:db8:1::11",
        "bfd": {"min_rx_ms": 100, "min_tx_ms": 100, "multiplier": 3},
    }]))
    p = cfg.peers[0]
    assert p.asn == (64000 << 16) + 1
    assert p.bfd.enabled and p.bfd.min_rx_ms == 100
    assert p.next_hop_ipv6 == ipaddress.IPv6Address("2001:db8:1::11")


@pytest.mark.parametrize(("data", "field"), [
    ({"router_id": "198.51.100.11"}, "bgp.asn"),
    (base(asn=0), "bgp.asn"),
    (base(router_id="2001:db8::1"), "bgp.router_id"),
    (base(peers=[{"address": "nope", "asn": 1}]), "bgp.peers[0].address"),
    (base(peers=[{"address": "198.51.100.1"}]), "bgp.peers[0].asn"),
    (base(peers=[{"address": "198.51.100.1", "asn": 1, "hold_time": 2}]), "bgp.peers[0].hold_time"),
    (base(peers=[{"address": "198.51.100.1", "asn": 1, "bfd": {"multiplier": 0}}]),
     "bgp.peers[0].bfd.multiplier"),
    (base(peers=[{"address": "198.51.100.1", "asn": 1, "password": "x" * 81}]), "bgp.peers[0].password"),
    (base(peers=[{"address": "198.51.100.1", "asn": 1, "colour": "red"}]), "bgp.peers[0].colour"),
    (base(peers=[{"address": "198.51.100.1", "asn": 1}, {"address": "198.51.100.1", "asn": 2}]), "bgp.peers[1]"),
    # one address however written, and a name that is another peer's address: site.yml's check's rule
    (base(peers=[{"address": "2001:db8:1::1", "asn": 1}, {"address": "2001:DB8:1:0::1", "asn": 2}]), "bgp.peers[1]"),
    (base(peers=[{"address": "198.51.100.1", "asn": 1}, {"name": "198.51.100.1", "address": "198.51.100.2", "asn": 1}]),
     "bgp.peers[1]"),
    (base(advertisements=[{"communities": ["64500:100", "70000:1"]}]), "bgp.advertisements[0].communities[1]"),
    (base(advertisements=[{"large_communities": ["1:2"]}]), "bgp.advertisements[0].large_communities[0]"),
    (base(advertisements=[{"aggregation_length": 33}]), "bgp.advertisements[0].aggregation_length"),
    (base(advertisements=[{"peers": ["r9"]}]), "bgp.advertisements[0].peers[0]"),
    (base(advertisements=[{"addresses": ["x"]}]), "bgp.advertisements[0].addresses[0]"),
])
def test_errors_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_bgp_config(data)
    assert err.value.field == field


def test_password_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        parse_bgp_config(base(peers=[{"address": "198.51.100.1", "asn": 1, "password": "topsecret" * 10}]))
    assert "topsecret" not in str(err.value)


def test_policy_selects_peers_services_and_attributes() -> None:
    cfg = parse_bgp_config(base(advertisements=[
        {"services": ["web"], "peers": ["r1"], "communities": ["64500:100", "no-export"], "local_pref": 200},
        {"addresses": ["203.0.113.0/28"], "large_communities": ["64500:1:2"], "aggregation_length": 28},
        {"addresses": ["2001:db8:ff::/112"], "aggregation_length_v6": 120, "local_pref": 300},
    ]))
    anns = [Announcement("web", ipaddress.ip_address("203.0.113.20")),
            Announcement("db", ipaddress.ip_address("203.0.113.5")),
            Announcement("db6", ipaddress.ip_address("2001:db8:ff::5")),
            Announcement("local", ipaddress.ip_address("203.0.113.6"), "Local")]
    r1, ibgp6 = cfg.peers
    routes = routes_for_peer(cfg, r1, anns)
    net = ipaddress.ip_network
    # eBGP: no local-pref; web only to r1 with its communities.
    assert routes[net("203.0.113.20/32")] == RouteAttributes((0xFBF40064, 0xFFFFFF01), (), None)
    assert routes[net("203.0.113.0/28")] == RouteAttributes((), ((64500, 1, 2),), None)
    # Local never aggregates: its own host route.
    assert net("203.0.113.6/32") in routes
    assert routes[net("2001:db8:ff::/120")] == RouteAttributes()
    other = routes_for_peer(cfg, ibgp6, anns)
    assert net("203.0.113.20/32") not in other  # web is for r1 only
    assert other[net("2001:db8:ff::/120")].local_pref == 300


def test_policy_merges_overlapping_advertisements() -> None:
    cfg = parse_bgp_config(base(peers=[{"address": "198.51.100.1", "asn": 64501}], advertisements=[
        {"communities": ["1:1"], "local_pref": 100}, {"services": ["a"], "communities": ["2:2"], "local_pref": 150}]))
    routes = routes_for_peer(cfg, cfg.peers[0], [Announcement("a", ipaddress.ip_address("203.0.113.1"))])
    assert routes == {ipaddress.ip_network("203.0.113.1/32"): RouteAttributes((0x10001, 0x20002), (), 150)}


def test_family_not_enabled_for_peer_is_skipped() -> None:
    cfg = parse_bgp_config(base(peers=[{"address": "198.51.100.1", "asn": 64500, "address_families": ["ipv4"]}]))
    routes = routes_for_peer(cfg, cfg.peers[0], [Announcement("a", ipaddress.ip_address("2001:db8:ff::1"))])
    assert routes == {}


def test_entry_point_announcements(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.yaml"
    good.write_text("bgp: {asn: 64501, router_id: 198.51.100.11}\nannouncements:\n"
                    "  - {service: a, address: 203.0.113.1}\n"
                    "  - {service: b, addresses: ['2001:db8:ff::1', 203.0.113.2], policy: Local}\n")
    _bgp, anns = load(good)
    assert [(a.service, str(a.address), a.policy) for a in anns] == [
        ("a", "203.0.113.1", "Cluster"), ("b", "2001:db8:ff::1", "Local"), ("b", "203.0.113.2", "Local")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("bgp: {asn: 64501, router_id: 198.51.100.11}\nannouncements:\n"
                   "  - {service: b, addresses: [203.0.113.300]}\n")
    with pytest.raises(ConfigError) as err:
        load(bad)
    assert err.value.field == "announcements[0].addresses"


def test_announcement_accepts_text_and_checks_policy() -> None:
    assert Announcement("a", "203.0.113.1").address == ipaddress.ip_address("203.0.113.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="policy"):
        Announcement("a", ipaddress.ip_address("203.0.113.1"), "Sometimes")


def test_a_peer_named_by_its_address_however_written_is_that_peer() -> None:
    """The collection's check (core announcements.peer_keys) takes an address as written;
    the speaker must take it too and match the session on it, not refuse the config."""
    cfg = parse_bgp_config(base(
        peers=[{"address": "2001:DB8:1::1", "asn": 64501}, {"address": "198.51.100.1", "asn": 64500, "name": "r1"}],
        advertisements=[{"services": ["web6"], "peers": ["2001:DB8:1::1"]}]))
    assert cfg.advertisements[0].peers == ("2001:db8:1::1",)
    ibgp6, r1 = cfg.peers
    anns = [Announcement("web6", ipaddress.ip_address("2001:db8:ff::5"))]
    assert ipaddress.ip_network("2001:db8:ff::5/128") in routes_for_peer(cfg, ibgp6, anns)
    assert not routes_for_peer(cfg, r1, anns)
