#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: allocate
short_description: Assign or release service IPs for a batch of services
version_added: 0.1.0
description:
  - Gives each service of O(services) its load-balancer addresses from the pools in the ledger
    (see M(baremetal.lb.address_pool)), or releases them (C(state=absent)), with MetalLB's rules.
  - Services are processed in list order in one ledger transaction. A service that keeps its spec keeps its
    addresses across runs.
  - Choice of addresses, in order. Requested addresses (C(load_balancer_ips)) must all lie in one pool and be free,
    or shareable. Else a requested pool (C(address_pool)) gives its lowest usable address per family.
    Else the pools whose O(services[].labels) and O(services[].namespace) match their C(service_allocation) are tried
    by priority, then the pools without C(service_allocation), in the order the pools were first defined;
    only pools with C(auto_assign). Inside a pool, its CIDRs and ranges are tried in declared order, lowest free
    address first; a pool gives at most one address per family. Requested addresses and pools ignore
    C(auto_assign); C(service_allocation) restrictions hold on every path.
  - Sharing. Two services may hold the same address only if both have the same non-empty C(sharing_key),
    their (protocol, port) pairs are disjoint, and they have the same backends (both Cluster, or both Local with
    identical selectors). TCP/53 and UDP/53 can share. A service alone on its address may change its key or
    ports in place.
  - A service that cannot get what it asks for keeps whatever it held before, and is listed in RV(failures)
    with the reason.
  - With O(pools), the pools are created or updated first, in the same transaction, so one task keeps pools and
    allocations together. That is also what lets check mode predict a first run - in check mode an
    M(baremetal.lb.address_pool) task saves nothing, so a later C(allocate) task would not see its pool.
  - The result's C(invocation.module_args) (shown with C(-vvv)) gives the number of services in place of the
    services themselves; RV(allocations) and RV(failures) name every service. Echoing 10,000 services doubled
    what Ansible had to parse, copy and hand to callbacks.
  - On ansible-core 2.19 and later, O(services) and O(pools) that hold only plain data (no template inside) are
    copied as they are instead of being rendered value by value; anything template-like is rendered by Ansible as
    usual.
  - When the task runs on the control node itself (the C(local) connection, as in a play on C(localhost)
    or with C(delegate_to) V(localhost)) without C(become), C(async) or an C(environment), the collection's
    action plugin runs this module's code in Ansible's own process instead of starting the module - same
    argument checks, result, errors, check mode, diff and masking of secrets. Elsewhere, or when the control
    node's Python lacks a library the options need (C(psycopg), C(kubernetes)), the module runs as usual.
    See docs/allocation.md, "Scale", for what this saves on large service lists.
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - baremetal.lb.ledger
  - baremetal.lb.cluster
attributes:
  check_mode:
    support: full
    description:
      - Runs the same allocation on a private in-memory copy of the ledger and reports it; the ledger file, its
        directory and its journal are not created or written.
      - Pools saved by earlier M(baremetal.lb.address_pool) tasks of the same check-mode run are not in the ledger;
        give them in O(pools) to predict a first run.
  diff_mode:
    support: full
    description: Shows, for each service whose allocation changes, its allocation before and after.
  idempotent:
    support: full
    description: A service whose spec did not change keeps its addresses; a second run reports no change.
options:
  services:
    description:
      - The services to allocate for (or release), processed in this order.
      - A key not listed here is refused, naming its path (for example C(services[0].ports[0].target_port)).
    type: list
    elements: dict
    required: true
    suboptions:
      namespace:
        description:
          - Kubernetes namespace, or any grouping name for hosts without Kubernetes.
          - A DNS label (RFC 1123), as Kubernetes requires of namespaces - lowercase letters, digits and C(-),
            starting and ending with a letter or digit, at most 63 characters.
        type: str
        default: default
      name:
        description:
          - Service name; C(namespace)/C(name) identifies the service in the ledger.
          - A DNS label (RFC 1035), as Kubernetes requires of Service names - lowercase letters, digits and C(-),
            starting with a letter and ending with a letter or digit, at most 63 characters.
          - With O(services[].state=absent) neither name is checked, so that an allocation saved by an earlier
            version, which did not check names, can still be released.
        type: str
        required: true
      ports:
        description:
          - The service's ports; used for sharing (two services on one address need disjoint ports).
          - Any other key than C(port) and C(protocol) is refused. A port number alone stands for
            that port over TCP; the protocol is taken in either case (V(udp) is V(UDP)).
        type: list
        elements: dict
        default: []
        suboptions:
          port:
            description: Port number, 1-65535.
            type: int
            required: true
          protocol:
            description: Transport protocol.
            type: str
            choices: [TCP, UDP, SCTP]
            default: TCP
      external_traffic_policy:
        description:
          - V(Cluster) (any node may receive traffic) or V(Local) (only nodes with a ready local endpoint).
          - Services sharing an address must have the same backends (see above).
        type: str
        choices: [Cluster, Local]
        default: Cluster
      selector:
        description:
          - The service's pod selector; under V(Local) it is part of the backend key for sharing.
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: dict
        default: {}
      labels:
        description:
          - The service's labels; matched against pools' C(service_allocation.service_selectors).
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: dict
        default: {}
      load_balancer_ips:
        description:
          - Requested addresses, at most one per family, all in one pool.
          - Their families must be among O(services[].ip_families) when that is given.
        type: list
        elements: str
        default: []
      address_pool:
        description: Take the addresses from this pool (its C(auto_assign) does not matter).
        type: str
      sharing_key:
        description: Services with the same key may share an address (see above).
        type: str
      ip_families:
        description:
          - Address families, primary first. Defaults to the families of O(services[].load_balancer_ips)
            when given, else V(IPv4).
        type: list
        elements: str
        choices: [IPv4, IPv6]
      ip_family_policy:
        description:
          - V(SingleStack) takes one address of the primary family.
          - V(PreferDualStack) takes one address of each family the chosen pool has.
          - V(RequireDualStack) takes one of each family from one pool, or fails.
        type: str
        choices: [SingleStack, PreferDualStack, RequireDualStack]
        default: SingleStack
      health_check:
        description:
          - For hosts without Kubernetes - how a node checks that it has a serving local endpoint. Under
            V(Local) only nodes whose check passes announce the address. Used by the speaker, not by the allocation
            (a change here keeps the addresses).
          - V(http) and V(kube_proxy) GET C(url) (C(http://) only; V(kube_proxy) reads kube-proxy's
            C(healthCheckNodePort) answer - 200 with local endpoints). V(tcp) connects to C(host) (default
            V(127.0.0.1)) and C(port).
        type: dict
        suboptions:
          type:
            description: The kind of check.
            type: str
            required: true
            choices: [http, tcp, kube_proxy]
          url:
            description: For V(http) and V(kube_proxy).
            type: str
          host:
            description: For V(tcp).
            type: str
            default: 127.0.0.1
          port:
            description: For V(tcp), 1-65535.
            type: int
          interval_ms:
            description: Time between checks, 50-600000 ms.
            type: int
            default: 1000
          timeout_ms:
            description: Time a check may take, 10-600000 ms; default 500 or the interval if shorter.
            type: int
      backends:
        description:
          - For hosts without kube-proxy - the speaker itself forwards C(VIP:port) for every port of the service to
            these backends with nftables (docs/forwarding.md); needs O(services[].ports). Used by the speaker, not by
            the allocation.
        type: list
        elements: dict
        suboptions:
          node:
            description: The node (speaker) the backend runs on.
            type: str
            required: true
          address:
            description: The backend's address.
            type: str
            required: true
          port:
            description: The backend's port, 1-65535.
            type: int
            required: true
          health_check:
            description:
              - A check of the same shape as O(services[].health_check); a V(tcp) check defaults to the backend's
                address and port. Without one, a TCP connect every second.
            type: dict
      workload:
        description:
          - The shape of the service's pods, as the O(baremetal.lb.service_manifest#module:workload) option of
            M(baremetal.lb.service_manifest) -
            C(kind), C(image), C(replicas), C(container_port), C(spread), C(anti_affinity). Checked here for its
            shape; rendered by M(baremetal.lb.service_manifest).
        type: dict
      state:
        description: V(absent) releases the service's addresses.
        type: str
        choices: [present, absent]
        default: present
  pools:
    description:
      - Pools to create or update before allocating, in this order, with the same options and rules as
        M(baremetal.lb.address_pool) (C(name), C(addresses), C(auto_assign), C(avoid_buggy_ips),
        C(service_allocation)); any other key is refused, naming its path (for example C(pools[1].avoid_bugy_ips)).
      - Pools of the ledger that are not listed are kept as they are. A change that would release an allocation is
        refused, as M(baremetal.lb.address_pool) without C(force) refuses it; remove or shrink pools with
        M(baremetal.lb.address_pool).
      - Nothing is saved if a pool is refused.
    type: list
    elements: dict
    default: []
  fail_on_error:
    description:
      - Fail the task when any service could not be allocated.
      - Successful services are saved first either way; a failed one keeps what it held.
    type: bool
    default: true
seealso:
  - module: baremetal.lb.address_pool
  - module: baremetal.lb.pool_info
"""

EXAMPLES = r"""
- name: Keep a pool and the addresses of two services in one task (check mode predicts a first run)
  baremetal.lb.allocate:
    pools:
      - name: lan
        addresses: [198.51.100.100-198.51.100.120, "2001:db8:1::100-2001:db8:1::120"]
    services:
      - {namespace: shop, name: web, ports: [{port: 443}], ip_family_policy: RequireDualStack}
      - {namespace: shop, name: api, ports: [{port: 8443}]}
  delegate_to: localhost
  run_once: true

- name: Allocate addresses for two DNS services sharing one IP, and a dual-stack web service
  baremetal.lb.allocate:
    services:
      - namespace: infra
        name: dns-tcp
        ports: [{port: 53, protocol: TCP}]
        sharing_key: dns
      - namespace: infra
        name: dns-udp
        ports: [{port: 53, protocol: UDP}]
        sharing_key: dns
      - namespace: shop
        name: web
        ports: [{port: 443}]
        external_traffic_policy: Local
        selector: {app: web}
        ip_family_policy: RequireDualStack
        ip_families: [IPv4, IPv6]
  delegate_to: localhost
  run_once: true
  register: allocated

- name: Show which address each service got
  ansible.builtin.debug:
    msg: "{{ item.namespace }}/{{ item.name }}: {{ item.addresses | join(', ') }} from {{ item.pool }}"
  loop: "{{ allocated.allocations }}"

- name: Request a specific address, and release a retired service
  baremetal.lb.allocate:
    services:
      - namespace: shop
        name: api
        load_balancer_ips: [198.51.100.110]
      - namespace: shop
        name: legacy
        state: absent
  delegate_to: localhost
  run_once: true

- name: Allocate what can be allocated, and report the rest without failing
  baremetal.lb.allocate:
    services: "{{ lb_services }}"
    fail_on_error: false
  delegate_to: localhost
  run_once: true
  register: result

- name: Report failures
  ansible.builtin.debug:
    msg: "{{ result.failures }}"
  when: result.failures | length > 0
"""

RETURN = r"""
pools:
  description: The pools of O(pools) as saved (or as they would be saved in check mode), each with whether it changed.
  returned: always
  type: list
  elements: dict
  sample:
    - name: lan
      addresses: [198.51.100.100-198.51.100.120]
      auto_assign: true
      avoid_buggy_ips: false
      service_allocation: null
      changed: true
allocations:
  description: Every service of this call that holds addresses afterwards (a failed one with what it kept).
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The service's namespace.
      type: str
      sample: shop
    name:
      description: The service's name.
      type: str
      sample: web
    addresses:
      description: Its addresses, primary family first.
      type: list
      elements: str
      sample: [198.51.100.100, 2001:db8:1::100]
    pool:
      description: The pool they come from.
      type: str
      sample: lan
  sample:
    - namespace: shop
      name: web
      addresses: [198.51.100.100, 2001:db8:1::100]
      pool: lan
failures:
  description: Services that could not get what they asked for, with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The service's namespace.
      type: str
      sample: shop
    name:
      description: The service's name.
      type: str
      sample: api
    reason:
      description: Why, naming the rule and any other service involved.
      type: str
      sample: "requested address 198.51.100.110 cannot be shared: it is held by shop/web, which has no sharing_key"
  sample:
    - namespace: shop
      name: api
      reason: "requested address 198.51.100.110 cannot be shared: it is held by shop/web, which has no sharing_key"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.baremetal.lb.plugins.module_utils.allocate_task import (
    ALLOCATE_OPTIONS,
    missing_library,
    run_allocate,
    secrets,
)


def main() -> None:
    # The same function runs in-process in the action plugin when the task runs on the control node
    # (plugins/action/allocate.py); this is the path for every other case.
    module = AnsibleModule(argument_spec=ALLOCATE_OPTIONS, supports_check_mode=True)
    module.no_log_values.update(secrets(module.params))
    missing = missing_library(module.params)
    if missing is not None:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
    result = run_allocate(module.params, module.check_mode, module._diff)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
