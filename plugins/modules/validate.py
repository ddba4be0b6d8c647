#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: validate
short_description: Check pools, services and announcements before anything is applied
version_added: 0.1.0
description:
  - Checks a whole desired state - address pools, services, the L2 and BGP advertisements that announce
    the pools, and optionally where the pods of each service run - and reports what will not work
    (RV(errors)) and what works differently than it probably should (RV(validation_warnings)).
  - "Errors: a requested IP that no pool owns, a requested pool that does not exist or does not own the
    requested IP, addresses from two pools, a pool that refuses the service (C(service_allocation)),
    no pool able to assign automatically, two services requesting the same IP that can never share it
    (keys differ, policies or selectors differ, or a (protocol, port) pair overlaps), overlapping pools,
    an advertisement of an unknown pool, L2 + Local or BGP + Local with no pod on any node that may
    announce (nobody answers)."
  - "Warnings: a sharing group (same O(services[].sharing_key)) the allocator will split (policies or
    selectors differ, overlapping ports, requested IPs that disagree, different pools), L2 + Local where
    some node that may be elected runs no pod of the service (the elected node may have no pod, and then
    nobody answers), BGP + Local where pods get unequal shares of the traffic (with the shares under
    both policies), pods on nodes that do not announce, a pool no advertisement announces."
  - Instead of the placement, the shape of a service's workload (O(workloads)) can be given - DaemonSet,
    or Deployment replicas with spread or anti-affinity - and what it guarantees is checked.
  - Returns, per service with a O(placement) (or a O(workloads) entry), the expected share of its
    traffic each pod gets under its policy and announcement mode, and under the other policy for comparison.
  - The task fails when RV(errors) is not empty. Warnings are also shown as Ansible warnings.
  - Exhaustion of a pool is not predicted; that needs the ledger (run M(baremetal.lb.allocate) in check mode).
  - See C(docs/validate.md) in the collection for what each finding means and how to fix it.
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - baremetal.lb.service.services
attributes:
  check_mode:
    description: Can run in check mode and return the same result; the module never changes anything.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  idempotent:
    description: The same input always gives the same result.
    support: full
options:
  pools:
    description:
      - The address pools, each a dict as the options of M(baremetal.lb.address_pool) -
        C(name), C(addresses), C(auto_assign), C(avoid_buggy_ips), C(service_allocation). Any other key
        is refused, naming its path (for example C(pools[0].avoid_bugy_ips)).
      - Names follow the rules of O(baremetal.lb.address_pool#module:name) (Kubernetes object names).
      - Pools must not overlap; that is reported as an error naming both pools and both ranges.
    type: list
    elements: dict
    default: []
  l2_advertisements:
    description:
      - Which pools are announced over Layer 2 (ARP/NDP), and from which nodes - the entries of the
        inventory's C(lb_l2_advertisements), as they are.
      - A key not listed here is refused, naming its path (for example C(l2_advertisements[0].node)); a value of
        the wrong type is refused naming its path and the value.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - A name, for your own reference.
          - A Kubernetes object name - a DNS subdomain (RFC 1123), as for pools.
        type: str
      pools:
        description: Names of the pools announced. Empty or unset means every pool (as in MetalLB).
        type: list
        elements: str
      nodes:
        description:
          - Nodes that may announce (be elected). Empty or unset means every node of O(nodes).
        type: list
        elements: str
      interfaces:
        description:
          - Interfaces the speakers answer ARP/NDP on for these pools. Empty or unset means the node's
            C(lb_interfaces). Not used by the checks; accepted so the inventory's advertisements pass as they are.
        type: list
        elements: str
  bgp_advertisements:
    description:
      - Which pools are announced over BGP, and from which nodes - the entries of the inventory's
        C(lb_bgp_advertisements), as they are. When a pool is announced both over L2 and BGP, its mode is
        BGP and the traffic shares are given for BGP.
      - A key not listed here is refused, naming its path (for example C(bgp_advertisements[0].local_preference));
        a value of the wrong type is refused naming its path and the value (for example
        C(bgp_advertisements[0].local_pref)).
      - C(peers), C(communities), C(large_communities), C(local_pref), C(aggregation_length) and
        C(aggregation_length_v6) are the speaker's BGP policy; they are checked here but do not change the
        findings.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - A name, for your own reference.
          - A Kubernetes object name - a DNS subdomain (RFC 1123), as for pools.
        type: str
      pools:
        description: Names of the pools announced. Empty or unset means every pool (as in MetalLB).
        type: list
        elements: str
      nodes:
        description: Nodes that announce. Empty or unset means every node of O(nodes).
        type: list
        elements: str
      peers:
        description:
          - The BGP peers (of C(lb_bgp_peers)) the routes go to, each by its name or address. Empty or unset
            means every peer.
        type: list
        elements: str
      communities:
        description:
          - Standard communities attached to the routes, each a string V(ASN:VALUE) with both numbers from 0 to
            65535 (for example V(64500:100); quote it in YAML, which otherwise reads it as a number), or one of
            the well-known names V(no-export), V(no-advertise), V(no-export-subconfed), V(blackhole) (in any case).
        type: list
        elements: str
      large_communities:
        description:
          - Large communities (RFC 8092) attached to the routes, each a string V(GLOBAL:LOCAL1:LOCAL2) with
            three numbers from 0 to 4294967295 (for example V(64500:1:100)).
        type: list
        elements: str
      local_pref:
        description: LOCAL_PREF of the routes, for iBGP peers - an integer from 0 to 4294967295.
        type: int
      aggregation_length:
        description:
          - Prefix length of the IPv4 routes announced (0 to 32); 32, a route per address, when unset.
        type: int
      aggregation_length_v6:
        description:
          - Prefix length of the IPv6 routes announced (0 to 128); 128, a route per address, when unset.
        type: int
  nodes:
    description:
      - Names of all nodes. Without it, an advertisement without C(nodes) is taken to cover only the
        nodes named in O(placement), so nodes without pods cannot be spotted.
    type: list
    elements: str
    default: []
  placement:
    description:
      - >-
        Where the pods of each service run, as a mapping of C(namespace/name) to a mapping of node name
        to the number of pods on that node, for example C({"web/frontend": {"node-a": 2, "node-b": 1}}).
      - Without a placement (or a O(workloads) entry) a service gets no RV(traffic) entry and no coverage
        or balance checks.
    type: dict
    default: {}
  workloads:
    description:
      - The shape of each service's workload, when the placement is not known yet - a mapping of
        C(namespace/name) to the O(baremetal.lb.service_manifest#module:workload) dict of
        M(baremetal.lb.service_manifest) (C(kind), C(replicas), C(spread), C(anti_affinity); C(image) and
        C(container_port) are ignored here), so the same dict serves both modules.
      - Used for a service without a O(placement) entry. Under V(Local) it checks what the shape
        guarantees over O(nodes) - a DaemonSet covers every node; a Deployment spread with maxSkew 1 or with
        required anti-affinity covers every node when it has at least one replica per node, and is balanced
        when the replica count is a multiple of the node count (or below it); without either nothing is
        guaranteed. RV(traffic) then shows one placement the shape allows.
    type: dict
    default: {}
seealso:
  - module: baremetal.lb.service_manifest
  - module: baremetal.lb.allocate
  - name: MetalLB traffic policies
    description: The model the expected traffic shares follow.
    link: https://metallb.universe.tf/usage/#traffic-policies
notes:
  - C(warnings) is a reserved key in Ansible results, so the warning findings come back as
    RV(validation_warnings).
"""

EXAMPLES = r"""
# Validate, then render, then apply. Paste into a play on a host with
# kubernetes.core installed and a kubeconfig; every task runs on the controller.
- name: Load balancers for the web tier
  hosts: localhost
  gather_facts: false
  vars:
    lb_pools:
      - name: lan
        addresses: [198.51.100.100-198.51.100.120]
      - name: routed
        addresses: [203.0.113.0/24]
    lb_services:
      - namespace: web
        name: frontend
        ports: [{port: 80}, {port: 443}]
        selector: {app: frontend}
        external_traffic_policy: Local
        address_pool: routed
    lb_nodes: [node-a, node-b, node-c]
  tasks:
    - name: Check the desired state before anything is applied
      baremetal.lb.validate:
        pools: "{{ lb_pools }}"
        services: "{{ lb_services }}"
        l2_advertisements:
          - pools: [lan]
        bgp_advertisements:
          - pools: [routed]
        nodes: "{{ lb_nodes }}"
        placement:
          web/frontend: {node-a: 2, node-b: 1}
      register: lb_check

    - name: Show the share of traffic each pod of web/frontend can expect
      ansible.builtin.debug:
        msg: "{{ lb_check.traffic['web/frontend'].per_pod }}"

    - name: Put the pools in the ledger
      baremetal.lb.address_pool:
        name: "{{ item.name }}"
        addresses: "{{ item.addresses }}"
      loop: "{{ lb_pools }}"

    - name: Give the services their addresses
      baremetal.lb.allocate:
        services: "{{ lb_services }}"
      register: lb_allocation

    - name: Render the Service and a Deployment spread one pod per node
      baremetal.lb.service_manifest:
        service: "{{ item }}"
        addresses: >-
          {{ lb_allocation.allocations
             | selectattr('namespace', 'equalto', item.namespace)
             | selectattr('name', 'equalto', item.name) | first }}
        workload:
          kind: Deployment
          image: registry.example.org/frontend:1.4
          replicas: 3
          container_port: 8080
      loop: "{{ lb_services }}"
      register: lb_manifests

    - name: Apply them
      kubernetes.core.k8s:
        state: present
        definition: "{{ lb_manifests.results | map(attribute='resources') | flatten }}"

# Only the checks: keep going on errors and show them
- name: Check a DNS service split over TCP and UDP on one IP
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check
      baremetal.lb.validate:
        pools: [{name: lan, addresses: [198.51.100.100-198.51.100.120]}]
        services:
          - {namespace: dns, name: dns-tcp, ports: [{port: 53, protocol: TCP}], sharing_key: dns,
             load_balancer_ips: [198.51.100.110], external_traffic_policy: Local, selector: {app: dns}}
          - {namespace: dns, name: dns-udp, ports: [{port: 53, protocol: UDP}], sharing_key: dns,
             load_balancer_ips: [198.51.100.110], external_traffic_policy: Local, selector: {app: dns}}
        l2_advertisements: [{pools: [lan]}]
      register: lb_check
      ignore_errors: true

    - name: Show what was found
      ansible.builtin.debug:
        msg: "{{ lb_check.errors + lb_check.validation_warnings }}"
"""

RETURN = r"""
errors:
  description:
    - What cannot work as written. The task fails when this is not empty.
    - C(service) is V(null) for findings about pools or advertisements.
  returned: always
  type: list
  elements: dict
  sample:
    - service: dns/dns-udp
      field: services[1]
      message: >-
        requests 198.51.100.110, as dns/dns-tcp does, but the two can never share it: it is held by
        dns/dns-tcp, whose backends differ (Local with selector app=dns vs Local with selector app=other)
  contains:
    service:
      description: The service concerned, as C(namespace/name), or V(null).
      type: str
      returned: always
      sample: dns/dns-udp
    field:
      description:
        - The option to fix, by its path in this task's options - C(services[1]) (its index in O(services)),
          C(pools[2].addresses[0]), C(l2_advertisements[0].pools), C(placement['shop/web']).
        - The filter C(baremetal.lb.lb_validation_message) turns it into the inventory variable of
          C(playbooks/site.yml).
      type: str
      returned: always
      sample: services[1]
    message:
      description: What is wrong and how to fix it.
      type: str
      returned: always
      sample: requests 198.51.100.5, which no pool owns; add it to a pool or request another address
validation_warnings:
  description:
    - What works, but probably not as meant. Same form as RV(errors).
  returned: always
  type: list
  elements: dict
  sample:
    - service: web/frontend
      field: services[0]
      message: >-
        BGP + Local spreads traffic per node, not per pod: node-a: 2 pods x 25%, node-b: 1 pod x 50%
        (under Cluster: node-a: 2 pods x 33.3%, node-b: 1 pod x 33.3%); spread the pods so every node runs
        the same number: topologySpreadConstraints with maxSkew 1 on kubernetes.io/hostname, pod
        anti-affinity on kubernetes.io/hostname, or a DaemonSet
  contains:
    service:
      description: The service concerned, as C(namespace/name), or V(null).
      type: str
      returned: always
      sample: web/frontend
    field:
      description: The option to fix, by its path in this task's options, as in RV(errors).
      type: str
      returned: always
      sample: services[0]
    message:
      description: What happens and how to change it.
      type: str
      returned: always
      sample: >-
        its pool 'lan' is in no l2_advertisements or bgp_advertisements entry: it gets an address but
        nobody announces it
traffic:
  description:
    - For each service with a O(placement) whose pool is announced, keyed by C(namespace/name), the
      expected share of the service's traffic each pod gets.
    - Shares are fractions rounded to 4 decimals that sum to exactly 1 (largest remainder), or are all
      0 when no node can take the traffic.
  returned: always
  type: dict
  sample:
    web/frontend:
      mode: bgp
      policy: Local
      per_pod: [{node: node-a, share: 0.25}, {node: node-a, share: 0.25}, {node: node-b, share: 0.5}]
      other_policy_per_pod:
        - {node: node-a, share: 0.3334}
        - {node: node-a, share: 0.3333}
        - {node: node-b, share: 0.3333}
      note: "BGP + Local: each node with a pod is one equal ECMP path, split evenly over that node's pods"
  contains:
    mode:
      description: How the IP is announced, V(l2) or V(bgp) (V(bgp) when both announce the pool).
      type: str
      returned: always
      sample: bgp
    policy:
      description: The service's O(services[].external_traffic_policy).
      type: str
      returned: always
      sample: Local
    per_pod:
      description: One entry per pod, in placement order, with its share under the service's policy.
      type: list
      elements: dict
      returned: always
      sample: [{node: node-a, share: 0.25}, {node: node-a, share: 0.25}, {node: node-b, share: 0.5}]
    other_policy_per_pod:
      description: The same under the other policy, for comparison.
      type: list
      elements: dict
      returned: always
      sample: [{node: node-a, share: 0.3334}, {node: node-a, share: 0.3333}, {node: node-b, share: 0.3333}]
    leader:
      description:
        - Under L2, the node the figures assume is elected (the first node, in placement order, that may
          announce and runs a pod). The speakers elect the real leader per IP; under L2 + Local its pods
          take all the traffic.
      type: str
      returned: when mode is l2
      sample: node-a
    note:
      description: The traffic model that applies, in one sentence.
      type: str
      returned: always
      sample: "BGP + Local: each node with a pod is one equal ECMP path, split evenly over that node's pods"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_desired_state, validate

# parse_advertisement checks each advertisement (module_utils.advertisements) and names
# the field with its index (bgp_advertisements[0].local_pref); the suboptions are documented above.
ADVERTISEMENT_SPEC = {"type": "list", "elements": "dict", "default": []}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "pools": {"type": "list", "elements": "dict", "default": []},
            # parse_service checks each service and names the field with its index
            # (services[3].ports[0].port); the suboptions are documented above.
            "services": {"type": "list", "elements": "dict", "default": []},
            "l2_advertisements": ADVERTISEMENT_SPEC,
            "bgp_advertisements": ADVERTISEMENT_SPEC,
            "nodes": {"type": "list", "elements": "str", "default": []},
            "placement": {"type": "dict", "default": {}},
            "workloads": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        state = parse_desired_state(
            pools=params.get("pools"),
            services=params.get("services"),
            l2_advertisements=params.get("l2_advertisements"),
            bgp_advertisements=params.get("bgp_advertisements"),
            nodes=params.get("nodes"),
            placement=params.get("placement"),
            workloads=params.get("workloads"),
        )
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    report = validate(state)
    errors = [f.to_dict() for f in report.errors]
    result = {
        "changed": False,
        "errors": errors,
        "validation_warnings": [f.to_dict() for f in report.warnings],
        "traffic": report.traffic,
    }
    for finding in report.warnings:
        module.warn(f"{finding.service or 'desired state'}: {finding.message}")
    if report.errors:
        first = report.errors[0]
        count = len(report.errors)
        module.fail_json(
            msg=f"{count} error{'s' if count > 1 else ''} in the desired state; first: "
            f"{first.service or 'desired state'}: {first.message}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
