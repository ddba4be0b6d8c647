# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
import yaml
from ansible_collections.baremetal.lb.plugins.modules import service_manifest
from ansible_collections.baremetal.lb.tests.unit.plugins.modules.module_runner import run_module

kubernetes_validate = pytest.importorskip("kubernetes_validate")

SERVICE = {
    "namespace": "web",
    "name": "frontend",
    "ports": [{"port": 443}],
    "selector": {"app": "frontend"},
    "external_traffic_policy": "Local",
}
WORKLOAD = {"image": "registry.example.org/frontend:1.4", "replicas": 3, "anti_affinity": "preferred"}


def args(**extra):
    return {"service": SERVICE, "addresses": ["203.0.113.10"], "workload": WORKLOAD, **extra}


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_module_output_validates_against_the_schema(capsys, version):
    code, result = run_module(service_manifest.main, args(health_check_node_port=32100), capsys)
    assert code == 0
    assert [r["kind"] for r in result["resources"]] == ["Service", "Deployment"]
    for resource in result["resources"]:
        kubernetes_validate.validate(resource, version, strict=True)


def test_dest_writes_files_once(capsys, tmp_path):
    dest = tmp_path / "manifests"
    code, first = run_module(service_manifest.main, args(dest=str(dest)), capsys)
    assert code == 0 and first["changed"] is True
    assert sorted(p.name for p in dest.iterdir()) == ["web_frontend_deployment.yaml", "web_frontend_service.yaml"]
    assert yaml.safe_load((dest / "web_frontend_service.yaml").read_text()) == first["resources"][0]
    code, second = run_module(service_manifest.main, args(dest=str(dest)), capsys)
    assert code == 0 and second["changed"] is False


def test_dest_files_are_plain_yaml_without_anchors(capsys, tmp_path):
    # The selector is shared by the Deployment's selector, its pod labels and the spread and
    # anti-affinity terms: once written with &id001/*id001, which nobody wants to read or diff.
    dest = tmp_path / "manifests"
    code, result = run_module(service_manifest.main, args(dest=str(dest)), capsys)
    assert code == 0
    for path, resource in zip(result["files"], result["resources"], strict=True):
        text = (dest / path.rsplit("/", 1)[1]).read_text()
        assert "&id" not in text and "*id" not in text
        assert "matchLabels:\n" in text or resource["kind"] == "Service"
        assert yaml.safe_load(text) == resource


def test_check_mode_writes_nothing(capsys, tmp_path):
    dest = tmp_path / "manifests"
    code, result = run_module(service_manifest.main, args(dest=str(dest), _ansible_check_mode=True), capsys)
    assert code == 0 and result["changed"] is True
    assert not dest.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"workload": {"kind": "DaemonSet", "image": "x", "replicas": 2}}, "workload.replicas"),
        (
            {"service": dict(SERVICE, selector=None), "workload": dict(WORKLOAD, anti_affinity="required")},
            "workload.anti_affinity",
        ),
        ({"service": dict(SERVICE, ports=[{"port": 65536}])}, "service.ports[0].port"),
        (
            {"health_check_node_port": 32100, "service": dict(SERVICE, external_traffic_policy="Cluster")},
            "health_check_node_port",
        ),
        ({"addresses": ["203.0.113.10", "203.0.113.11"]}, "addresses"),
        ({"service": dict(SERVICE, selector=["app"])}, "service.selector"),
    ],
)
def test_bad_input_names_the_field(capsys, extra, field):
    code, result = run_module(service_manifest.main, args(**extra), capsys)
    assert code == 1
    assert result["field"] == field


def test_unknown_policy_is_refused(capsys):
    code, result = run_module(
        service_manifest.main, args(service=dict(SERVICE, external_traffic_policy="Nearest")), capsys
    )
    assert code == 1
    assert result["field"] == "service.external_traffic_policy"
