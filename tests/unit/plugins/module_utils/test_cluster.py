"""What a cluster holds, as the ledger's allocator sees it (core.cluster): no cluster here, its JSON."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.cluster import cluster_allocations, reservations
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SQLiteLedger
from ansible_collections.baremetal.lb.plugins.module_utils.operations import (
    allocate_services,
    ensure_pools,
    pool_report,
)
from ansible_collections.baremetal.lb.plugins.module_utils.pools import parse_pool

POOLS = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.103"]}]


def svc(namespace, name, *ips, kind="LoadBalancer"):
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"type": kind},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def test_only_load_balancer_addresses_inside_the_pools_are_held():
    pools = [parse_pool(p, "pools[0]") for p in POOLS]
    held = cluster_allocations(pools, [
        svc("apps", "web", "198.51.100.100"),
        svc("apps", "elsewhere", "203.0.113.5"),  # no pool of ours gives it
        svc("apps", "np", "198.51.100.101", kind="NodePort"),  # not a load balancer's
        {"metadata": {"namespace": "apps", "name": "host"}, "spec": {"type": "LoadBalancer"},
         "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}},
        svc("shop", "db", "198.51.100.102"),  # the ledger's own service
        svc("apps", "half", "203.0.113.6", "198.51.100.103"),  # only the pool's address is held, in its pool
    ], same_services={"shop/db"})
    assert [(a.key, a.pool, a.address_strings) for a in held] == [
        ("cluster/apps/web", "lan", ["198.51.100.100"]), ("cluster/apps/half", "lan", ["198.51.100.103"])]


def test_allocate_never_hands_out_what_the_cluster_holds(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    cluster = [svc("apps", "web", "198.51.100.100"), svc("shop", "db", "198.51.100.102")]
    with ledger.transaction() as txn:
        ensure_pools(txn, POOLS)
        out = allocate_services(txn, [{"name": "a", "namespace": "shop"},
                                      {"name": "b", "namespace": "shop", "load_balancer_ips": ["198.51.100.100"]},
                                      {"name": "db", "namespace": "shop", "load_balancer_ips": ["198.51.100.102"]}],
                                cluster)
    assert [(a["name"], a["addresses"]) for a in out.allocations] == [
        ("a", ["198.51.100.101"]), ("db", ["198.51.100.102"])]  # shop/db in the cluster is the ledger's shop/db
    assert out.failures == [{"namespace": "shop", "name": "b", "reason": (
        "requested address 198.51.100.100 cannot be shared: it is held by cluster/apps/web, which has no sharing_key")}]
    report = pool_report(ledger.read(), None, cluster)
    assert report["pools"][0]["assigned"] == {"ipv4": 3, "ipv6": 0}
    assert [(a["namespace"], a["name"], a["source"]) for a in report["allocations"]] == [
        ("cluster", "apps/web", "cluster"), ("shop", "a", "ledger"), ("shop", "db", "ledger")]
    # nothing of the cluster's was written to the ledger
    assert sorted(a.key for a in ledger.read().allocations) == ["shop/a", "shop/db"]


def test_reservations_are_the_ledger_with_this_runs_allocations_winning():
    ledger = [
        {"namespace": "shop", "name": "web", "addresses": ["198.51.100.100", "2001:db8:1::100"], "source": "ledger"},
        {"namespace": "shop", "name": "gone", "addresses": ["198.51.100.101"], "source": "ledger"},
        {"namespace": "cluster", "name": "apps/x", "addresses": ["198.51.100.102"], "source": "cluster"},
    ]
    run = [{"namespace": "default", "name": "new", "addresses": ["198.51.100.103"]}]
    services = [{"namespace": "shop", "name": "gone", "state": "absent"}, {"name": "new"}]
    assert reservations(ledger, run, services) == [
        {"address": "198.51.100.100", "service": "shop/web"},
        {"address": "2001:db8:1::100", "service": "shop/web"},
        {"address": "198.51.100.103", "service": "default/new"},
    ]
    # a service of the run given with an empty namespace is default/NAME, as parse_service reads it
    assert reservations([{"namespace": "default", "name": "new", "addresses": ["198.51.100.103"]}], [],
                        [{"name": "new", "namespace": ""}]) == []


def test_reservations_name_a_service_without_name():
    with pytest.raises(InputError) as refused:
        reservations([], [], [{"namespace": "shop"}])
    assert refused.value.field == "services[0].name"
