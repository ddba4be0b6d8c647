import hashlib
import ipaddress

from lbspeaker import election
from lbspeaker.config import ServiceConfig
from lbspeaker.core.dataplane import HealthCheck

IP = ipaddress.ip_address("198.51.100.100")
CHECK = HealthCheck("tcp", host="127.0.0.1", port=80)


def svc(name, policy="Cluster", ip=IP):
    return ServiceConfig(name, (ip,), "l2", policy, CHECK if policy == "Local" else None)


def test_rank_is_metallb_sha256_order():
    nodes = ["node1", "node2", "node3", "node4"]
    expect = sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{IP}".encode()).digest())
    assert election.rank(nodes, IP) == expect
    assert election.rank(reversed(nodes), IP) == expect  # independent of view order


def test_every_view_agrees_and_spreads_ips():
    live = {n: frozenset() for n in ("node1", "node2", "node3")}
    leaders = set()
    for i in range(100, 130):
        ip = ipaddress.ip_address(f"198.51.100.{i}")
        r = election.elect(ip, [svc("a/b", ip=ip)], live)
        assert r.leader == election.rank(live, ip)[0]
        leaders.add(r.leader)
    assert leaders == set(live)


def test_local_only_healthy_nodes_are_candidates():
    s = svc("a/local", "Local")
    live = {"node1": frozenset(), "node2": frozenset({"a/local"}), "node3": frozenset()}
    r = election.elect(IP, [s], live)
    assert r.candidates == ("node2",) and r.leader == "node2"


def test_local_with_no_healthy_node_elects_nobody():
    r = election.elect(IP, [svc("a/local", "Local")], {"node1": frozenset(), "node2": frozenset()})
    assert r.leader is None and r.candidates == ()


def test_shared_ip_any_local_service_healthy_counts():
    services = [svc("a/dns-tcp", "Local"), svc("a/dns-udp", "Local")]
    live = {"node1": frozenset({"a/dns-udp"}), "node2": frozenset(), "node3": frozenset({"a/dns-tcp"})}
    r = election.elect(IP, services, live)
    assert set(r.candidates) == {"node1", "node3"}
    assert r.services == ("a/dns-tcp", "a/dns-udp")


def test_group_by_address_puts_shared_ips_together():
    groups = election.group_by_address([svc("a/x"), svc("a/y"), svc("a/z", ip=ipaddress.ip_address("2001:db8::1"))])
    assert [s.name for s in groups[IP]] == ["a/x", "a/y"]


def test_a_node_that_cannot_serve_the_family_is_not_a_candidate():
    ip6 = ipaddress.ip_address("2001:db8:1::100")
    live = {n: frozenset() for n in ("node1", "node2", "node3")}
    first = election.rank(live, ip6)[0]
    families = {n: frozenset({4, 6}) for n in live}
    families[first] = frozenset({4})  # its link came back without its IPv6 address
    r = election.elect(ip6, [svc("a/b", ip=ip6)], live, families)
    assert r.leader != first and first not in r.candidates
    # IPv4 IPs are unaffected
    ip4 = ipaddress.ip_address("198.51.100.100")
    assert election.elect(ip4, [svc("a/b", ip=ip4)], live, families).candidates == tuple(election.rank(live, ip4))
    # nobody can: no leader
    assert election.elect(ip6, [svc("a/b", ip=ip6)], live, dict.fromkeys(live, frozenset({4}))).leader is None
