"""What the modules do: pools, batches, bad input (ledger untouched), reports."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SQLiteLedger
from ansible_collections.baremetal.lb.plugins.module_utils.operations import (
    allocate_services,
    apply_pool,
    ensure_pools,
    pool_report,
)
from ansible_collections.baremetal.lb.tests.unit.plugins.module_utils.test_ledger import dump


@pytest.fixture
def ledger(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    pool_change(ledger, name="lan", addresses=["198.51.100.100-198.51.100.103", "2001:db8:1::100/127"])
    pool_change(ledger, name="bgp", addresses=["203.0.113.0/30"])
    allocate(ledger, [{"namespace": "shop", "name": "web", "ports": [{"port": 80}]}])
    return ledger


def pool_change(ledger, **options):
    with ledger.transaction() as txn:
        return apply_pool(txn, options)


def allocate(ledger, services):
    with ledger.transaction() as txn:
        return allocate_services(txn, services)


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"name": "x", "addresses": ["198.51.100.300/32"]}, "addresses[0]", "not a valid CIDR"),
        (
            {"name": "x", "addresses": ["198.51.100.1/24"]},
            "addresses[0]",
            "host bits set; the network is 198.51.100.0/24",
        ),
        ({"name": "x", "addresses": ["198.51.100.20-198.51.100.10"]}, "addresses[0]", "reversed"),
        ({"name": "x", "addresses": ["198.51.100.1-2001:db8::1"]}, "addresses[0]", "mixes IPv4 and IPv6"),
        ({"name": "x", "addresses": ["banana"]}, "addresses[0]", "not a valid IPv4 or IPv6 address"),
        (
            {"name": "x", "addresses": ["203.0.113.64/26", "198.51.100.102/31"]},
            "addresses[1]",
            "overlaps 198.51.100.100-198.51.100.103 of pool 'lan'",
        ),
        (
            {"name": "x", "addresses": ["203.0.113.64/26", "203.0.113.96/27"]},
            "addresses[1]",
            "overlaps 203.0.113.64/26 of the same pool",
        ),
        ({"name": "x", "addresses": []}, "addresses", "non-empty list"),
        (
            {"name": "x", "addresses": ["203.0.113.64/26"], "service_allocation": {"priority": -1}},
            "service_allocation.priority",
            "non-negative",
        ),
        (
            {
                "name": "x",
                "addresses": ["203.0.113.64/26"],
                "service_allocation": {
                    "service_selectors": [{"match_expressions": [{"key": "a", "operator": "Maybe"}]}]
                },
            },
            "service_allocation.service_selectors[0].match_expressions[0].operator",
            "must be one of In, NotIn, Exists, DoesNotExist",
        ),
        ({"name": "lan", "addresses": ["198.51.100.101-198.51.100.103"]}, "addresses", "would release 1 allocation"),
        ({"name": "lan", "state": "absent"}, "state", "holds 1 allocation"),
    ],
)
def test_bad_pool_input_names_the_field_and_changes_nothing(ledger, options, field, message):
    before = dump(ledger.path)
    with pytest.raises(InputError) as caught:
        pool_change(ledger, **options)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert dump(ledger.path) == before


@pytest.mark.parametrize(
    ("service", "field", "message"),
    [
        (
            {"name": "a", "load_balancer_ips": ["198.51.100.100", "2001:db8:1::100", "203.0.113.1"]},
            "services[0].load_balancer_ips",
            "at most two",
        ),
        (
            {
                "name": "a",
                "load_balancer_ips": ["198.51.100.100", "198.51.100.101"],
                "ip_family_policy": "RequireDualStack",
            },
            "services[0].load_balancer_ips",
            "both addresses are IPv4",
        ),
        (
            {"name": "a", "load_balancer_ips": ["2001:db8:1::100"], "ip_families": ["IPv4"]},
            "services[0].load_balancer_ips[0]",
            "is IPv6 but ip_families is IPv4",
        ),
        ({"name": "a", "load_balancer_ips": ["not-an-ip"]}, "services[0].load_balancer_ips[0]", "not a valid"),
        ({"name": "a", "ports": [{"port": 70000}]}, "services[0].ports[0].port", "1 to 65535"),
        ({"name": "a", "ports": [{"port": 80, "protocol": "ICMP"}]}, "services[0].ports[0].protocol", "TCP, UDP, SCTP"),
        ({"name": "a", "external_traffic_policy": "Nearest"}, "services[0].external_traffic_policy", "Cluster, Local"),
        ({"name": "a", "selector": ["app"]}, "services[0].selector", "must be a mapping"),
        (
            {"name": "a", "ip_families": ["IPv4", "IPv6"]},
            "services[0].ip_families",
            "PreferDualStack or RequireDualStack",
        ),
        ({"name": "a", "ip_families": ["IPv5"]}, "services[0].ip_families[0]", "IPv4 or IPv6"),
        ({"name": "a", "colour": "blue"}, "services[0].colour", "unknown key"),
        ({"namespace": "x"}, "services[0].name", "is required"),
    ],
)
def test_bad_service_input_names_the_field_and_changes_nothing(ledger, service, field, message):
    before = dump(ledger.path)
    with pytest.raises(InputError) as caught:
        allocate(ledger, [{"name": "fine"}, service])
    assert caught.value.field == field.replace("services[0]", "services[1]")
    assert message in str(caught.value)
    assert dump(ledger.path) == before


def test_overlap_error_names_both_pools_and_both_ranges(ledger):
    with pytest.raises(InputError) as caught:
        pool_change(ledger, name="edge", addresses=["203.0.113.64/26", "198.51.100.96/28"])
    assert caught.value.field == "addresses[1]"
    assert str(caught.value) == (
        "addresses[1]: 198.51.100.96/28 of pool 'edge' overlaps 198.51.100.100-198.51.100.103 of pool 'lan'; "
        "pools never share addresses (got '198.51.100.96/28')"
    )


def test_duplicate_service_in_one_batch(ledger):
    with pytest.raises(InputError, match=r"services\[1\].*listed twice"):
        allocate(ledger, [{"name": "a"}, {"name": "a"}])


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ({"name": "a", "address_pool": "nope"}, "'nope' does not exist"),
        ({"name": "a", "load_balancer_ips": ["203.0.113.200"]}, "203.0.113.200 is not in any address pool"),
        ({"name": "a", "load_balancer_ips": ["198.51.100.100"]}, "held by shop/web"),
    ],
)
def test_refused_services_are_failures_and_others_are_saved(ledger, service, reason):
    result = allocate(ledger, [service, {"name": "ok"}])
    assert [f["name"] for f in result.failures] == ["a"]
    assert reason in result.failures[0]["reason"]
    assert [a["name"] for a in result.allocations] == ["ok"]
    assert {a.key for a in ledger.read().allocations} == {"shop/web", "default/ok"}


def test_second_identical_batch_changes_nothing(ledger):
    services = [{"name": "a", "ip_family_policy": "RequireDualStack"}, {"name": "b", "address_pool": "bgp"}]
    first = allocate(ledger, services)
    assert first.changed
    before = dump(ledger.path)
    second = allocate(ledger, services)
    assert not second.changed
    assert second.allocations == first.allocations
    assert dump(ledger.path) == before


def test_absent_releases_and_reports_diff(ledger):
    result = allocate(ledger, [{"namespace": "shop", "name": "web", "state": "absent"}])
    assert result.changed
    assert result.before == {
        "shop/web": {"namespace": "shop", "name": "web", "addresses": ["198.51.100.100"], "pool": "lan"}
    }
    assert result.after == {"shop/web": None}
    assert result.allocations == []
    again = allocate(ledger, [{"namespace": "shop", "name": "web", "state": "absent"}])
    assert not again.changed


def test_force_shrink_reports_released(ledger):
    change = pool_change(ledger, name="lan", addresses=["198.51.100.101-198.51.100.103"], force=True)
    assert change.changed
    assert change.released == [
        {
            "namespace": "shop",
            "name": "web",
            "addresses": ["198.51.100.100"],
            "pool": "lan",
            "reason": "198.51.100.100 is no longer in the pool",
        }
    ]
    assert ledger.read().allocations == []


def test_force_remove_reports_released(ledger):
    change = pool_change(ledger, name="lan", state="absent", force=True)
    assert [r["name"] for r in change.released] == ["web"]
    assert [p.name for p in ledger.read().pools] == ["bgp"]


def test_restricting_a_pool_refuses_to_strand_holders(ledger):
    with pytest.raises(InputError, match="the pool now serves only namespaces payments"):
        pool_change(
            ledger,
            name="lan",
            addresses=["198.51.100.100-198.51.100.103", "2001:db8:1::100/127"],
            service_allocation={"namespaces": ["payments"]},
        )


def test_unchanged_pool_is_not_changed_and_keeps_definition_order(ledger):
    change = pool_change(ledger, name="lan", addresses=["198.51.100.100-198.51.100.103", "2001:db8:1::100/127"])
    assert not change.changed
    pool_change(ledger, name="lan", addresses=["198.51.100.100-198.51.100.104", "2001:db8:1::100/127"])
    assert [p.name for p in ledger.read().pools] == ["lan", "bgp"]


def test_pool_report_counts_per_family(ledger):
    allocate(
        ledger,
        [
            {"name": "dual", "ip_family_policy": "RequireDualStack"},
            {"name": "share1", "sharing_key": "k", "ports": [{"port": 1}]},
            {"name": "share2", "sharing_key": "k", "ports": [{"port": 2}]},
        ],
    )
    report = pool_report(ledger.read())
    lan = report["pools"][0]
    assert lan["name"] == "lan"
    # web .100, dual .101 + ::100, share1 and share2 on one address .102
    assert lan["assigned"] == {"ipv4": 3, "ipv6": 1}
    assert lan["available"] == {"ipv4": 1, "ipv6": 1}
    assert report["pools"][1]["assigned"] == {"ipv4": 0, "ipv6": 0}
    assert report["pools"][1]["available"] == {"ipv4": 4, "ipv6": 0}
    shared = [a for a in report["allocations"] if a["sharing_key"] == "k"]
    assert [a["addresses"] for a in shared] == [["198.51.100.102"], ["198.51.100.102"]]


def ensure(ledger, pools, services=()):
    with ledger.transaction() as txn:
        changes = ensure_pools(txn, pools)
        return changes, allocate_services(txn, list(services))


def test_ensure_pools_then_allocate_in_one_transaction(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    pools = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.101"]}, {"name": "bgp", "addresses": ["203.0.113.0/30"]}]
    changes, result = ensure(ledger, pools, [{"name": "a"}, {"name": "b", "address_pool": "bgp"}])
    assert [c.changed for c in changes] == [True, True]
    assert [a["addresses"] for a in result.allocations] == [["198.51.100.100"], ["203.0.113.0"]]
    changes, result = ensure(ledger, pools, [{"name": "a"}, {"name": "b", "address_pool": "bgp"}])
    assert [c.changed for c in changes] == [False, False] and not result.changed
    # growing a pool is seen by the allocation of the same call
    grown = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.102"]}]
    changes, result = ensure(ledger, grown, [{"name": "c"}, {"name": "d"}])
    assert changes[0].changed
    assert [a["addresses"] for a in result.allocations] == [["198.51.100.101"], ["198.51.100.102"]]
    assert [p.name for p in ledger.read().pools] == ["lan", "bgp"]


@pytest.mark.parametrize(
    ("pools", "field", "message"),
    [
        ({"name": "lan"}, "pools", "must be a list of pools"),
        (["lan"], "pools[0]", "must be a pool"),
        ([{"name": "x", "addresses": ["203.0.113.8/30"], "avoid_bugy_ips": True}], "pools[0].avoid_bugy_ips", "did you mean 'avoid_buggy_ips'"),
        ([{"name": "x", "addresses": ["203.0.113.8/30"], "state": "absent"}], "pools[0].state", "unknown key"),
        ([{"name": "x", "addresses": ["203.0.113.8/30"]}, {"name": "x", "addresses": ["203.0.113.16/30"]}], "pools[1].name", "listed twice (also pools[0])"),
        ([{"name": "my pool", "addresses": ["203.0.113.8/30"]}], "pools[0].name", "DNS subdomain"),
        ([{"name": "x", "addresses": ["203.0.113.8/30", "198.51.100.102"]}], "pools[0].addresses[1]", "overlaps 198.51.100.100-198.51.100.103 of pool 'lan'"),
        # shrinking lan would release shop/web's 198.51.100.100: not without force
        ([{"name": "lan", "addresses": ["198.51.100.102-198.51.100.103"]}], "pools[0].addresses", "would release 1 allocation"),
    ],
)
def test_ensure_pools_bad_input_names_the_field_and_changes_nothing(ledger, pools, field, message):
    before = dump(ledger.path)
    with pytest.raises(InputError) as caught:
        ensure(ledger, pools, [{"name": "other"}])
    assert caught.value.field == field
    assert message in str(caught.value)
    assert dump(ledger.path) == before
