# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""metallb_import on MetalLB's own examples: the file it writes, check mode, and validate on the result."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible_collections.baremetal.lb.plugins.modules import metallb_import, validate
from ansible_collections.baremetal.lb.tests.unit.plugins.modules.module_runner import run_module

SAMPLES = Path(__file__).parents[1] / "module_utils" / "metallb_samples"
# pools with serviceAllocation, L2 with interfaces and node selectors, BGP with a community alias and
# local-pref, a peer with a BFD profile (MetalLB's examples), plus the pools they name (referenced.yaml)
MIGRATION = [
    "ipaddresspool_with_selector.manifest",
    "doc_pools_auto_assign.manifest",
    "doc_l2_interfaces.manifest",
    "doc_l2_interfaces_union.manifest",
    "doc_l2_preferred_and_service_selectors.manifest",
    "bgpadvertisement_community_alias.manifest",
    "bgppeer_with_bfdprofile.manifest",
    "referenced.manifest",
]
MIGRATION_NOT_CARRIED = [
    ("IPAddressPool", "ippool-ns-service-alloc-sample", "spec.serviceAllocation.namespaceSelectors"),
    ("L2Advertisement", "prefer-edge", "spec.preferredNodeSelectors"),
    ("L2Advertisement", "frontend-services", "spec.serviceSelectors"),
    ("L2Advertisement", "backend-services", "spec.serviceSelectors"),
]
# services that use the migrated pools: one by serviceAllocation (namespace and label), one by name
SERVICES = [
    {"namespace": "namespace-a", "name": "api", "ports": [{"port": 443}], "labels": {"app": "bar"}},
    {"namespace": "shop", "name": "web", "ports": [{"port": 80}], "address_pool": "bgp-with-advertisement"},
]
NODES = ["hostB", "node1"]


def sources() -> list[str]:
    return [str(SAMPLES / name) for name in MIGRATION]


def test_writes_the_group_vars_file_once(tmp_path, capsys):
    dest = tmp_path / "metallb.yml"
    args = {"src": sources(), "dest": str(dest), "_ansible_check_mode": True, "_ansible_diff": True}
    code, predicted = run_module(metallb_import.main, args, capsys)
    assert code == 0
    assert predicted["changed"] is True
    assert not dest.exists()
    assert predicted["diff"]["before"] == ""

    code, done = run_module(metallb_import.main, dict(args, _ansible_check_mode=False), capsys)
    assert done["changed"] is True
    assert done["diff"]["after"] == predicted["diff"]["after"] == dest.read_text()
    assert yaml.safe_load(dest.read_text()) == done["inventory"]
    assert [(n["kind"], n["name"], n["field"]) for n in done["not_carried"]] == MIGRATION_NOT_CARRIED

    for check_mode in (True, False):
        code, again = run_module(metallb_import.main, dict(args, _ansible_check_mode=check_mode), capsys)
        assert again["changed"] is False
        assert "diff" not in again


def test_the_result_passes_validate(capsys):
    code, migrated = run_module(metallb_import.main, {"src": sources()}, capsys)
    assert code == 0
    inventory = migrated["inventory"]
    assert inventory["lb_bgp_peers"][0]["bfd"] == {"enabled": True, "min_rx_ms": 380, "min_tx_ms": 270, "multiplier": 3}
    assert inventory["lb_l2_advertisements"][2] == {
        "name": "example-advertisement10",
        "pools": ["pool1"],
        "nodes": ["hostB"],
        "interfaces": ["ens18"],
    }
    code, result = run_module(
        validate.main,
        {
            "pools": inventory["lb_pools"],
            "services": SERVICES,
            "l2_advertisements": inventory["lb_l2_advertisements"],
            "bgp_advertisements": inventory["lb_bgp_advertisements"],
            "nodes": NODES,
        },
        capsys,
    )
    assert code == 0, result
    assert result["errors"] == []


def test_documents_given_as_data(capsys):
    documents = yaml.safe_load_all((SAMPLES / "bgppeer_withsecret.manifest").read_text())
    code, result = run_module(metallb_import.main, {"documents": list(documents)}, capsys)
    assert code == 0
    assert result["changed"] is False
    assert result["inventory"]["lb_bgp_peers"][0]["hold_time"] == 540
    assert [n["field"] for n in result["not_carried"]] == ["spec.keepaliveTime", "spec.passwordSecret"]


def test_bad_input_fails_naming_the_file_document_and_field(tmp_path, capsys):
    bad = tmp_path / "pools.yaml"
    bad.write_text(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/33]}\n"
    )
    code, result = run_module(metallb_import.main, {"src": [str(tmp_path)]}, capsys)
    assert code == 1
    assert result["field"] == f"{bad}[0] IPAddressPool/p spec.addresses[0]"
    assert result["msg"].startswith(f"{bad}[0] IPAddressPool/p spec.addresses[0]: is not a valid CIDR")


def test_unreadable_yaml_fails_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("spec: [unclosed\n")
    code, result = run_module(metallb_import.main, {"src": [str(bad)]}, capsys)
    assert code == 1
    assert result["msg"].startswith(f"{bad}: cannot read it")
