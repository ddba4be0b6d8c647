# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes' name rules: the rules themselves, and every place a name comes in."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.allocator import Allocation
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SQLiteLedger
from ansible_collections.baremetal.lb.plugins.module_utils.manifest import parse_workload, render
from ansible_collections.baremetal.lb.plugins.module_utils.names import (
    check_label_key,
    check_label_value,
    check_namespace,
    check_object_name,
    check_service_name,
)
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, apply_pool, pool_report
from ansible_collections.baremetal.lb.plugins.module_utils.pools import AddressRange, Pool, parse_pool
from ansible_collections.baremetal.lb.plugins.module_utils.service import Service, parse_service
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_desired_state

RULES = {
    "namespace": (
        check_namespace,
        ["default", "kube-system", "a", "0shop", "a" * 63],
        ["my shop", "Shop", "-shop", "shop-", "shop.eu", "a" * 64, "", "shop_eu", 7, None],
    ),
    "service": (
        check_service_name,
        ["web", "web-2", "a" * 63],
        ["web x", "2web", "Web", "web-", "web.x", "a" * 64, ""],
    ),
    "object": (
        check_object_name,
        ["lan", "edge.v4", "10-0-0", "a" * 253, ".".join(["a" * 63] * 3)],
        ["my pool", "Lan", "lan.", ".lan", "lan..v4", "lan-.v4", "a" * 254, "lan_v4", ""],
    ),
    "label value": (
        check_label_value,
        ["", "frontend", "Front_end.v1", "1.0", "a" * 63],
        ["a b", "-front", "front.", "a" * 64, "x/y"],
    ),
    "label key": (
        check_label_key,
        ["app", "App_Name", "example.com/tier", "app.kubernetes.io/name", "k" * 63, f"{'p' * 253}/k"],
        ["", "/app", "Example.com/tier", "a/b/c", "-app", "app-", "k" * 64, f"{'p' * 254}/k", "tier/", "a b"],
    ),
}


@pytest.mark.parametrize(
    ("rule", "value"), [(rule, value) for rule, (_check, good, _bad) in RULES.items() for value in good]
)
def test_names_that_kubernetes_accepts_pass(rule, value):
    assert RULES[rule][0](value, "field") == value


@pytest.mark.parametrize(
    ("rule", "value"), [(rule, value) for rule, (_check, _good, bad) in RULES.items() for value in bad]
)
def test_names_that_kubernetes_refuses_are_refused_with_field_rule_and_value(rule, value):
    with pytest.raises(InputError) as caught:
        RULES[rule][0](value, "things[2].name")
    assert caught.value.field == "things[2].name"
    assert caught.value.value == value
    assert str(caught.value).startswith("things[2].name: must be ")
    assert str(caught.value).endswith(f"(got {value!r})")


def test_the_message_says_the_rule():
    with pytest.raises(InputError) as caught:
        parse_service({"name": "web x"}, "services[0]")
    assert str(caught.value) == (
        "services[0].name: must be a DNS label (RFC 1035): lowercase letters, digits and '-', starting with a "
        "letter and ending with a letter or digit, at most 63 characters (got 'web x')"
    )


# --- where names come in -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "field", "value"),
    [
        ({"namespace": "my shop", "name": "web"}, "service.namespace", "my shop"),
        ({"name": "web x"}, "service.name", "web x"),
        ({"name": "9web"}, "service.name", "9web"),
        ({"name": "web", "selector": {"app": "front end"}}, "service.selector.app", "front end"),
        ({"name": "web", "labels": {"team name": "x"}}, "service.labels", "team name"),
    ],
)
def test_parse_service_checks_names(service, field, value):
    with pytest.raises(InputError) as caught:
        parse_service(service)
    assert (caught.value.field, caught.value.value) == (field, value)


def test_the_default_namespace_is_valid():
    assert parse_service({"name": "web"}).namespace == "default"


@pytest.mark.parametrize(
    ("pool", "field", "value"),
    [
        ({"name": "my pool"}, "pools[0].name", "my pool"),
        (
            {"service_allocation": {"namespaces": ["shop", "my shop"]}},
            "pools[0].service_allocation.namespaces[1]",
            "my shop",
        ),
        (
            {"service_allocation": {"service_selectors": [{"match_labels": {"tier": "front end"}}]}},
            "pools[0].service_allocation.service_selectors[0].match_labels.tier",
            "front end",
        ),
        (
            {
                "service_allocation": {
                    "service_selectors": [{"match_expressions": [{"key": "Bad Key", "operator": "Exists"}]}]
                }
            },
            "pools[0].service_allocation.service_selectors[0].match_expressions[0].key",
            "Bad Key",
        ),
        (
            {
                "service_allocation": {
                    "service_selectors": [{"match_expressions": [{"key": "tier", "operator": "In", "values": ["a b"]}]}]
                }
            },
            "pools[0].service_allocation.service_selectors[0].match_expressions[0].values[0]",
            "a b",
        ),
    ],
)
def test_validate_checks_pool_names(pool, field, value):
    with pytest.raises(InputError) as caught:
        parse_desired_state(pools=[{"name": "lan", "addresses": ["198.51.100.0/24"], **pool}])
    assert (caught.value.field, caught.value.value) == (field, value)


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"services": [{"name": "web"}, {"name": "web x"}]}, "services[1].name", "web x"),
        ({"services": [{"namespace": "my shop", "name": "web"}]}, "services[0].namespace", "my shop"),
        ({"l2_advertisements": [{"name": "My Ad", "pools": []}]}, "l2_advertisements[0].name", "My Ad"),
    ],
)
def test_validate_checks_service_and_advertisement_names(kwargs, field, value):
    with pytest.raises(InputError) as caught:
        parse_desired_state(**kwargs)
    assert (caught.value.field, caught.value.value) == (field, value)


def test_validate_checks_the_names_of_absent_services_too():
    # validate releases nothing, so the exception allocate makes for releasing old entries does not apply
    with pytest.raises(InputError):
        parse_desired_state(services=[{"name": "web x", "state": "absent"}])


def test_service_manifest_refuses_names_kubernetes_refuses():
    with pytest.raises(InputError) as caught:
        parse_service({"namespace": "web", "name": "front end", "ports": [{"port": 80}]})
    assert caught.value.field == "service.name"
    # a valid service name is a valid workload and container name: the rendered objects use it as is
    service = parse_service({"namespace": "web", "name": "frontend", "ports": [{"port": 80}], "selector": {"app": "f"}})
    resources = render(service, [], workload=parse_workload({"image": "nginx"}, service))
    assert {r["metadata"]["name"] for r in resources} == {"frontend"}


# --- the ledger: what earlier versions saved stays valid ----------------------------------------


@pytest.fixture
def legacy_ledger(tmp_path):
    """A ledger holding a pool and an allocation whose names an earlier version let through."""
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    old_pool = Pool("my pool", (AddressRange("198.51.100.0/30", 4, 0xC6336400, 0xC6336403),))
    old_service = Service(namespace="my shop", name="web x", selector={"App Name": "a b"})
    with ledger.transaction() as txn:
        txn.put_pool(old_pool)
        txn.put_allocation(Allocation(old_service, "my pool", ((4, 0xC6336400),)))
    return ledger


def test_a_ledger_saved_before_names_were_checked_still_reads(legacy_ledger):
    report = pool_report(legacy_ledger.read())
    assert [p["name"] for p in report["pools"]] == ["my pool"]
    assert [(a["namespace"], a["name"], a["addresses"]) for a in report["allocations"]] == [
        ("my shop", "web x", ["198.51.100.0"])
    ]


def test_an_allocation_saved_before_names_were_checked_can_be_released(legacy_ledger):
    with legacy_ledger.transaction() as txn:
        result = allocate_services(txn, [{"namespace": "my shop", "name": "web x", "state": "absent"}])
    assert result.changed
    assert pool_report(legacy_ledger.read())["allocations"] == []


def test_but_not_allocated_again(legacy_ledger):
    with pytest.raises(InputError) as caught, legacy_ledger.transaction() as txn:
        allocate_services(txn, [{"namespace": "my shop", "name": "web x"}])
    assert caught.value.field == "services[0].namespace"


def test_a_pool_saved_before_names_were_checked_can_be_removed_but_not_changed(legacy_ledger):
    with pytest.raises(InputError) as caught, legacy_ledger.transaction() as txn:
        apply_pool(txn, {"name": "my pool", "addresses": ["198.51.100.0/29"]})
    assert (caught.value.field, caught.value.value) == ("name", "my pool")
    with legacy_ledger.transaction() as txn:
        change = apply_pool(txn, {"name": "my pool", "state": "absent", "force": True})
    assert change.changed and [r["name"] for r in change.released] == ["web x"]
    assert pool_report(legacy_ledger.read())["pools"] == []


def test_address_pool_refuses_a_bad_name(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    with pytest.raises(InputError) as caught, ledger.transaction() as txn:
        apply_pool(txn, {"name": "my pool", "addresses": ["198.51.100.0/24"]})
    assert str(caught.value).startswith("name: must be a DNS subdomain (RFC 1123)")
    assert ledger.read().pools == []


def test_parse_pool_without_name_checks_is_only_for_stored_pools():
    data = {"name": "my pool", "addresses": ["198.51.100.0/24"]}
    assert parse_pool(data, "ledger pool 'my pool'", check_names=False).name == "my pool"
    with pytest.raises(InputError):
        parse_pool(data, "pools[0]")
