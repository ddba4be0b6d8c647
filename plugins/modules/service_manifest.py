#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: service_manifest
short_description: Render the Kubernetes Service, and optionally its workload, for one service and its allocation
version_added: 0.1.0
description:
  - Renders, for one service and the addresses allocated to it, the Kubernetes C(Service) of type
    C(LoadBalancer) - ports, C(externalTrafficPolicy), the addresses, the C(metallb.io/allow-shared-ip)
    and C(metallb.io/address-pool) annotations where the service sets a sharing key or a pool, and a
    fixed C(healthCheckNodePort) when the policy is V(Local) and one is asked for.
  - The addresses are written the way MetalLB reads them, so a cluster can move between MetalLB and this
    collection without re-addressing - by default the C(metallb.io/loadBalancerIPs) annotation
    (dual-stack capable), or with O(ip_field=spec) the older C(spec.loadBalancerIP). Never both - MetalLB
    refuses a Service that has both.
  - Optionally renders the workload behind it - a C(Deployment) spread one pod per node with
    C(topologySpreadConstraints) (maxSkew 1 on C(kubernetes.io/hostname)) and/or pod anti-affinity
    (required or preferred) on C(kubernetes.io/hostname), or a C(DaemonSet). Both make a V(Local) policy
    work well - every node that may announce runs a pod, and every node carries the same number of pods.
  - The module is pure - it returns RV(resources), ready for the C(definition) option of
    C(kubernetes.core.k8s). With O(dest) it also writes one YAML file per resource.
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - baremetal.lb.service
attributes:
  check_mode:
    description: In check mode the files under O(dest) are not written; C(changed) says whether they would be.
    support: full
  diff_mode:
    description: With O(dest), shows the difference between the files present and the ones rendered.
    support: full
  idempotent:
    description: The same input renders the same resources; files are written only when their content changes.
    support: full
options:
  addresses:
    description:
      - The addresses allocated to the service - a list of at most two IPs (one per family), or one entry
        of the C(allocations) returned by M(baremetal.lb.allocate) or M(baremetal.lb.pool_info) (a dict with
        C(namespace), C(name), C(addresses), and optionally C(pool), C(ports), C(sharing_key); any other key is
        refused), which must be this service's.
      - When unset, the service's O(service.load_balancer_ips) are used; when those are unset too, the
        Service carries no address and the load balancer picks one.
    type: raw
  ip_field:
    description:
      - Where the addresses go. V(annotation) - C(metallb.io/loadBalancerIPs), one or two addresses.
        V(spec) - C(spec.loadBalancerIP), one address only (deprecated by Kubernetes since 1.24).
    type: str
    choices: [annotation, spec]
    default: annotation
  health_check_node_port:
    description:
      - A fixed C(healthCheckNodePort) for the Service, where kube-proxy answers C(/healthz) with
        200 when the node has a local endpoint and 503 when it has none.
      - Only with O(service.external_traffic_policy=Local). Must lie in the cluster's node port range
        (usually 30000-32767).
    type: int
  workload:
    description:
      - The workload behind the service. Its pods carry the service's O(service.selector) as labels,
        which is therefore required.
      - The workload and its container take the name of the service (O(service.name)).
    type: dict
    suboptions:
      kind:
        description: V(Deployment), or V(DaemonSet) for one pod on every node.
        type: str
        choices: [Deployment, DaemonSet]
        default: Deployment
      image:
        description: Container image.
        type: str
        required: true
      replicas:
        description: Number of pods of a V(Deployment) (default 1). Not allowed with a V(DaemonSet).
        type: int
      container_port:
        description:
          - Port the container listens on. With a single service port, the Service's C(targetPort).
          - Defaults to the service ports.
        type: int
      spread:
        description:
          - Add a C(topologySpreadConstraints) entry with maxSkew 1 on C(kubernetes.io/hostname) and
            C(whenUnsatisfiable=DoNotSchedule) - the node counts of pods differ by at most one, so with
            at least as many replicas as nodes every node runs a pod.
          - Defaults to V(true) for a V(Deployment); not allowed with a V(DaemonSet).
        type: bool
      anti_affinity:
        description:
          - Pod anti-affinity on C(kubernetes.io/hostname) between the pods of the service.
            V(required) - never two on one node (pods beyond the number of nodes stay pending).
            V(preferred) - the scheduler tries. Needs O(service.selector). Not allowed with a V(DaemonSet).
        type: str
        choices: [none, preferred, required]
        default: none
  dest:
    description:
      - A directory to write the resources to, one file per resource named
        C(<namespace>_<name>_<kind>.yaml). Created when missing.
      - The files are plain YAML - a mapping used in two places (the selector and C(matchLabels)) is written
        out in full at each, without YAML anchors and aliases.
    type: path
seealso:
  - module: baremetal.lb.validate
  - module: baremetal.lb.allocate
  - name: kubernetes.core.k8s
    description: Applies the rendered resources.
    link: https://docs.ansible.com/ansible/latest/collections/kubernetes/core/k8s_module.html
"""

EXAMPLES = r"""
# Validate, then render, then apply (needs kubernetes.core and a kubeconfig).
- name: Check that web/frontend can work as desired
  baremetal.lb.validate:
    pools:
      - name: routed
        addresses: [203.0.113.0/24]
    services:
      - &frontend
        namespace: web
        name: frontend
        ports: [{port: 443}]
        selector: {app: frontend}
        external_traffic_policy: Local
        load_balancer_ips: [203.0.113.10]
    bgp_advertisements:
      - pools: [routed]
    nodes: [node-a, node-b, node-c]
    placement:
      web/frontend: {node-a: 1, node-b: 1, node-c: 1}
  delegate_to: localhost

- name: Render the Service and a Deployment with one pod on each of the 3 nodes
  baremetal.lb.service_manifest:
    service: *frontend
    addresses: [203.0.113.10]
    health_check_node_port: 32100
    workload:
      kind: Deployment
      image: registry.example.org/frontend:1.4
      replicas: 3
      container_port: 8443
      spread: true
      anti_affinity: required
    dest: "{{ playbook_dir }}/manifests"
  delegate_to: localhost
  register: frontend_manifests

- name: Apply them
  kubernetes.core.k8s:
    state: present
    definition: "{{ frontend_manifests.resources }}"
  delegate_to: localhost

# The allocation straight from baremetal.lb.allocate, and a DaemonSet
- name: A pool in the ledger
  baremetal.lb.address_pool:
    name: lan
    addresses: [198.51.100.100-198.51.100.120]
  delegate_to: localhost

- name: Give dns/resolver an address
  baremetal.lb.allocate:
    services:
      - &resolver
        namespace: dns
        name: resolver
        ports: [{port: 53, protocol: UDP}]
        selector: {app: resolver}
        external_traffic_policy: Local
  delegate_to: localhost
  register: lb_allocation

- name: Render dns/resolver with a pod on every node
  baremetal.lb.service_manifest:
    service: *resolver
    addresses: "{{ lb_allocation.allocations | selectattr('name', 'equalto', 'resolver') | first }}"
    workload:
      kind: DaemonSet
      image: registry.example.org/resolver:2.0
  delegate_to: localhost
  register: resolver_manifests
"""

RETURN = r"""
resources:
  description: The rendered resources, the C(Service) first, ready for C(kubernetes.core.k8s).
  returned: always
  type: list
  elements: dict
  sample:
    - apiVersion: v1
      kind: Service
      metadata:
        name: frontend
        namespace: web
        annotations: {metallb.io/loadBalancerIPs: 203.0.113.10}
      spec:
        type: LoadBalancer
        ports: [{name: tcp-443, port: 443, protocol: TCP, targetPort: 8443}]
        selector: {app: frontend}
        externalTrafficPolicy: Local
        healthCheckNodePort: 32100
        ipFamilies: [IPv4]
        ipFamilyPolicy: SingleStack
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: frontend, namespace: web, labels: {app: frontend}}
      spec:
        replicas: 3
        selector: {matchLabels: {app: frontend}}
        template:
          metadata: {labels: {app: frontend}}
          spec:
            containers:
              - name: frontend
                image: registry.example.org/frontend:1.4
                ports: [{containerPort: 8443, protocol: TCP}]
            topologySpreadConstraints:
              - maxSkew: 1
                topologyKey: kubernetes.io/hostname
                whenUnsatisfiable: DoNotSchedule
                labelSelector: {matchLabels: {app: frontend}}
files:
  description: The files under O(dest), one per resource, in the order of RV(resources).
  returned: when O(dest) is set
  type: list
  elements: path
  sample: [/srv/manifests/web_frontend_service.yaml, /srv/manifests/web_frontend_deployment.yaml]
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.manifest import (
    HAS_YAML,
    IP_FIELDS,
    current_text,
    file_name,
    parse_addresses,
    parse_workload,
    render,
    to_yaml,
)
from ansible_collections.baremetal.lb.plugins.module_utils.service import parse_service
from ansible_collections.baremetal.lb.plugins.module_utils.workload import ANTI_AFFINITY, WORKLOAD_KINDS


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            # parse_service checks the service and names the field (service.ports[0].port);
            # the suboptions are documented above.
            "service": {"type": "dict", "required": True},
            "addresses": {"type": "raw"},
            "ip_field": {"type": "str", "choices": list(IP_FIELDS), "default": "annotation"},
            "health_check_node_port": {"type": "int"},
            "workload": {
                "type": "dict",
                "options": {
                    "kind": {"type": "str", "choices": list(WORKLOAD_KINDS), "default": "Deployment"},
                    "image": {"type": "str", "required": True},
                    "replicas": {"type": "int"},
                    "container_port": {"type": "int"},
                    "spread": {"type": "bool"},
                    "anti_affinity": {"type": "str", "choices": list(ANTI_AFFINITY), "default": "none"},
                },
            },
            "dest": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        service = parse_service(params["service"])
        addresses = parse_addresses(params["addresses"], service)
        # the workload option, or the service's own workload key (lb_services entries carry it)
        if params["workload"]:
            workload = parse_workload(params["workload"], service)
        elif service.workload is not None:
            workload = parse_workload(params["service"]["workload"], service, "service.workload")
        else:
            workload = None
        resources = render(
            service,
            addresses,
            health_check_node_port=params["health_check_node_port"],
            ip_field=params["ip_field"],
            workload=workload,
        )
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)

    result: dict[str, object] = {"changed": False, "resources": resources}
    dest = params["dest"]
    if dest:
        if not HAS_YAML:
            module.fail_json(msg=missing_required_lib("PyYAML"))
        files, diffs = [], []
        for resource in resources:
            path = os.path.join(dest, file_name(resource))
            content = to_yaml(resource)
            before = current_text(path)
            files.append(path)
            if before == content:
                continue
            result["changed"] = True
            diffs.append({"before": before or "", "after": content, "before_header": path, "after_header": path})
            if not module.check_mode:
                os.makedirs(dest, exist_ok=True)
                tmp = f"{path}.tmp"
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(content)
                module.atomic_move(tmp, path)
        result["files"] = files
        if module._diff:
            result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
