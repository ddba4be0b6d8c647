"""The service model's data-plane keys (health_check, backends, workload) and ports, in the core."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.dataplane import (
    HealthCheck,
    parse_backends,
    parse_health_check,
)
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SQLiteLedger
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, ensure_pools
from ansible_collections.baremetal.lb.plugins.module_utils.service import ServicePort, parse_service

WEB = {
    "name": "web",
    "ports": [{"port": 80}, 53, {"port": 53, "protocol": "udp"}],
    "external_traffic_policy": "Local",
    "health_check": {"type": "http", "url": "http://127.0.0.1:8080/healthz"},
    "backends": [{"node": "node1", "address": "198.51.100.11", "port": 8080}],
    "workload": {"kind": "DaemonSet"},
}


def test_one_model_carries_the_inventory_service_as_it_is():
    service = parse_service(WEB, "lb_services[0]")
    assert service.key == "default/web"
    assert service.ports == (ServicePort("TCP", 80), ServicePort("TCP", 53), ServicePort("UDP", 53))
    assert [str(p) for p in service.ports] == ["80/tcp", "53/tcp", "53/udp"]
    assert service.health_check == HealthCheck("http", url="http://127.0.0.1:8080/healthz")
    (backend,) = service.backends
    assert (backend.node, str(backend.address), backend.port, backend.endpoint) == (
        "node1", "198.51.100.11", 8080, "198.51.100.11:8080",
    )
    assert backend.health_check == HealthCheck("tcp", host="198.51.100.11", port=8080)
    assert service.workload is not None and service.workload.kind == "DaemonSet"
    # the allocation's form (the ledger's) leaves the data plane out
    assert set(service.to_dict()) >= {"ports", "external_traffic_policy"}
    assert not {"health_check", "backends", "workload"} & set(service.to_dict())


def test_a_data_plane_change_keeps_the_allocation_and_the_ledger(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    with ledger.transaction() as txn:
        ensure_pools(txn, [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.110"]}])
        first = allocate_services(txn, [WEB])
    changed = {**WEB, "health_check": {"type": "tcp", "port": 9090}, "backends": None, "workload": None}
    with ledger.transaction() as txn:
        second = allocate_services(txn, [changed])
    assert first.changed and not second.changed
    assert second.allocations == first.allocations


@pytest.mark.parametrize(
    ("service", "field", "message"),
    [
        ({"health_check": {"type": "icmp"}}, "lb_services[0].health_check.type", "must be one of http, tcp, kube_proxy"),
        ({"health_check": {"type": "http", "url": "https://x/"}}, "lb_services[0].health_check.url", "http://"),
        ({"health_check": {"type": "tcp"}}, "lb_services[0].health_check.port", "is required"),
        ({"health_check": {"type": "tcp", "port": 70000}}, "lb_services[0].health_check.port", "from 1 to 65535"),
        ({"health_check": {"type": "tcp", "port": 80, "interval_ms": 10}}, "lb_services[0].health_check.interval_ms",
         "must be an integer from 50 to 600000"),
        ({"health_check": {"type": "tcp", "port": 80, "intervall_ms": 100}}, "lb_services[0].health_check.intervall_ms",
         "did you mean 'interval_ms'"),
        ({"backends": []}, "lb_services[0].backends", "non-empty list"),
        ({"backends": [{"node": "n1", "address": "198.51.100.300", "port": 80}]}, "lb_services[0].backends[0].address",
         "not a valid IP address"),
        ({"backends": [{"node": "n1", "address": "224.0.0.1", "port": 80}]}, "lb_services[0].backends[0].address",
         "unicast"),
        ({"backends": [{"node": "n1", "address": "198.51.100.9", "port": 80, "weight": 2}]},
         "lb_services[0].backends[0].weight", "unknown key"),
        ({"backends": [{"node": "n1", "address": "198.51.100.9", "port": 80}] * 2}, "lb_services[0].backends[1]",
         "lists 198.51.100.9:80 twice"),
        ({"backends": [{"node": "n1", "address": "198.51.100.9", "port": 80}], "ports": None}, "lb_services[0].ports",
         "needs ports"),
        ({"ports": [{"port": 80, "protocol": "icmp"}]}, "lb_services[0].ports[0].protocol", "TCP, UDP, SCTP"),
        ({"ports": [80, {"port": 80, "protocol": "TCP"}]}, "lb_services[0].ports[1]", "duplicates TCP/80"),
        ({"ports": [True]}, "lb_services[0].ports[0]", "a port number"),
        ({"workload": {"kind": "DaemonSet", "replicas": 2}}, "lb_services[0].workload.replicas", "DaemonSet"),
    ],
)
def test_bad_data_plane_input_names_the_field(service, field, message):
    with pytest.raises(InputError) as caught:
        parse_service({"name": "web", "ports": [80], **service}, "lb_services[0]")
    assert caught.value.field == field
    assert message in str(caught.value)


def test_backends_on_unknown_nodes_are_refused_where_nodes_are_known():
    with pytest.raises(InputError, match=r"backends\[0\]\.node: is not listed in nodes"):
        parse_backends([{"node": "n9", "address": "198.51.100.9", "port": 80}], "backends", known_nodes={"n1"})


def test_a_backend_tcp_check_defaults_to_the_backend():
    (backend,) = parse_backends(
        [{"node": "n1", "address": "2001:db8::9", "port": 80, "health_check": {"type": "tcp", "interval_ms": 200}}]
    )
    assert backend.health_check == HealthCheck("tcp", host="2001:db8::9", port=80, interval_ms=200, timeout_ms=200)
    assert backend.endpoint == "[2001:db8::9]:80"
    assert parse_health_check({"type": "kube_proxy", "url": "http://127.0.0.1:30000/healthz"}).to_dict() == {
        "type": "kube_proxy", "url": "http://127.0.0.1:30000/healthz", "interval_ms": 1000, "timeout_ms": 500,
    }
