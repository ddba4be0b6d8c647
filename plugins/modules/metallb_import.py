#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: metallb_import
short_description: Turn MetalLB's configuration objects into the lb_* inventory variables
version_added: 0.1.0
description:
  - Reads MetalLB's C(IPAddressPool), C(L2Advertisement), C(BGPAdvertisement), C(BGPPeer) (C(metallb.io/v1beta1)
    and C(v1beta2)), C(Community) and C(BFDProfile) objects - the files you C(kubectl apply), or
    C(kubectl get -o yaml) of them - and returns the inventory variables C(lb_pools), C(lb_l2_advertisements),
    C(lb_bgp_advertisements), C(lb_bgp_peers) and C(lb_bgp_asn) that do the same in this collection.
  - Every field that has no equivalent here is named in RV(not_carried) with the object's kind and name, the field
    path and the reason, for example C(BGPPeer/peer-with-secret spec.passwordSecret) (the inventory needs the
    password itself, from a vault) or C(L2Advertisement/prefer-edge spec.preferredNodeSelectors). Nothing is
    dropped silently.
  - "What maps: pools (CIDRs, ranges, IPv6, C(autoAssign), C(avoidBuggyIPs), C(serviceAllocation) priority,
    namespaces and serviceSelectors); advertisements (pools by name or by C(ipAddressPoolSelectors) on the pools'
    labels, C(interfaces), C(aggregationLength), C(aggregationLengthV6), C(localPref), communities including
    C(large:) ones and C(Community) aliases, C(peers)); node selectors on C(kubernetes.io/hostname) become node
    names (each host's C(lb_node_name), else its inventory name); peers (addresses, AS numbers, port, source
    address, hold and keepalive times, C(connectTime), TCP-MD5 password, C(ebgpMultiHop), graceful restart, the
    BFD profile's intervals and multiplier, the session's address families)."
  - The result is checked with the same rules as C(playbooks/site.yml) (the pools' parser, the pools' overlap
    rule, the advertisements' parser, the peers' checks); an object those rules refuse is listed in
    RV(not_carried) and left out, so what is returned or written is accepted by M(baremetal.lb.validate).
  - Input MetalLB itself would refuse - an unknown C(metallb.io) kind or C(spec) key, a malformed address, a
    missing required field, a reference to a pool, peer, BFD profile or community alias that is not in the
    input - fails the task with a message naming the document and the field.
  - Objects of other API groups (Services, Deployments) are listed in RV(not_carried) and otherwise left alone;
    Services keep working as they are, since the controller honours MetalLB's annotations.
  - Runs on the control node. From the command line -
    C(ansible localhost -m baremetal.lb.metallb_import -a "src=metallb/ dest=group_vars/all/metallb.yml").
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Translates and reports; O(dest) is not written, C(changed) says whether it would be.
  diff_mode:
    support: full
    description: With O(dest), shows the file before and after.
  idempotent:
    support: full
    description: The same objects give the same file, byte for byte; a second run reports no change.
options:
  src:
    description:
      - Files of MetalLB objects (YAML, several documents per file, or JSON), or directories whose C(*.yaml),
        C(*.yml) and C(*.json) files are read in name order (not recursively).
      - A C(kind=List) document (C(kubectl get -o yaml)) is opened.
    type: list
    elements: path
  documents:
    description:
      - MetalLB objects given as data, for example C(lookup('ansible.builtin.file', 'pools.yaml') | from_yaml_all).
      - Read after O(src).
    type: list
    elements: raw
  dest:
    description:
      - Write the variables to this YAML file (a C(group_vars) file, for example C(group_vars/all/metallb.yml)),
        with RV(not_carried) as comments at its top. The whole file is overwritten; keep your own variables
        (C(lb_services), C(lb_membership_secret)) in another file of the same group.
      - Its directory must exist.
    type: path
notes:
  - MetalLB's CRs live in one namespace; the namespace is not looked at, so give only the objects of the
    MetalLB you move from.
  - Services are not translated - they keep their C(metallb.io/) annotations, which the controller honours; list
    the ones the playbook should allocate for in C(lb_services).
seealso:
  - module: baremetal.lb.validate
  - name: MetalLB's configuration
    description: The objects this module reads. The migration step by step is in this collection's docs/kubernetes.md.
    link: https://metallb.io/configuration/
"""

EXAMPLES = r"""
- name: MetalLB's manifests to a group_vars file, check mode first (ansible-playbook migrate.yml --check --diff)
  baremetal.lb.metallb_import:
    src:
      - "{{ playbook_dir }}/metallb"          # a directory of the manifests you applied
    dest: "{{ playbook_dir }}/inventory/group_vars/all/metallb.yml"
  delegate_to: localhost
  register: migration

- name: Say what was not carried over
  ansible.builtin.debug:
    msg: "{{ item.kind }}/{{ item.name }} {{ item.field }}: {{ item.reason }}"
  loop: "{{ migration.not_carried }}"
  delegate_to: localhost

- name: Objects given as data, variables returned only
  baremetal.lb.metallb_import:
    documents:
      - apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: first-pool, namespace: metallb-system}
        spec:
          addresses: [192.168.10.0/24, 192.168.9.1-192.168.9.5, "fc00:f853:0ccd:e799::/124"]
      - apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: example, namespace: metallb-system}
        spec:
          ipAddressPools: [first-pool]
          interfaces: [eth0]
  delegate_to: localhost
  register: migrated

- name: The pools as this collection takes them
  ansible.builtin.debug:
    var: migrated.inventory.lb_pools
  delegate_to: localhost
"""

RETURN = r"""
inventory:
  description:
    - The inventory variables. C(lb_bgp_asn) is there when a peer is (MetalLB's C(myASN)).
  returned: always
  type: dict
  sample:
    lb_pools:
      - {name: first-pool, addresses: [192.168.10.0/24]}
    lb_l2_advertisements:
      - {name: example, pools: [first-pool], interfaces: [eth0]}
    lb_bgp_advertisements: []
    lb_bgp_peers: []
not_carried:
  description:
    - Each field not carried over, in input order. An empty RV(not_carried[].field) means the whole object.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The object's kind.
      type: str
      sample: BGPPeer
    name:
      description: The object's C(metadata.name).
      type: str
      sample: peer-with-secret
    field:
      description: The field path in MetalLB's spelling; empty for the whole object.
      type: str
      sample: spec.passwordSecret
    reason:
      description: Why, and what to do about it.
      type: str
      sample: "a reference to a Kubernetes Secret: the inventory needs the password itself; put it in a vault"
  sample:
    - kind: BGPPeer
      name: peer
      field: spec.vrf
      reason: "sessions in a Linux VRF are not supported: the session uses the main table"
dest:
  description: The file written (or, in check mode, that would be).
  returned: when O(dest) is set
  type: str
  sample: /srv/inventory/group_vars/all/metallb.yml
"""

import json
import os

try:
    import yaml
except ImportError:  # reported with missing_required_lib
    HAS_PYYAML = False
else:
    HAS_PYYAML = True

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.manifest import current_text, load_manifests
from ansible_collections.baremetal.lb.plugins.module_utils.metallb import group_vars_text, translate

SUFFIXES = (".yaml", ".yml", ".json")


def _files(paths: list[str]) -> list[str]:
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(SUFFIXES)]
        else:
            files.append(path)
    return files


def _read(path: str) -> list[tuple[str, object]]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        return [(f"{path}[0]", json.loads(text))]
    return [(f"{path}[{i}]", doc) for i, doc in enumerate(load_manifests(text))]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "list", "elements": "path"},
            "documents": {"type": "list", "elements": "raw"},
            "dest": {"type": "path"},
        },
        required_one_of=[("src", "documents")],
        supports_check_mode=True,
        add_file_common_args=True,
    )
    if not HAS_PYYAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    params = module.params
    documents: list[tuple[str, object]] = []
    sources = []
    for path in _files(params["src"] or []):
        try:
            documents += _read(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:  # the parsers' errors name the line
            module.fail_json(msg=f"{path}: cannot read it: {exc}", field="src")
        sources.append(path)
    if params["documents"]:
        documents += [(f"documents[{i}]", doc) for i, doc in enumerate(params["documents"])]
        sources.append(f"{len(params['documents'])} documents given to the task")
    try:
        migration = translate(documents)
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)

    result: dict[str, object] = {
        "changed": False,
        "inventory": migration.inventory,
        "not_carried": [note.to_dict() for note in migration.not_carried],
    }
    dest = params["dest"]
    if dest:
        content = group_vars_text(migration, sources)
        before = current_text(dest)
        result["dest"] = dest
        if before != content:
            result["changed"] = True
            if not module.check_mode:
                tmp = f"{dest}.tmp"
                try:
                    with open(tmp, "w", encoding="utf-8") as handle:
                        handle.write(content)
                except OSError as exc:
                    module.fail_json(msg=f"{dest}: cannot write it: {exc}", field="dest")
                module.atomic_move(tmp, dest)
            if module._diff:
                result["diff"] = {"before": before or "", "after": content, "before_header": dest, "after_header": dest}
        if os.path.exists(dest):
            file_args = module.load_file_common_arguments(params, path=dest)
            result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
