# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A misspelt key anywhere in any input is refused, naming its path and the key, never ignored."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError, refuse_unknown_keys
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SQLiteLedger
from ansible_collections.baremetal.lb.plugins.module_utils.manifest import parse_addresses
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, apply_pool
from ansible_collections.baremetal.lb.plugins.module_utils.service import parse_service
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_desired_state

POOL = {"name": "lan", "addresses": ["198.51.100.0/24"]}


def selector_pool(selector):
    return {**POOL, "service_allocation": {"service_selectors": [selector]}}


def test_the_message_names_the_path_the_key_and_the_closest_known_key():
    with pytest.raises(InputError) as caught:
        parse_desired_state(pools=[{**POOL, "avoid_bugy_ips": True}])
    assert caught.value.field == "pools[0].avoid_bugy_ips"
    assert str(caught.value) == (
        "pools[0].avoid_bugy_ips: unknown key 'avoid_bugy_ips' (did you mean 'avoid_buggy_ips'?); "
        "known keys: addresses, auto_assign, avoid_buggy_ips, name, service_allocation (got True)"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pools": [POOL, {**POOL, "name": "b", "colour": "red"}]}, "pools[1].colour"),
        ({"pools": [{**POOL, "service_allocation": {"priorty": 1}}]}, "pools[0].service_allocation.priorty"),
        (
            {"pools": [selector_pool({"matchLabels": {"tier": "edge"}})]},
            "pools[0].service_allocation.service_selectors[0].matchLabels",
        ),
        (
            {"pools": [selector_pool({"match_expressions": [{"key": "tier", "operator": "Exists", "value": []}]})]},
            "pools[0].service_allocation.service_selectors[0].match_expressions[0].value",
        ),
        (
            {"services": [{"name": "web", "ports": [{"port": 80, "target_port": 8080}]}]},
            "services[0].ports[0].target_port",
        ),
        ({"services": [{"name": "web", "selectr": {"app": "web"}}]}, "services[0].selectr"),
        ({"l2_advertisements": [{"pools": ["lan"], "node": ["a"]}]}, "l2_advertisements[0].node"),
        (
            {"services": [{"name": "web"}], "workloads": {"default/web": {"kind": "DaemonSet", "replica": 1}}},
            "workloads['default/web'].replica",
        ),
    ],
)
def test_validate_refuses_unknown_keys_at_any_depth(kwargs, field):
    with pytest.raises(InputError) as caught:
        parse_desired_state(**kwargs)
    assert caught.value.field == field
    assert f"unknown key {field.rsplit('.', 1)[1]!r}" in str(caught.value)


def test_address_pool_refuses_unknown_keys_in_selectors(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    selector = {"match_expressions": [{"key": "tier", "operator": "In", "values": ["edge"], "vaules": ["x"]}]}
    options = {**POOL, "service_allocation": {"service_selectors": [selector]}}
    with pytest.raises(InputError) as caught, ledger.transaction() as txn:
        apply_pool(txn, options)
    assert caught.value.field == "service_allocation.service_selectors[0].match_expressions[0].vaules"
    assert ledger.read().pools == []


def test_allocate_refuses_unknown_port_keys(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    with ledger.transaction() as txn:
        apply_pool(txn, POOL)
    with pytest.raises(InputError) as caught, ledger.transaction() as txn:
        allocate_services(txn, [{"name": "web", "ports": [{"port": 53, "protocol": "UDP", "node_port": 30053}]}])
    assert caught.value.field == "services[0].ports[0].node_port"


def test_service_manifest_refuses_unknown_keys_in_an_allocation():
    service = parse_service({"namespace": "web", "name": "frontend"})
    allocation = {"namespace": "web", "name": "frontend", "addresses": ["198.51.100.1"], "pool": "lan"}
    assert parse_addresses(allocation, service) == ["198.51.100.1"]
    # pool_info's allocations carry ports and sharing_key too: those are an allocation's keys
    assert parse_addresses({**allocation, "ports": [], "sharing_key": ""}, service) == ["198.51.100.1"]
    with pytest.raises(InputError) as caught:
        parse_addresses({**allocation, "adresses": ["198.51.100.2"]}, service)
    assert caught.value.field == "addresses.adresses"


def test_stored_pools_are_read_with_every_key_they_were_saved_with(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    options = {
        **POOL,
        "auto_assign": False,
        "avoid_buggy_ips": True,
        "service_allocation": {
            "priority": 3,
            "namespaces": ["shop"],
            "service_selectors": [{"match_expressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]}],
        },
    }
    with ledger.transaction() as txn:
        saved = apply_pool(txn, options).after
    assert [p.to_dict() for p in ledger.read().pools] == [saved]


def test_keys_that_are_not_strings_are_named_too():
    with pytest.raises(InputError) as caught:
        refuse_unknown_keys({1: "x", "b": "y"}, {"a", "b"}, "thing")
    assert caught.value.field == "thing.1"
