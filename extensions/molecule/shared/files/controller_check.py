"""Run on a host of lb_controllers, with the installed venv's Python: what the controller did.

Makes two Services through the API (as kubectl would): one that asks for nothing, one that asks
for an address the playbook's ledger holds. Waits (bounded) for the first one's ingress and for
the second one's AllocationFailed event, prints one JSON object, deletes what it made.
Argument: the reserved address to ask for.
"""

from __future__ import annotations

import json
import sys
import time

from kubernetes import client, config

NAMESPACE = "lbmol-k8s"
WAIT_S = 60.0


def service(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}}


def wait(what: str, check):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise SystemExit(f"timed out after {WAIT_S:.0f} s waiting for {what}")


def main() -> int:
    reserved = sys.argv[1]
    api = config.new_client_from_config(config_file="/etc/baremetal-lb/kubeconfig")
    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    core.create_namespaced_service(NAMESPACE, service("by-api", {}))
    core.create_namespaced_service(NAMESPACE, service("thief", {"metallb.io/loadBalancerIPs": reserved}))
    try:
        got = wait("by-api's ingress",
                   lambda: core.read_namespaced_service(
                       "by-api", NAMESPACE).status.load_balancer.ingress)
        annotations = core.read_namespaced_service("by-api", NAMESPACE).metadata.annotations or {}

        def refused() -> str:
            events = core.list_namespaced_event(NAMESPACE, field_selector="involvedObject.name=thief").items
            return next((e.message for e in events if e.reason == "AllocationFailed"), "")

        message = wait("thief's AllocationFailed event", refused)
        thief = core.read_namespaced_service("thief", NAMESPACE).status.load_balancer.ingress or []
        print(json.dumps({"by_api": [i.ip for i in got], "pool": annotations.get("metallb.io/ip-allocated-from-pool"),
                          "thief_event": message, "thief_ingress": [i.ip for i in thief]}))
    finally:
        for name in ("by-api", "thief"):
            core.delete_namespaced_service(name, NAMESPACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
