"""Ruleset rendering and backend config parsing, without a kernel."""

import ipaddress

import pytest
from lbspeaker.backends import ForwardedService, local_eligible
from lbspeaker.config import forwarded_ports as parse_ports
from lbspeaker.core.dataplane import parse_backends
from lbspeaker.errors import ConfigError
from lbspeaker.forwarding import TABLE, forwarding_status, removal_script, render_ruleset

RAW_BACKENDS = [
    {"node": "n1", "address": "203.0.113.201", "port": 8080},
    {"node": "n2", "address": "203.0.113.202", "port": 8080},
    {"node": "n3", "address": "2001:db8:f0::203", "port": 8081, "health_check": {"type": "tcp", "interval_ms": 200}},
]
VIP4 = ipaddress.ip_address("203.0.113.250")
VIP6 = ipaddress.ip_address("2001:db8:f0:ff::1")


def service(policy="Cluster", backends=None, ports=(80,)):
    parsed = parse_backends(backends or RAW_BACKENDS, "services[0].backends")
    return ForwardedService("default/web", (VIP4, VIP6), parse_ports(list(ports), "services[0].ports"), policy, parsed)


def rules(script, chain):
    body = script.split(f"chain {chain} {{", 1)[1].split("}\n", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("type ")]


def test_script_replaces_only_its_own_table():
    script = render_ruleset("n1", [service()], set(service().backends))
    lines = script.splitlines()
    assert lines[1:3] == [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}"]
    tables = [line for line in lines if line.startswith(("table", "delete", "flush", "add"))]
    assert all(f"inet {TABLE}" in line for line in tables)
    assert "flush ruleset" not in script
    assert removal_script() == f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"


def test_cluster_spreads_over_all_healthy_backends_and_masquerades():
    svc = service()
    script = render_ruleset("n1", [svc], set(svc.backends))
    dnat = rules(script, "services")
    assert dnat[0] == (
        "ip daddr 203.0.113.250 tcp dport 80 dnat ip to numgen inc mod 2 map "
        '{ 0 : 203.0.113.201 . 8080, 1 : 203.0.113.202 . 8080 } comment "default/web"'
    )
    assert dnat[1] == (
        'ip6 daddr 2001:db8:f0:ff::1 tcp dport 80 dnat ip6 to [2001:db8:f0::203]:8081 comment "default/web"'
    )
    masq = rules(script, "postrouting")
    assert len(masq) == 2
    assert all("masquerade" in r for r in masq)
    assert "ct original ip daddr 203.0.113.250 ct original proto-dst 80" in masq[0]
    # n1's own backend is delivered locally: SNAT to its own address in the input hook (IPv4 only here).
    assert rules(script, "input") == [
        "meta l4proto tcp ct status dnat ct original ip daddr 203.0.113.250 ct original proto-dst 80 "
        'snat ip to ip daddr comment "default/web"'
    ]


def test_local_uses_only_this_nodes_backends_without_snat():
    svc = service("Local")
    script = render_ruleset("n2", [svc], set(svc.backends))
    dnat = rules(script, "services")
    assert dnat[0].startswith("ip daddr 203.0.113.250 tcp dport 80 dnat ip to 203.0.113.202:8080")
    assert dnat[1].startswith("#")  # no IPv6 backend on n2: no rule, a comment says why
    assert rules(script, "postrouting") == []
    assert rules(script, "input") == []


def test_unhealthy_backends_leave_the_map():
    svc = service()
    healthy = {svc.backends[1]}
    dnat = rules(render_ruleset("n1", [svc], healthy), "services")
    assert "203.0.113.201" not in dnat[0]
    assert "dnat ip to 203.0.113.202:8080" in dnat[0]
    nothing = rules(render_ruleset("n1", [svc], set()), "services")
    assert all(line.startswith("#") for line in nothing)


def test_udp_and_several_ports():
    svc = service(ports=(80, {"port": 53, "protocol": "udp"}))
    dnat = rules(render_ruleset("n1", [svc], set(svc.backends)), "services")
    assert any(r.startswith("ip daddr 203.0.113.250 udp dport 53 dnat") for r in dnat)
    assert len([r for r in dnat if not r.startswith("#")]) == 4


def test_rendering_is_deterministic():
    svc = service()
    assert render_ruleset("n1", [svc], set(svc.backends)) == render_ruleset("n1", [svc], frozenset(svc.backends))


def test_eligibility_and_status():
    svc = service("Local")
    healthy = {svc.backends[1]}
    assert not local_eligible(svc, "n1", healthy)
    assert local_eligible(svc, "n2", healthy)
    assert local_eligible(service("Cluster"), "n1", healthy)
    status = forwarding_status("n2", [svc], healthy)
    assert len(status) == 1
    entry = status[0]
    assert entry["service"] == "default/web"
    assert entry["eligible"] is True
    assert entry["backends"] == [
        {"node": "n1", "address": "203.0.113.201:8080", "healthy": False, "forwarded": False},
        {"node": "n2", "address": "203.0.113.202:8080", "healthy": True, "forwarded": True},
        {"node": "n3", "address": "[2001:db8:f0::203]:8081", "healthy": False, "forwarded": False},
    ]


def test_backend_health_check_defaults_to_the_backend():
    backends = parse_backends(RAW_BACKENDS, "services[0].backends")
    assert (backends[0].health_check.type, backends[0].health_check.host, backends[0].health_check.port) == (
        "tcp", "203.0.113.201", 8080)
    assert backends[2].health_check.host == "2001:db8:f0::203"
    assert backends[2].health_check.port == 8081
    assert backends[2].health_check.interval_ms == 200


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ("nope", "services[2].backends", "nope"),
        ([{"node": "n1", "address": "203.0.113.1", "port": 0}], "services[2].backends[0].port", 0),
        ([{"node": "n1", "address": "203.0.113.1", "port": 80}, {"node": "n1", "address": "x", "port": 80}],
         "services[2].backends[1].address", "x"),
        ([{"address": "203.0.113.1", "port": 80}], "services[2].backends[0].node", None),
        ([{"node": "n9", "address": "203.0.113.1", "port": 80}], "services[2].backends[0].node", "n9"),
        ([{"node": "n1", "address": "203.0.113.1", "port": 80, "weight": 2}], "services[2].backends[0].weight", 2),
        ([{"node": "n1", "address": "203.0.113.1", "port": 80, "health_check": {"type": "icmp"}}],
         "services[2].backends[0].health_check.type", "icmp"),
    ],
)
def test_backend_errors_name_the_field(raw, field, value):
    with pytest.raises(ConfigError) as err:
        parse_backends(raw, "services[2].backends", known_nodes={"n1", "n2"})
    assert err.value.field == field
    assert err.value.value == value


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "services[0].ports"),
        ([80, 70000], "services[0].ports[1]"),
        ([{"port": 53, "protocol": "sctp"}], "services[0].ports[0].protocol"),
        ([80, 80], "services[0].ports[1]"),
    ],
)
def test_port_errors_name_the_field(raw, field):
    with pytest.raises(ConfigError) as err:
        parse_ports(raw, "services[0].ports")
    assert err.value.field == field
