# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service dict of DESIGN.md, shared by every module that takes services.

``DOCUMENTATION`` documents one ``service`` option, ``SERVICES`` a ``services``
list of the same dicts (with ``state``). Modules check these dicts with
``module_utils.service.parse_service``, which names a bad field with its index.
"""

from __future__ import annotations

# Both fragments spell out the same fields: ansible-test wants each fragment as one
# plain string literal. Keep them in step.


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  service:
    description:
      - The service, as in the C(services) option of M(baremetal.lb.allocate). A key not listed here is refused,
        naming its path.
    type: dict
    required: true
    suboptions:

      namespace:
        description:
          - Namespace of the Kubernetes Service.
          - A DNS label (RFC 1123), as Kubernetes requires of namespaces - lowercase letters, digits and C(-),
            starting and ending with a letter or digit, at most 63 characters.
        type: str
        default: default
      name:
        description:
          - Name of the Kubernetes Service; with C(namespace), it identifies the service.
          - A DNS label (RFC 1035), as Kubernetes requires of Service names - lowercase letters, digits and C(-),
            starting with a letter and ending with a letter or digit, at most 63 characters.
        type: str
        required: true
      ports:
        description:
          - The ports the service listens on. A port number alone stands for that port over TCP; the
            protocol is taken in either case (V(udp) is V(UDP)).
          - Two services can share an IP only if their (protocol, port) pairs are disjoint
            (TCP/53 and UDP/53 can share).
          - Any other key is refused.
        type: list
        elements: dict
        suboptions:
          port:
            description: Port number, 1 to 65535.
            type: int
            required: true
          protocol:
            description: Transport protocol.
            type: str
            choices: [TCP, UDP, SCTP]
            default: TCP
      external_traffic_policy:
        description:
          - V(Cluster) lets any node receive the traffic; kube-proxy spreads it over every pod and hides
            the client address.
          - V(Local) sends traffic only to nodes running a pod of the service, keeps the client address,
            and spreads per node, not per pod.
        type: str
        choices: [Cluster, Local]
        default: Cluster
      selector:
        description:
          - Pod selector of the Service (label name to value).
          - Two V(Local) services share an IP only with identical selectors.
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: dict
      labels:
        description:
          - Labels of the Service itself; pools' C(service_allocation.service_selectors) match them.
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: dict
      load_balancer_ips:
        description:
          - Requested addresses, at most one per family. They must all lie in one pool.
        type: list
        elements: str
      address_pool:
        description: Requested pool (C(auto_assign) does not matter for a requested pool).
        type: str
      sharing_key:
        description:
          - Services with the same non-empty key may share an IP, when their ports are disjoint and their
            backends agree (both V(Cluster), or both V(Local) with identical selectors).
          - Rendered as the C(metallb.io/allow-shared-ip) annotation.
        type: str
      ip_families:
        description: Address families, primary first. Defaults to the families of the requested addresses, else V(IPv4).
        type: list
        elements: str
        choices: [IPv4, IPv6]
      ip_family_policy:
        description: Kubernetes C(ipFamilyPolicy).
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
            these backends with nftables (docs/forwarding.md); needs O(service.ports). Used by the speaker, not by
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
              - A check of the same shape as O(service.health_check); a V(tcp) check defaults to the backend's
                address and port. Without one, a TCP connect every second.
            type: dict
      workload:
        description:
          - The shape of the service's pods, as the O(workload) option -
            C(kind), C(image), C(replicas), C(container_port), C(spread), C(anti_affinity). Checked here for its
            shape; rendered by M(baremetal.lb.service_manifest).
        type: dict
"""

    SERVICES = r"""
options:
  services:
    description:
      - The services, as in M(baremetal.lb.allocate). Services with O(services[].state=absent) are ignored.
      - A key not listed here is refused, naming its path (for example C(services[0].selectr)).
    type: list
    elements: dict
    default: []
    suboptions:

      namespace:
        description:
          - Namespace of the Kubernetes Service.
          - A DNS label (RFC 1123), as Kubernetes requires of namespaces - lowercase letters, digits and C(-),
            starting and ending with a letter or digit, at most 63 characters.
        type: str
        default: default
      name:
        description:
          - Name of the Kubernetes Service; with C(namespace), it identifies the service.
          - A DNS label (RFC 1035), as Kubernetes requires of Service names - lowercase letters, digits and C(-),
            starting with a letter and ending with a letter or digit, at most 63 characters.
        type: str
        required: true
      ports:
        description:
          - The ports the service listens on. A port number alone stands for that port over TCP; the
            protocol is taken in either case (V(udp) is V(UDP)).
          - Two services can share an IP only if their (protocol, port) pairs are disjoint
            (TCP/53 and UDP/53 can share).
          - Any other key is refused.
        type: list
        elements: dict
        suboptions:
          port:
            description: Port number, 1 to 65535.
            type: int
            required: true
          protocol:
            description: Transport protocol.
            type: str
            choices: [TCP, UDP, SCTP]
            default: TCP
      external_traffic_policy:
        description:
          - V(Cluster) lets any node receive the traffic; kube-proxy spreads it over every pod and hides
            the client address.
          - V(Local) sends traffic only to nodes running a pod of the service, keeps the client address,
            and spreads per node, not per pod.
        type: str
        choices: [Cluster, Local]
        default: Cluster
      selector:
        description:
          - Pod selector of the Service (label name to value).
          - Two V(Local) services share an IP only with identical selectors.
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: dict
      labels:
        description:
          - Labels of the Service itself; pools' C(service_allocation.service_selectors) match them.
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: dict
      load_balancer_ips:
        description:
          - Requested addresses, at most one per family. They must all lie in one pool.
        type: list
        elements: str
      address_pool:
        description: Requested pool (C(auto_assign) does not matter for a requested pool).
        type: str
      sharing_key:
        description:
          - Services with the same non-empty key may share an IP, when their ports are disjoint and their
            backends agree (both V(Cluster), or both V(Local) with identical selectors).
          - Rendered as the C(metallb.io/allow-shared-ip) annotation.
        type: str
      ip_families:
        description: Address families, primary first. Defaults to the families of the requested addresses, else V(IPv4).
        type: list
        elements: str
        choices: [IPv4, IPv6]
      ip_family_policy:
        description: Kubernetes C(ipFamilyPolicy).
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
        description: V(absent) services are left out of the checks.
        type: str
        choices: [present, absent]
        default: present
"""
