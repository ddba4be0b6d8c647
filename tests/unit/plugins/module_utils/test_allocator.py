"""Every allocator rule, as ordered step sequences (the way MetalLB tests its allocator)."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.allocator import Allocator
from ansible_collections.baremetal.lb.plugins.module_utils.errors import AllocationError
from ansible_collections.baremetal.lb.plugins.module_utils.pools import parse_pool
from ansible_collections.baremetal.lb.plugins.module_utils.service import parse_service
from ansible_collections.baremetal.lb.tests.unit.plugins.module_utils.steps import Step, svc

V4 = {"name": "v4", "addresses": ["198.51.100.10-198.51.100.12"]}
DUAL = {"name": "dual", "addresses": ["198.51.100.20/31", "2001:db8:1::20-2001:db8:1::21"]}


def test_automatic_lowest_free_first_and_reuse_after_release(run_steps):
    run_steps(
        [V4],
        [
            Step("first service gets the lowest", svc("a"), ["198.51.100.10"]),
            Step("second gets the next", svc("b"), ["198.51.100.11"]),
            Step("third gets the last", svc("c"), ["198.51.100.12"]),
            Step("pool exhausted", svc("d"), error=r"pool 'v4' has no free IPv4 address"),
            Step("release a", release="default/a"),
            Step("d now gets the freed lowest", svc("d"), ["198.51.100.10"]),
            Step("same spec again keeps its address", svc("b"), ["198.51.100.11"]),
        ],
    )


def test_ranges_are_tried_in_declared_order(run_steps):
    pool = {"name": "p", "addresses": ["198.51.100.40-198.51.100.40", "198.51.100.8/31"]}
    run_steps(
        [pool],
        [
            Step("declared first range first", svc("a"), ["198.51.100.40"]),
            Step("then the CIDR, network address included", svc("b"), ["198.51.100.8"]),
            Step("and its broadcast address", svc("c"), ["198.51.100.9"]),
        ],
    )


def test_avoid_buggy_ips_skips_dot_zero_and_dot_255(run_steps):
    pool = {"name": "p", "addresses": ["198.51.100.255-198.51.101.1"], "avoid_buggy_ips": True}
    run_steps(
        [pool],
        [
            Step("skips .255 and .0", svc("a"), ["198.51.101.1"]),
            Step("nothing else usable", svc("b"), error="no free IPv4"),
            Step(
                "requesting .0 is refused",
                svc("c", load_balancer_ips=["198.51.101.0"]),
                error=r"ends in \.0 or \.255",
            ),
        ],
    )


def test_requested_addresses(run_steps):
    other = {"name": "other", "addresses": ["203.0.113.0/30"]}
    run_steps(
        [V4, DUAL, other],
        [
            Step("a requested address in a pool", svc("a", load_balancer_ips=["198.51.100.12"]), ["198.51.100.12"]),
            Step("the next automatic one skips nothing below", svc("b"), ["198.51.100.10"]),
            Step(
                "taken without sharing key",
                svc("c", load_balancer_ips=["198.51.100.12"]),
                error="held by default/a, which has no sharing_key",
            ),
            Step(
                "outside every pool",
                svc("c", load_balancer_ips=["198.51.100.99"]),
                error="198.51.100.99 is not in any address pool",
            ),
            Step(
                "two addresses from two pools",
                svc("c", load_balancer_ips=["198.51.100.11", "2001:db8:1::20"], ip_family_policy="RequireDualStack"),
                error="must come from one pool",
            ),
            Step(
                "address and pool disagree",
                svc("c", load_balancer_ips=["203.0.113.1"], address_pool="v4"),
                error="is in pool 'other', not in 'v4'",
            ),
            Step(
                "dual-stack request from one pool",
                svc("c", load_balancer_ips=["2001:db8:1::21", "198.51.100.21"], ip_family_policy="RequireDualStack"),
                ["2001:db8:1::21", "198.51.100.21"],
                pool="dual",
            ),
            Step(
                "a failed change keeps the old addresses",
                svc("c", load_balancer_ips=["198.51.100.10"]),
                error="held by default/b",
            ),
            Step("release c", release="default/c"),
            Step("its addresses are free again", svc("d", address_pool="dual"), ["198.51.100.20"]),
        ],
    )


def test_requested_pool_ignores_auto_assign_and_unknown_pool_fails(run_steps):
    manual = {"name": "manual", "addresses": ["203.0.113.8/30"], "auto_assign": False}
    run_steps(
        [manual, V4],
        [
            Step("automatic skips the manual pool", svc("a"), ["198.51.100.10"], pool="v4"),
            Step("requesting it works", svc("b", address_pool="manual"), ["203.0.113.8"], pool="manual"),
            Step("an unknown pool fails", svc("c", address_pool="nope"), error="'nope' does not exist"),
            Step(
                "a pool without the family fails",
                svc("c", address_pool="manual", ip_families=["IPv6"]),
                error="has no IPv6 addresses",
            ),
        ],
    )


def test_automatic_order_priority_then_definition_order(run_steps):
    plain1 = {"name": "plain1", "addresses": ["198.51.100.1-198.51.100.1"]}
    plain2 = {"name": "plain2", "addresses": ["198.51.100.2-198.51.100.2"]}
    prio0 = {
        "name": "prio0",
        "addresses": ["198.51.100.30-198.51.100.30"],
        "service_allocation": {"namespaces": ["web"]},
    }
    prio5 = {
        "name": "prio5",
        "addresses": ["198.51.100.50-198.51.100.50"],
        "service_allocation": {"priority": 5, "namespaces": ["web"]},
    }
    prio1 = {
        "name": "prio1",
        "addresses": ["198.51.100.60-198.51.100.60"],
        "service_allocation": {"priority": 1, "service_selectors": [{"match_labels": {"tier": "front"}}]},
    }
    run_steps(
        [plain1, prio0, plain2, prio5, prio1],
        [
            Step("no pinned pool matches: first plain pool", svc("a", namespace="db"), ["198.51.100.1"]),
            Step("then the next plain pool", svc("b", namespace="db"), ["198.51.100.2"]),
            Step(
                "a label match with priority 1 first",
                svc("c", namespace="web", labels={"tier": "front"}),
                ["198.51.100.60"],
            ),
            Step("then priority 5", svc("d", namespace="web"), ["198.51.100.50"]),
            Step("then priority 0 (unset) last among pinned", svc("e", namespace="web"), ["198.51.100.30"]),
            Step("pinned pools never serve others", svc("f", namespace="db"), error="serves only namespaces web"),
        ],
    )


def test_service_allocation_holds_for_requested_addresses_and_pools(run_steps):
    restricted = {
        "name": "r",
        "addresses": ["203.0.113.0/30"],
        "service_allocation": {"namespaces": ["prod"]},
    }
    run_steps(
        [restricted, V4],
        [
            Step("requested address refused", svc("a", load_balancer_ips=["203.0.113.1"]), error="serves only"),
            Step("requested pool refused", svc("a", address_pool="r"), error="serves only namespaces prod"),
            Step("the right namespace may", svc("a", namespace="prod", address_pool="r"), ["203.0.113.0"]),
        ],
    )


def test_sharing_rules_in_order(run_steps):
    run_steps(
        [V4],
        [
            Step("dns over TCP", svc("dns-t", ports=[{"port": 53}], sharing_key="dns"), ["198.51.100.10"]),
            Step(
                "dns over UDP shares (TCP/53 + UDP/53)",
                svc("dns-u", ports=[{"port": 53, "protocol": "UDP"}], sharing_key="dns"),
                ["198.51.100.10"],
            ),
            Step(
                "same key but an overlapping port: the next address",
                svc("dns2", ports=[{"port": 53}], sharing_key="dns"),
                ["198.51.100.11"],
            ),
            Step(
                "requested and overlapping",
                svc(
                    "dns3",
                    ports=[{"port": 53, "protocol": "UDP"}],
                    sharing_key="dns",
                    load_balancer_ips=["198.51.100.10"],
                ),
                error="already uses UDP/53",
            ),
            Step(
                "a different key",
                svc("x", ports=[{"port": 80}], sharing_key="web", load_balancer_ips=["198.51.100.10"]),
                error="sharing_key 'dns', not 'web'",
            ),
            Step(
                "no key",
                svc("y", ports=[{"port": 80}], load_balancer_ips=["198.51.100.10"]),
                error="this service has no sharing_key",
            ),
            Step(
                "Local backends differ from Cluster",
                svc(
                    "z",
                    ports=[{"port": 80}],
                    sharing_key="dns",
                    external_traffic_policy="Local",
                    selector={"app": "dns"},
                    load_balancer_ips=["198.51.100.10"],
                ),
                error="backends differ",
            ),
        ],
    )


def test_local_services_share_only_with_identical_selectors(run_steps):
    local = {"external_traffic_policy": "Local", "sharing_key": "k"}
    run_steps(
        [V4],
        [
            Step("first", svc("a", ports=[{"port": 80}], selector={"app": "x"}, **local), ["198.51.100.10"]),
            Step(
                "same selector shares",
                svc("b", ports=[{"port": 81}], selector={"app": "x"}, **local),
                ["198.51.100.10"],
            ),
            Step(
                "another selector: next address",
                svc("c", ports=[{"port": 82}], selector={"app": "y"}, **local),
                ["198.51.100.11"],
            ),
        ],
    )


def test_local_without_selector_does_not_share_with_cluster(run_steps):
    run_steps(
        [V4],
        [
            Step("cluster", svc("a", ports=[{"port": 80}], sharing_key="k"), ["198.51.100.10"]),
            Step(
                "Local, endpoints managed by hand",
                svc("b", ports=[{"port": 81}], sharing_key="k", external_traffic_policy="Local"),
                ["198.51.100.11"],
            ),
        ],
    )


def test_changing_key_or_ports_in_place_when_alone(run_steps):
    run_steps(
        [V4],
        [
            Step("alone with key a", svc("s", ports=[{"port": 80}], sharing_key="a"), ["198.51.100.10"]),
            Step("changes its key in place", svc("s", ports=[{"port": 80}], sharing_key="b"), ["198.51.100.10"]),
            Step("changes its ports in place", svc("s", ports=[{"port": 443}], sharing_key="b"), ["198.51.100.10"]),
            Step("drops its key in place", svc("s", ports=[{"port": 443}]), ["198.51.100.10"]),
            Step("re-adds a key", svc("s", ports=[{"port": 443}], sharing_key="b"), ["198.51.100.10"]),
            Step("a partner joins", svc("t", ports=[{"port": 80}], sharing_key="b"), ["198.51.100.10"]),
            Step(
                "now shared: a port clash moves s to the next address",
                svc("s", ports=[{"port": 80}], sharing_key="b"),
                ["198.51.100.11"],
            ),
            Step(
                "a requested shared address cannot change key",
                svc("t", ports=[{"port": 80}], sharing_key="c", load_balancer_ips=["198.51.100.11"]),
                error="sharing_key 'b', not 'c'",
            ),
        ],
    )


def test_dual_stack_policies(run_steps):
    v4only = {"name": "v4only", "addresses": ["198.51.100.10/32"]}
    run_steps(
        [v4only, DUAL],
        [
            Step(
                "RequireDualStack skips a pool without IPv6",
                svc("a", ip_family_policy="RequireDualStack"),
                ["198.51.100.20", "2001:db8:1::20"],
                pool="dual",
            ),
            Step(
                "PreferDualStack takes what the first pool has",
                svc("b", ip_family_policy="PreferDualStack"),
                ["198.51.100.10"],
                pool="v4only",
            ),
            Step(
                "IPv6 primary",
                svc("c", ip_families=["IPv6", "IPv4"], ip_family_policy="RequireDualStack"),
                ["2001:db8:1::21", "198.51.100.21"],
            ),
            Step(
                "RequireDualStack with IPv6 exhausted fails",
                svc("d", ip_family_policy="RequireDualStack"),
                error="no address pool can give IPv4 and IPv6",
            ),
            Step("SingleStack IPv6 also exhausted", svc("e", ip_families=["IPv6"]), error="has no free IPv6"),
            Step("release c", release="default/c"),
            Step(
                "PreferDualStack stays in its pool and gains nothing there",
                svc("b", ip_family_policy="PreferDualStack"),
                ["198.51.100.10"],
                pool="v4only",
            ),
            Step(
                "a pool gives at most one address per family",
                svc("f", ip_family_policy="PreferDualStack", address_pool="dual"),
                ["198.51.100.21", "2001:db8:1::21"],
            ),
        ],
    )


def test_a_service_stays_in_its_pool_when_a_better_one_frees_up(run_steps):
    first = {"name": "first", "addresses": ["198.51.100.1/32"]}
    second = {"name": "second", "addresses": ["198.51.100.2/32"]}
    run_steps(
        [first, second],
        [
            Step("a fills the first pool", svc("a"), ["198.51.100.1"], pool="first"),
            Step("b goes to the second", svc("b"), ["198.51.100.2"], pool="second"),
            Step("release a", release="default/a"),
            Step(
                "b keeps its address on the next run", svc("b", ports=[{"port": 80}]), ["198.51.100.2"], pool="second"
            ),
        ],
    )


def test_error_lists_why_each_pool_refused(run_steps):
    full = {"name": "full", "addresses": ["198.51.100.1/32"]}
    manual = {"name": "manual", "addresses": ["198.51.100.2/32"], "auto_assign": False}
    pinned = {"name": "pinned", "addresses": ["198.51.100.3/32"], "service_allocation": {"namespaces": ["x"]}}
    run_steps(
        [full, manual, pinned],
        [
            Step("fill", svc("a"), ["198.51.100.1"]),
            Step(
                "every refusal explained",
                svc("b"),
                error=r"pool 'full' has no free IPv4.*pool 'manual' has auto_assign off.*pool 'pinned' serves only",
            ),
        ],
    )


@pytest.mark.parametrize(
    "requested",
    [["198.51.100.10"], ["2001:db8:1::20"]],
)
def test_requested_single_addresses_of_either_family(run_steps, requested):
    run_steps(
        [V4, DUAL],
        [Step("request", svc("a", load_balancer_ips=requested), requested)],
    )


@pytest.mark.parametrize("pools,service,reason", [
    ([V4], svc("x", address_pool="nope"), "no_pool"),
    ([], svc("x"), "no_pool"),
    ([{**V4, "auto_assign": False}], svc("x"), "not_allowed"),
    ([V4], svc("x", load_balancer_ips=["203.0.113.1"]), "not_allowed"),
    ([V4], svc("x", ip_families=["IPv6"]), "not_allowed"),
])
def test_allocation_failure_reason_names_the_rule(pools, service, reason):
    """The reason the controller counts failures by (lbcontroller_allocation_failures_total)."""
    allocator = Allocator([parse_pool(p) for p in pools])
    with pytest.raises(AllocationError) as refused:
        allocator.assign(parse_service(service))
    assert refused.value.reason == reason, str(refused.value)


def test_allocation_failure_reason_exhausted_and_sharing():
    allocator = Allocator([parse_pool({"name": "one", "addresses": ["198.51.100.10/32"]})])
    allocator.assign(parse_service(svc("a", ports=[{"port": 80}])))
    for service, reason in (
        (svc("b"), "pool_exhausted"),
        (svc("b", address_pool="one"), "pool_exhausted"),
        (svc("b", load_balancer_ips=["198.51.100.10"], ports=[{"port": 80}]), "sharing_conflict"),
    ):
        with pytest.raises(AllocationError) as refused:
            allocator.assign(parse_service(service))
        assert refused.value.reason == reason, (service, str(refused.value))
        # only a sharing conflict has a holder: the service that keeps the address
        assert refused.value.holder == ("default/a" if reason == "sharing_conflict" else None)


def test_an_unknown_failure_reason_is_refused():
    with pytest.raises(ValueError, match="'full'"):
        raise AllocationError("pool is full", "full")


def test_usage_counts_distinct_held_addresses_per_pool_and_family():
    allocator = Allocator([parse_pool(DUAL), parse_pool(V4)])
    allocator.assign(parse_service(svc("a", ip_family_policy="RequireDualStack", ip_families=["IPv4", "IPv6"])))
    shared = {"sharing_key": "k", "address_pool": "v4"}
    allocator.assign(parse_service(svc("b", ports=[{"port": 80}], **shared)))
    allocator.assign(parse_service(svc("c", ports=[{"port": 81}], **shared)))  # the same address: counted once
    usage = {(u.pool, u.family): (u.in_use, u.available) for u in allocator.usage()}
    assert usage == {("dual", 4): (1, 1), ("dual", 6): (1, 1), ("v4", 4): (1, 2), ("v4", 6): (0, 0)}
