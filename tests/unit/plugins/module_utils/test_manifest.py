# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import itertools

import pytest
import yaml
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.manifest import (
    parse_addresses,
    parse_workload,
    render,
    to_yaml,
)
from ansible_collections.baremetal.lb.plugins.module_utils.service import parse_service

kubernetes_validate = pytest.importorskip("kubernetes_validate")

# Two minor versions at least, far apart: an old supported one and the newest the package ships.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0", "1.37.0")


def service(**kw):
    data = {
        "namespace": "web",
        "name": "frontend",
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
        "selector": {"app": "frontend"},
        "labels": {"tier": "edge"},
    }
    data.update(kw)
    return parse_service(data)


WORKLOADS = [
    None,
    {"kind": "Deployment", "image": "nginx:1.27", "replicas": 3},
    {"kind": "Deployment", "image": "nginx:1.27", "replicas": 3, "spread": False, "anti_affinity": "required"},
    {"kind": "Deployment", "image": "nginx:1.27", "replicas": 2, "anti_affinity": "preferred", "container_port": 8080},
    {"kind": "DaemonSet", "image": "nginx:1.27"},
]
SERVICES = [
    ({}, ["198.51.100.101"], None, "annotation"),
    ({}, ["198.51.100.101"], None, "spec"),
    (
        {"external_traffic_policy": "Local", "sharing_key": "edge", "address_pool": "lan"},
        ["198.51.100.101"],
        32000,
        "annotation",
    ),
    (
        {"ip_family_policy": "RequireDualStack", "ip_families": ["IPv4", "IPv6"], "external_traffic_policy": "Local"},
        ["198.51.100.101", "2001:db8:1::101"],
        None,
        "annotation",
    ),
    ({"ports": [{"port": 53, "protocol": "UDP"}]}, [], None, "annotation"),
]


def all_rendered():
    for (svc_kw, addresses, hc_port, ip_field), workload in itertools.product(SERVICES, WORKLOADS):
        svc = service(**svc_kw)
        parsed = parse_workload(workload, svc) if workload else None
        yield from render(svc, addresses, health_check_node_port=hc_port, ip_field=ip_field, workload=parsed)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_manifest_validates_against_the_kubernetes_schema(version):
    resources = list(all_rendered())
    assert {r["kind"] for r in resources} == {"Service", "Deployment", "DaemonSet"}
    for resource in resources:
        # strict: unknown fields are errors too, so a typo in a field name fails here
        kubernetes_validate.validate(resource, version, strict=True)
        # and the YAML written to dest is the same document
        assert yaml.safe_load(to_yaml(resource)) == resource


def test_schema_check_can_fail():
    svc = render(service(), ["198.51.100.101"])[0]
    svc["spec"]["externalTrafficPolicyy"] = "Local"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, KUBERNETES_VERSIONS[-1], strict=True)


def test_service_carries_addresses_sharing_and_pool_for_metallb():
    svc = service(external_traffic_policy="Local", sharing_key="edge", address_pool="lan")
    (rendered,) = render(svc, ["198.51.100.101"], health_check_node_port=32000)
    assert rendered["metadata"]["annotations"] == {
        "metallb.io/loadBalancerIPs": "198.51.100.101",
        "metallb.io/allow-shared-ip": "edge",
        "metallb.io/address-pool": "lan",
    }
    spec = rendered["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["healthCheckNodePort"] == 32000
    assert "loadBalancerIP" not in spec  # MetalLB refuses both the annotation and the field
    assert [p["port"] for p in spec["ports"]] == [80, 443]


def test_spec_ip_field_uses_load_balancer_ip_only():
    (rendered,) = render(service(), ["198.51.100.101"], ip_field="spec")
    assert rendered["spec"]["loadBalancerIP"] == "198.51.100.101"
    assert "annotations" not in rendered["metadata"]


def test_dual_stack_cannot_use_the_spec_field():
    svc = service(ip_family_policy="RequireDualStack", ip_families=["IPv4", "IPv6"])
    with pytest.raises(InputError) as info:
        render(svc, ["198.51.100.101", "2001:db8:1::101"], ip_field="spec")
    assert info.value.field == "ip_field"


def test_dual_stack_annotation_lists_both():
    svc = service(ip_family_policy="RequireDualStack", ip_families=["IPv4", "IPv6"])
    (rendered,) = render(svc, ["198.51.100.101", "2001:db8:1::101"])
    assert rendered["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "198.51.100.101,2001:db8:1::101"
    assert rendered["spec"]["ipFamilies"] == ["IPv4", "IPv6"]


def test_deployment_spreads_one_per_node_by_default():
    svc = service()
    deployment = render(svc, [], workload=parse_workload({"image": "nginx", "replicas": 3}, svc))[1]
    pod = deployment["spec"]["template"]["spec"]
    (constraint,) = pod["topologySpreadConstraints"]
    assert constraint["maxSkew"] == 1
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert constraint["labelSelector"] == {"matchLabels": {"app": "frontend"}}
    assert "affinity" not in pod
    assert deployment["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("mode", "key"),
    [
        ("required", "requiredDuringSchedulingIgnoredDuringExecution"),
        ("preferred", "preferredDuringSchedulingIgnoredDuringExecution"),
    ],
)
def test_deployment_anti_affinity(mode, key):
    svc = service()
    workload = parse_workload({"image": "nginx", "replicas": 3, "anti_affinity": mode}, svc)
    deployment = render(svc, [], workload=workload)[1]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert list(anti) == [key]


def test_daemonset_has_no_replicas_and_no_spread():
    svc = service()
    daemonset = render(svc, [], workload=parse_workload({"kind": "DaemonSet", "image": "nginx"}, svc))[1]
    assert daemonset["kind"] == "DaemonSet"
    assert "replicas" not in daemonset["spec"]
    assert "topologySpreadConstraints" not in daemonset["spec"]["template"]["spec"]


def test_container_port_becomes_the_target_port():
    svc = service(ports=[{"port": 80}])
    workload = parse_workload({"image": "nginx", "container_port": 8080}, svc)
    rendered, deployment = render(svc, [], workload=workload)
    assert rendered["spec"]["ports"][0]["targetPort"] == 8080
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"}
    ]


def test_addresses_from_an_allocate_result_entry():
    svc = service()
    allocation = {"namespace": "web", "name": "frontend", "addresses": ["198.51.100.101"], "pool": "lan"}
    assert parse_addresses(allocation, svc) == ["198.51.100.101"]
    with pytest.raises(InputError) as info:
        parse_addresses({"namespace": "web", "name": "other", "addresses": []}, svc)
    assert info.value.field == "addresses.name"


def test_addresses_default_to_the_requested_ones():
    svc = service(load_balancer_ips=["198.51.100.105"])
    assert parse_addresses(None, svc) == ["198.51.100.105"]


@pytest.mark.parametrize(
    ("workload", "svc_kw", "field"),
    [
        ({"kind": "DaemonSet", "image": "nginx", "replicas": 3}, {}, "workload.replicas"),
        ({"kind": "StatefulSet", "image": "nginx"}, {}, "workload.kind"),
        ({"image": "nginx", "anti_affinity": "required"}, {"selector": None}, "workload.anti_affinity"),
        ({"image": "nginx", "anti_affinity": "sometimes"}, {}, "workload.anti_affinity"),
        ({"image": "nginx"}, {"selector": None}, "service.selector"),
        ({"kind": "Deployment"}, {}, "workload.image"),
        ({"image": "nginx", "container_port": 0}, {}, "workload.container_port"),
        ({"image": "nginx", "replica": 2}, {}, "workload.replica"),
    ],
)
def test_bad_workload_names_the_field(workload, svc_kw, field):
    with pytest.raises(InputError) as info:
        parse_workload(workload, service(**svc_kw))
    assert info.value.field == field


def test_health_check_node_port_needs_local():
    with pytest.raises(InputError) as info:
        render(service(), [], health_check_node_port=32000)
    assert info.value.field == "health_check_node_port"
    with pytest.raises(InputError) as info:
        render(service(external_traffic_policy="Local"), [], health_check_node_port=70000)
    assert info.value.field == "health_check_node_port"


def test_service_without_ports_is_refused():
    with pytest.raises(InputError) as info:
        render(service(ports=[]), [])
    assert info.value.field == "service.ports"
