#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: speaker_status
short_description: Read the speakers' status and check that the nodes agree
version_added: 0.1.0
description:
  - Two modes. With O(url) (the default), run on each speaker host, it reads that node's C(/status) from the
    speaker's status API, which listens on the loopback, and returns it as RV(status).
  - With O(views), run once (on the control node), it puts the nodes' documents side by side and returns per
    service IP its mode, its leader (Layer 2) or announcing nodes (BGP), each node's view, and where the nodes
    disagree. Two nodes announcing one Layer 2 IP is an error; nodes naming different leaders is a disagreement.
  - With O(fail_on_error), the aggregation fails when there is an error (or, with O(fail_on_disagreement), a
    disagreement), after returning everything.
author:
  - baremetal.lb developers (@baremetal-lb)
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Never changes anything.
options:
  url:
    description:
      - The speaker's status URL, read from the host the module runs on.
      - Ignored when O(views) is given.
    type: str
    default: http://127.0.0.1:7473/status
  timeout:
    description: Seconds to wait for the status API.
    type: float
    default: 5.0
  views:
    description:
      - The nodes' status documents (each as RV(status) returned by this module in O(url) mode). Gives the
        aggregation mode.
      - An element with an C(error) key (and C(node)) stands for a node whose status could not be read.
    type: list
    elements: dict
  fail_on_error:
    description: In aggregation mode, fail when RV(errors) is not empty or a node could not be read.
    type: bool
    default: false
  fail_on_disagreement:
    description: In aggregation mode, also fail when RV(disagreements) is not empty.
    type: bool
    default: false
notes:
  - The status API is C(lb-speaker)'s (see docs/role.md); C(lb-speaker status) prints the same for one node.
seealso:
  - module: baremetal.lb.allocate
"""

EXAMPLES = r"""
- name: Read each speaker's status (the API listens on the host's loopback)
  baremetal.lb.speaker_status:
  register: lb_node_status

- name: Put the views side by side and stop if two nodes announce one L2 IP
  baremetal.lb.speaker_status:
    views: "{{ ansible_play_hosts | map('extract', hostvars, ['lb_node_status', 'status']) | list }}"
    fail_on_error: true
  run_once: true
  delegate_to: localhost
  register: lb_cluster

- name: Show who leads each service IP
  ansible.builtin.debug:
    msg: "{{ item.address }} {{ item.mode }} {{ item.leader or item.announcing_nodes | join(',') }}"
  loop: "{{ lb_cluster.addresses }}"
  run_once: true
"""

RETURN = r"""
status:
  description: This node's status document, as the speaker's C(/status) returns it (O(url) mode).
  returned: when O(views) is not given
  type: dict
  sample: {"node": "node1", "members": [{"name": "node1", "alive": true}], "announcements": [], "bgp": {"peers": []}}
addresses:
  description: Per service IP, in address order (O(views) mode).
  returned: when O(views) is given
  type: list
  elements: dict
  contains:
    address:
      description: The service IP.
      type: str
      sample: 198.51.100.100
    services:
      description: The services (C(namespace/name)) on this IP.
      type: list
      elements: str
      sample: [demo/web]
    mode:
      description: C(l2) or C(bgp).
      type: str
      sample: l2
    leader:
      description: The node every node names as leader (Layer 2), or null when they disagree or it is BGP.
      type: str
      sample: node2
    announcing_nodes:
      description: Nodes that say they announce the IP.
      type: list
      elements: str
      sample: [node2]
    views:
      description: Each node's view - C(announcing), C(leader), C(reason).
      type: dict
      sample: {"node1": {"announcing": false, "leader": "node2", "reason": "node2 leads"}}
    agreed:
      description: Whether the nodes agree on this IP.
      type: bool
      sample: true
    not_configured_on:
      description: Nodes that returned a status but do not have this IP (not candidates for it).
      type: list
      elements: str
      returned: when some node lacks the IP
      sample: [node3]
errors:
  description: Findings that mean lost or flapping traffic, such as two nodes answering ARP for one IP.
  returned: when O(views) is given
  type: list
  elements: str
  sample: ["198.51.100.100: 2 nodes answer ARP/NDP for it (node1, node2); exactly one may"]
disagreements:
  description: Nodes naming different leaders for one IP (normal for a moment during a failover).
  returned: when O(views) is given
  type: list
  elements: str
  sample: []
nodes:
  description: Nodes whose status was read.
  returned: when O(views) is given
  type: list
  elements: str
  sample: [node1, node2, node3]
unreachable:
  description: Nodes whose status could not be read, with the error.
  returned: when O(views) is given
  type: list
  elements: dict
  sample: [{"node": "node3", "error": "cannot read http://127.0.0.1:7473/status: connection refused"}]
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url
from ansible_collections.baremetal.lb.plugins.module_utils.speaker_status import aggregate, check_document


def fetch(url: str, timeout: float) -> dict:
    """One speaker's /status document."""
    with open_url(url, timeout=timeout, validate_certs=True) as resp:
        return check_document(json.loads(resp.read()), url)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "default": "http://127.0.0.1:7473/status"},
            "timeout": {"type": "float", "default": 5.0},
            "views": {"type": "list", "elements": "dict"},
            "fail_on_error": {"type": "bool", "default": False},
            "fail_on_disagreement": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["views"] is None:
        try:
            status = fetch(params["url"], params["timeout"])
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"cannot read {params['url']}: {exc}")
        module.exit_json(changed=False, status=status)
    result = aggregate(params["views"])
    problems = list(result["errors"]) + [f"{u['node']}: {u['error']}" for u in result["unreachable"]]
    if params["fail_on_disagreement"]:
        problems += result["disagreements"]
    if params["fail_on_error"] and problems:
        module.fail_json(msg="; ".join(problems), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
