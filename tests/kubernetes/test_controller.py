"""MetalLB's controller behaviours against the real control plane: Service in; status, annotation, events out."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import POOLS, Namespace, wait_for

pytestmark = pytest.mark.usefixtures("cluster")

IPS = "metallb.io/loadBalancerIPs"
POOL = "metallb.io/address-pool"
SHARE = "metallb.io/allow-shared-ip"


def quiet(ns: Namespace, name: str, seconds: float = 1.0) -> None:
    """Nothing happens to the Service for a while: no status, no event."""
    time.sleep(seconds)
    assert ns.ingress(name) == [] and ns.events(name) == []


def test_first_address_annotation_and_event(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("web")
    assert ns.wait_ingress("web") == ["198.51.100.100"]
    assert ns.pool("web") == "default"
    event = ns.wait_event("web", "IPAllocated")
    assert event["type"] == "Normal" and "198.51.100.100" in event["message"]
    assert event["reportingInstance"] == "ctl-a"
    status_managers = {f["manager"] for f in ns.get("web")["metadata"]["managedFields"]
                       if f.get("subresource") == "status"}
    assert status_managers == {"baremetal-lb-controller"}


@pytest.mark.parametrize("how", ["spec", "annotation", "deprecated"])
def test_requested_address(ns: Namespace, start_controller: Any, how: str) -> None:
    start_controller()
    if how == "spec":
        ns.apply("web", loadBalancerIP="198.51.100.105")
    else:
        prefix = "metallb.io/" if how == "annotation" else "metallb.universe.tf/"
        ns.apply("web", annotations={prefix + "loadBalancerIPs": "198.51.100.105"})
    assert ns.wait_ingress("web") == ["198.51.100.105"]


def test_pool_annotation_takes_an_auto_assign_off_pool(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("web", annotations={POOL: "manual"})
    ns.apply("old", annotations={"metallb.universe.tf/address-pool": "manual"})
    assert ns.wait_ingress("web") == ["203.0.113.200"]
    assert ns.wait_ingress("old") == ["203.0.113.201"]
    assert ns.pool("web") == "manual"


def test_sharing(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    shared = {SHARE: "dns", IPS: "198.51.100.101"}
    udp53 = [{"name": "dns-udp", "port": 53, "protocol": "UDP"}]
    tcp53 = [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    ns.apply("dns-udp", annotations=shared, ports=udp53)
    ns.apply("dns-tcp", annotations=shared, ports=tcp53)  # protocol differs: shares
    ns.apply("http", annotations=shared)  # port differs: shares
    for name in ("dns-udp", "dns-tcp", "http"):
        assert ns.wait_ingress(name) == ["198.51.100.101"]
    ns.apply("dup", annotations=shared, ports=udp53)  # same protocol and port
    assert "already uses UDP/53" in ns.wait_event("dup", "AllocationFailed")["message"]
    ns.apply("other-key", annotations={**shared, SHARE: "other"}, ports=[{"name": "x", "port": 81}])
    assert "sharing_key 'dns', not 'other'" in ns.wait_event("other-key", "AllocationFailed")["message"]
    ns.apply("local", annotations=shared, ports=[{"name": "x", "port": 82}], externalTrafficPolicy="Local")
    assert "backends differ" in ns.wait_event("local", "AllocationFailed")["message"]
    for name in ("dup", "other-key", "local"):
        assert ns.ingress(name) == []
        assert ns.events(name)[0]["type"] == "Warning"


def test_sharing_by_key_without_requested_address(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("a", annotations={SHARE: "k"})
    ns.apply("b", annotations={SHARE: "k"}, ports=[{"name": "x", "port": 443}])
    assert ns.wait_ingress("a") == ns.wait_ingress("b") == ["198.51.100.100"]


@pytest.mark.parametrize(("families", "policy", "expected"), [
    (["IPv4", "IPv6"], "RequireDualStack", ["198.51.100.100", "2001:db8:1::100"]),
    (["IPv6", "IPv4"], "PreferDualStack", ["2001:db8:1::100", "198.51.100.100"]),
    (["IPv6"], "SingleStack", ["2001:db8:1::100"]),
])
def test_families(ns: Namespace, start_controller: Any, families: list[str], policy: str,
                  expected: list[str]) -> None:
    start_controller()
    ns.apply("web", ipFamilies=families, ipFamilyPolicy=policy)
    assert ns.wait_ingress("web") == expected


def test_prefer_dual_stack_from_a_single_family_pool(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("web", ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="PreferDualStack", annotations={POOL: "manual"})
    assert ns.wait_ingress("web") == ["203.0.113.200"]


def test_changing_the_request_forces_a_new_address(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("web", annotations={IPS: "198.51.100.103"})
    assert ns.wait_ingress("web") == ["198.51.100.103"]
    ns.patch("web", {"metadata": {"annotations": {IPS: "198.51.100.104"}}})
    assert ns.wait_ingress("web", ["198.51.100.104"]) == ["198.51.100.104"]
    ns.patch("web", {"metadata": {"annotations": {IPS: None, POOL: "manual"}}})
    assert ns.wait_ingress("web", ["203.0.113.200"])
    ns.apply("next", annotations={IPS: "198.51.100.103"})  # both earlier addresses are free again
    assert ns.wait_ingress("next") == ["198.51.100.103"]


def test_deleted_service_frees_its_address_for_the_next(ns: Namespace, start_controller: Any) -> None:
    start_controller(pools=[{"name": "one", "addresses": ["198.51.100.120/32"]}])
    ns.apply("first")
    assert ns.wait_ingress("first") == ["198.51.100.120"]
    ns.apply("second")
    assert "no free IPv4 address" in ns.wait_event("second", "AllocationFailed")["message"]
    ns.delete("first")
    assert ns.wait_ingress("second") == ["198.51.100.120"]


def test_type_change_frees_and_clears(ns: Namespace, start_controller: Any) -> None:
    start_controller(pools=[{"name": "one", "addresses": ["198.51.100.120/32"]}])
    ns.apply("web")
    assert ns.wait_ingress("web") == ["198.51.100.120"]
    ns.patch("web", {"spec": {"type": "ClusterIP"}})
    ns.wait_event("web", "ClearAssignment")
    wait_for("annotation removed", lambda: ns.pool("web") is None)
    ns.apply("next")
    assert ns.wait_ingress("next") == ["198.51.100.120"]


def test_other_types_and_classes_are_ignored(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("cluster-ip", type="ClusterIP")
    ns.apply("node-port", type="NodePort")
    ns.apply("theirs", loadBalancerClass="example.com/other")
    ns.apply("ours", loadBalancerClass="baremetal.lb/speaker")
    assert ns.wait_ingress("ours") == ["198.51.100.100"]
    for name in ("cluster-ip", "node-port", "theirs"):
        quiet(ns, name, 0.3)


def test_unclassed_not_served_when_configured(ns: Namespace, start_controller: Any) -> None:
    start_controller(serve_unclassed=False)
    ns.apply("ours", loadBalancerClass="baremetal.lb/speaker")
    ns.apply("plain")
    assert ns.wait_ingress("ours") == ["198.51.100.100"]
    quiet(ns, "plain", 0.5)


@pytest.mark.parametrize(("annotations", "spec", "field", "value"), [
    ({POOL: "nope"}, {}, 'metadata.annotations["metallb.io/address-pool"]=nope', "does not exist"),
    ({IPS: "192.0.2.50"}, {}, 'metadata.annotations["metallb.io/loadBalancerIPs"]=192.0.2.50',
     "is not in any address pool"),
    ({}, {"loadBalancerIP": "2001:db8:1::105"}, "spec.loadBalancerIP", "2001:db8:1::105"),
    ({IPS: "198.51.100.300"}, {}, 'metadata.annotations["metallb.io/loadBalancerIPs"]', "198.51.100.300"),
    ({IPS: "198.51.100.101,198.51.100.102"}, {}, 'metadata.annotations["metallb.io/loadBalancerIPs"]',
     "'198.51.100.101', '198.51.100.102'"),
    ({SHARE: ""}, {}, 'metadata.annotations["metallb.io/allow-shared-ip"]', "''"),
])
def test_bad_input_is_a_warning_naming_field_and_value(ns: Namespace, start_controller: Any,
                                                       annotations: dict[str, str], spec: dict[str, Any],
                                                       field: str, value: str) -> None:
    start_controller()
    ns.apply("bad", annotations=annotations, **spec)
    event = ns.wait_event("bad", "AllocationFailed")
    assert event["type"] == "Warning"
    assert field in event["message"] and value in event["message"], event["message"]
    time.sleep(0.5)
    assert ns.ingress("bad") == [] and ns.pool("bad") is None
    assert [e["reason"] for e in ns.events("bad")] == ["AllocationFailed"]  # once, not on every echo


def test_bad_change_keeps_the_address(ns: Namespace, start_controller: Any) -> None:
    start_controller()
    ns.apply("web")
    assert ns.wait_ingress("web") == ["198.51.100.100"]
    ns.patch("web", {"metadata": {"annotations": {POOL: "nope"}}})
    ns.wait_event("web", "AllocationFailed")
    assert ns.ingress("web") == ["198.51.100.100"]
    ns.apply("other")
    assert ns.wait_ingress("other") == ["198.51.100.101"]


def test_pool_shrunk_and_removed_on_reload(ns: Namespace, start_controller: Any) -> None:
    ctl = start_controller()
    ns.apply("a")
    ns.apply("b", annotations={POOL: "manual"})
    assert ns.wait_ingress("a") == ["198.51.100.100"]
    assert ns.wait_ingress("b") == ["203.0.113.200"]
    shrunk = [{"name": "default", "addresses": ["198.51.100.105-198.51.100.109"]}]
    ctl.write_config({**ctl.config, "pools": shrunk})
    ctl.reload()
    assert ns.wait_ingress("a", ["198.51.100.105"])  # moved inside what is left
    assert ns.pool("a") == "default"
    wait_for("b cleared", lambda: ns.ingress("b") == [])  # its pool is gone and nothing else may serve it
    assert ns.wait_event("b", "ClearAssignment")["type"] == "Normal"  # written after the status
    assert ns.wait_event("b", "AllocationFailed")["type"] == "Warning"
    assert ctl.metric('lbcontroller_reloads_total{result="ok"}') == 1


def test_pool_removed_across_a_restart(ns: Namespace, start_controller: Any) -> None:
    ctl = start_controller()
    ns.apply("a", annotations={POOL: "manual"})
    assert ns.wait_ingress("a") == ["203.0.113.200"]
    ctl.stop()
    start_controller("ctl-b", pools=[POOLS[0]])
    wait_for("a cleared", lambda: ns.ingress("a") == [])
    ns.wait_event("a", "ClearAssignment")


def test_bad_reload_keeps_running_config(ns: Namespace, start_controller: Any) -> None:
    ctl = start_controller()
    ctl.write_config({**ctl.config, "pools": [{"name": "x", "addresses": ["nonsense"]}]})
    ctl.reload()
    wait_for("reload refused", lambda: ctl.metric('lbcontroller_reloads_total{result="error"}') == 1)
    ns.apply("web")
    assert ns.wait_ingress("web") == ["198.51.100.100"]


def test_reserved_addresses_are_never_handed_out(ns: Namespace, start_controller: Any) -> None:
    start_controller(reserved=[{"address": "198.51.100.100", "service": "apps/from-playbook"}])
    ns.apply("auto")
    assert ns.wait_ingress("auto") == ["198.51.100.101"]  # .100 is the ledger's
    ns.apply("asks", annotations={IPS: "198.51.100.100"})
    message = ns.wait_event("asks", "AllocationFailed")["message"]
    assert ("held by apps/from-playbook, which has no sharing_key "
            "(apps/from-playbook: reserved for the playbook's ledger)") in message
    assert ns.ingress("asks") == []
