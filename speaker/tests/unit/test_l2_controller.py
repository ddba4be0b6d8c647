"""The L2 controller without root: who leads each IP, what this node does, and why."""

import ipaddress

import pytest
from lbspeaker import election
from lbspeaker.config import ServiceConfig
from lbspeaker.core.dataplane import HealthCheck
from lbspeaker.decisions.l2 import HANDOVER_GRACE_S, REJOIN_GRACE_S, L2Action, L2Controller
from lbspeaker.decisions.view import Eligibility, MembershipView
from lbspeaker.desired import DesiredServices

V4 = ipaddress.ip_address("198.51.100.100")
V6 = ipaddress.ip_address("2001:db8:1::100")
CHECK = HealthCheck("tcp", host="127.0.0.1", port=80)
NODES = ("node1", "node2", "node3")
BOTH = frozenset({4, 6})


def svc(name, *addresses, policy="Cluster", interfaces=()):
    return ServiceConfig(
        name, tuple(addresses) or (V4,), "l2", policy, CHECK if policy == "Local" else None, tuple(interfaces)
    )


def interfaces_for(service):
    return service.interfaces or ("eth0",)


def controller(node, *services, allowed=None, excluded=None):
    c = L2Controller(node)
    assert c.set_desired(DesiredServices(tuple(services), allowed or {}, excluded or {}), interfaces_for) == ()
    return c


def view(live=NODES, healthy=None, families=None, settled=True):
    healthy = healthy or {}
    return MembershipView(
        settled,
        {n: frozenset(healthy.get(n, ())) for n in live},
        {n: frozenset((families or {}).get(n, BOTH)) for n in live},
    )


def here(node, healthy=(), unserved=None):
    return Eligibility(node, frozenset(healthy), unserved or {})


def carry_out(c, plan):
    for action in plan.actions:
        c.carried_out(action)


def ranked(ip, nodes=NODES):
    return election.rank(nodes, ip)


def test_every_node_agrees_exactly_one_takes_each_ip():
    ips = [ipaddress.ip_address(f"198.51.100.{i}") for i in range(100, 120)]
    services = [svc(f"default/s{i}", ip) for i, ip in enumerate(ips)]
    takers = {ip: [] for ip in ips}
    for node in NODES:
        c = controller(node, *services)
        plan = c.plan(view(), here(node))
        for action in plan.actions:
            assert action.kind == "take"
            takers[action.address].append(node)
        for row in c.rows():
            assert row.leader == ranked(row.address)[0]
            assert row.reason == (
                "elected among 3 eligible nodes (Cluster) [node1, node2, node3]"
                if row.leader == node
                else f"{row.leader} ranks higher"
            )
    assert all(len(nodes) == 1 and nodes[0] == ranked(ip)[0] for ip, nodes in takers.items())
    assert {nodes[0] for nodes in takers.values()} == set(NODES)  # the IPs spread over the nodes


def test_nothing_is_decided_before_membership_settles():
    leader = ranked(V4)[0]
    c = controller(leader, svc("default/web"))
    plan = c.plan(view(live=(leader,), settled=False), here(leader))
    assert plan.actions == () and plan.leader_changes == ()
    (row,) = c.rows()
    assert row.reason == "waiting for membership to settle" and not row.announcing


def test_a_take_is_recorded_only_once_carried_out_and_planned_again_until_then():
    leader = ranked(V4)[0]
    c = controller(leader, svc("default/web"))
    first = c.plan(view(), here(leader))
    assert [a.kind for a in first.actions] == ["take"] and first.actions[0].interfaces == ("eth0",)
    assert not c.rows()[0].announcing
    again = c.plan(view(), here(leader))  # the announcer failed: the next reconcile tries again
    assert [a.kind for a in again.actions] == ["take"]
    carry_out(c, again)
    assert c.rows()[0].announcing and c.announced() == c.rows()
    assert c.plan(view(), here(leader)).actions == ()  # kept: nothing to do


def test_leader_leaving_the_next_one_takes_over_and_counts_one_change():
    first, second, _third = ranked(V4)
    c = controller(second, svc("default/web"))
    assert c.plan(view(), here(second)).actions == ()
    assert c.rows()[0].reason == f"{first} ranks higher"
    plan = c.plan(view(live=[n for n in NODES if n != first]), here(second))
    assert [(a.kind, a.address) for a in plan.actions] == [("take", V4)]
    assert [(ch.old, ch.new) for ch in plan.leader_changes] == [(first, second)]
    assert c.rows()[0].reason == f"elected among 2 eligible nodes (Cluster) [{', '.join(sorted([second, _third]))}]"


def test_returning_leader_released_with_the_handover_drain_when_it_says_ready():
    """Make before break: the covering node keeps the IP while the returning one is
    alive but not ready (membership leaves it out of ``live``), and lets go only
    once it is ready, keeping the route for the handover drain."""
    first, second, third = ranked(V4)
    covering = controller(second, svc("default/web"))
    carry_out(covering, covering.plan(view(live=(second, third)), here(second)))
    assert covering.rows()[0].announcing

    returning = controller(first, svc("default/web"))
    assert returning.plan(view(live=(first,), settled=False), here(first)).actions == ()
    # still not ready in the covering node's view: nothing moves
    assert covering.plan(view(live=(second, third)), here(second)).actions == ()
    plan = returning.plan(view(), here(first))  # settled: it takes first, then may say it is ready
    assert [a.kind for a in plan.actions] == ["take"]
    carry_out(returning, plan)

    handover = covering.plan(view(), here(second))  # its ready heartbeat arrived: not a join
    assert handover.actions == (L2Action("release", V4, ("eth0",), f"{first} ranks higher", HANDOVER_GRACE_S),)
    carry_out(covering, handover)
    assert not covering.rows()[0].announcing


def test_a_join_re_announces_what_this_node_keeps_and_drains_what_it_gives_back_longer():
    """After a heal (a node joined): the node that keeps an IP re-announces it (MetalLB #584);
    the node that gives one back keeps accepting for the rejoin drain."""
    ips = [ipaddress.ip_address(f"198.51.100.{i}") for i in range(100, 110)]
    node = "node1"
    c = controller(node, *(svc(f"default/s{i}", ip) for i, ip in enumerate(ips)))
    alone = view(live=(node,))
    carry_out(c, c.plan(alone, here(node)))
    assert len(c.announced()) == len(ips)

    plan = c.plan(view(), here(node), reannounce=True)
    kinds = {a.address: a for a in plan.actions}
    for ip in ips:
        if ranked(ip)[0] == node:
            assert kinds[ip].kind == "reannounce"
        else:
            assert kinds[ip].kind == "release" and kinds[ip].grace_s == REJOIN_GRACE_S
    assert {a.kind for a in plan.actions} == {"reannounce", "release"}


def test_lost_count_re_announce_only_touches_what_this_node_announces():
    """A peer had declared this node dead: re-announce every IP it leads, nothing else."""
    c = controller("node1", *(svc(f"default/s{i}", ipaddress.ip_address(f"198.51.100.{i}")) for i in range(100, 110)))
    carry_out(c, c.plan(view(), here("node1")))
    led = {a.address for a in c.announced()}
    assert led
    plan = c.plan(view(), here("node1"), reannounce=True)
    assert {a.address for a in plan.actions} == led and {a.kind for a in plan.actions} == {"reannounce"}


def test_local_only_nodes_with_a_healthy_endpoint_are_candidates():
    web = svc("default/web", policy="Local")
    c = controller("node1", web)
    plan = c.plan(view(healthy={"node3": ["default/web"]}), here("node1"))
    assert plan.actions == ()
    assert c.rows()[0].leader == "node3"
    assert c.rows()[0].reason == "not eligible here (no healthy local endpoint); leader is node3"


def test_local_eligibility_lost_releases_and_nobody_eligible_leaves_the_ip_silent():
    web = svc("default/web", policy="Local")
    c = controller("node1", web)
    carry_out(c, c.plan(view(healthy={"node1": ["default/web"]}), here("node1", ["default/web"])))
    assert c.rows()[0].announcing and c.rows()[0].reason == "only node with a serving endpoint (Local)"

    plan = c.plan(view(healthy={"node2": ["default/web"]}), here("node1"))
    assert [(a.kind, a.grace_s) for a in plan.actions] == [("release", HANDOVER_GRACE_S)]
    assert plan.actions[0].reason == "not eligible here (no healthy local endpoint); leader is node2"
    carry_out(c, plan)

    c.plan(view(), here("node1"))
    row = c.rows()[0]
    assert row.leader is None and not row.announcing
    assert row.reason == "no eligible node (no live node has a healthy local endpoint)"


def test_cluster_every_live_node_is_a_candidate_whatever_its_health():
    c = controller("node2", svc("default/web"))
    c.plan(view(live=("node2",)), here("node2"))
    assert c.rows()[0].leader == "node2"


def test_shared_ip_one_row_for_both_services_any_healthy_one_counts():
    tcp, udp = svc("default/dns-tcp", policy="Local"), svc("default/dns-udp", policy="Local")
    c = controller("node2", tcp, udp)
    (row,) = c.rows()
    assert row.services == ("default/dns-tcp", "default/dns-udp")
    plan = c.plan(view(healthy={"node2": ["default/dns-udp"]}), here("node2", ["default/dns-udp"]))
    assert [a.kind for a in plan.actions] == ["take"]


def test_family_guard_no_ipv6_address_here_means_no_ipv6_ip():
    """A node whose link came back without its IPv6 address must not take the IPv6 IP,
    even if it ranks first; it keeps the IPv4 one."""
    web = svc("default/web", V4, V6)
    first6 = ranked(V6)[0]
    c = controller(first6, web)
    families = {first6: {4}}
    plan = c.plan(view(families=families), here(first6, unserved={"eth0": (6,)}))
    assert V6 not in {a.address for a in plan.actions if a.kind == "take"}
    row6 = next(r for r in c.rows() if r.address == V6)
    other = ranked(V6, [n for n in NODES if n != first6])[0]
    assert row6.leader == other
    assert row6.reason == f"cannot serve IPv6 here (no IPv6 address on eth0); leader is {other}"
    # the address returns: a candidate again, takes the IPv6 IP back
    plan = c.plan(view(), here(first6))
    assert ("take", V6) in {(a.kind, a.address) for a in plan.actions}


def test_family_guard_when_no_other_node_can_either():
    c = controller("node1", svc("default/web", V6))
    c.plan(view(live=("node1",), families={"node1": {4}}), here("node1", unserved={"eth0": (6,), "eth1": (6,)}))
    assert c.rows()[0].reason == "cannot serve IPv6 here (no IPv6 address on eth0, eth1); no other node can"
    assert c.rows()[0].leader is None


def test_leader_changes_are_counted_only_once_settled():
    c = controller("node1", svc("default/web"))
    assert c.plan(view(settled=False), here("node1")).leader_changes == ()
    assert c.plan(view(), here("node1")).leader_changes == ()  # the leader was already known
    assert len(c.plan(view(live=("node1",)), here("node1")).leader_changes) == (ranked(V4)[0] != "node1")


def test_new_desired_state_keeps_unchanged_rows_and_withdraws_moved_or_removed_ones():
    web, api = svc("default/web", V4), svc("default/api", V6)
    c = controller("node1", web, api)
    carry_out(c, c.plan(view(live=("node1",)), here("node1")))
    assert len(c.announced()) == 2

    withdrawals = c.set_desired(DesiredServices((web, svc("default/api", V6, interfaces=("eth1",)))), interfaces_for)
    assert withdrawals == (L2Action("withdraw", V6, ("eth0",), "interfaces changed"),)
    assert [(r.address, r.announcing, r.interfaces) for r in c.rows()] == [
        (V4, True, ("eth0",)),
        (V6, False, ("eth1",)),
    ]

    assert c.set_desired(DesiredServices(()), interfaces_for) == (
        L2Action("withdraw", V4, ("eth0",), "no longer configured"),
    )
    assert c.rows() == []


def test_excluded_node_takes_nothing_and_nobody_elects_it():
    """A source may exclude a node (a cluster's NotReady or excluded-from-load-balancers node)."""
    leader = ranked(V4)[0]
    excluded = {leader: "NotReady"}
    me = controller(leader, svc("default/web"), excluded=excluded)
    me.plan(view(), here(leader))
    row = me.rows()[0]
    nxt = ranked(V4, [n for n in NODES if n != leader])[0]
    assert row.leader == nxt and row.reason == f"this node may not announce (NotReady); leader is {nxt}"

    peer = controller(nxt, svc("default/web"), excluded=excluded)
    assert [a.kind for a in peer.plan(view(), here(nxt)).actions] == ["take"]


@pytest.mark.parametrize("policy", ["Local", "Cluster"])
def test_allow_list_restricts_the_candidates(policy):
    allowed = {"default/web": frozenset({"node3"})}
    web = svc("default/web", policy=policy)
    # node1 says it is healthy, but the source allows only node3
    c = controller("node1", web, allowed=allowed)
    healthy = {n: ["default/web"] for n in NODES}
    assert c.plan(view(healthy=healthy), here("node1", ["default/web"])).actions == ()
    why = "no healthy local endpoint" if policy == "Local" else "not among the nodes allowed to announce it"
    assert c.rows()[0].reason == f"not eligible here ({why}); leader is node3"
    c3 = controller("node3", web, allowed=allowed)
    assert [a.kind for a in c3.plan(view(healthy=healthy), here("node3", ["default/web"])).actions] == ["take"]


def test_allow_list_of_shared_ip_is_the_union():
    allowed = {"default/dns-tcp": frozenset({"node2"}), "default/dns-udp": frozenset({"node3"})}
    c = controller("node1", svc("default/dns-tcp"), svc("default/dns-udp"), allowed=allowed)
    c.plan(view(), here("node1"))
    assert c.rows()[0].leader == ranked(V4, ["node2", "node3"])[0]


def test_planning_in_slices_decides_as_the_whole_table_does():
    """The daemon plans a big table in slices, yielding to the loop between them."""
    ips = [ipaddress.ip_address(f"198.51.100.{i}") for i in range(100, 140)]
    services = [svc(f"default/s{i}", ip) for i, ip in enumerate(ips)]
    whole, sliced = controller("node2", *services), controller("node2", *services)
    expected = whole.plan(view(), here("node2")).actions
    got = []
    for start in range(0, len(ips), 7):
        got.extend(sliced.plan(view(), here("node2"), addresses=[*ips[start : start + 7], V6]).actions)
    assert tuple(got) == expected and len(expected) > 0
    assert [(r.leader, r.reason) for r in sliced.rows()] == [(r.leader, r.reason) for r in whole.rows()]


def test_the_leaders_reason_names_the_nodes_it_was_elected_among():
    web = svc("default/web", policy="Local")
    leader = ranked(V4, ("node1", "node3"))[0]
    c = controller(leader, web)
    c.plan(view(healthy={n: ["default/web"] for n in ("node1", "node3")}), here(leader, ["default/web"]))
    assert c.rows()[0].leader == leader
    assert c.rows()[0].reason == "elected among 2 nodes with a serving endpoint (Local) [node1, node3]"
    many = [f"n{i:02d}" for i in range(10)]
    c = controller(ranked(V4, many)[0], svc("default/big"))
    c.plan(view(live=many), here(ranked(V4, many)[0]))
    assert c.rows()[0].reason == "elected among 10 eligible nodes (Cluster) [n00, n01, n02, n03, n04, n05, n06, n07, and 2 more]"
    c = controller("node2", svc("default/one"))
    c.plan(view(live=["node2"]), here("node2"))
    assert c.rows()[0].reason == "only eligible node (Cluster)"
