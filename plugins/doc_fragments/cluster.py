# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeconfig options of the modules that read a cluster's addresses (allocate, pool_info)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - A kubeconfig file for a cluster whose Services of type C(LoadBalancer) share these pools with the ledger
        (addresses given by C(lb-speaker controller), or by any controller). The module lists every Service of the
        cluster first and treats each address in a C(status.loadBalancer.ingress) that lies in one of the pools as
        held, under the name C(cluster/NAMESPACE/NAME), so the ledger never hands it out; nothing of the cluster's is
        written to the ledger.
      - A cluster Service with the same C(namespace/name) as a service of the ledger (or of this call) is that
        service - the playbook rendered it with the ledger's address - and the ledger decides for it.
      - The other direction is the role's - it gives the controller the ledger's addresses as C(reserved), so
        neither record hands out what the other holds. See C(docs/kubernetes.md).
      - Needs the C(kubernetes) Python library on the control node, and C(list) on C(services) in all namespaces.
      - Without it, the ledger alone decides.
    type: path
  context:
    description:
      - The kubeconfig context to use; its current context when not set.
    type: str
requirements:
  - kubernetes (Python library, with O(kubeconfig) only)
"""
