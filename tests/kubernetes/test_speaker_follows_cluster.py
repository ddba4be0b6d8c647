"""The speaker following the real control plane (``kubernetes:`` in its config), on real links.

Three speakers in network namespaces on one bridge (speaker/tests/l2lab.py),
the control plane on the host's loopback, reached from each namespace through
``netns_relay.py``. A Service made through the API, its ingress written
through the API (no controller here), must be answered for over ARP by one
node; under Local only by the node its serving endpoint is on, following the
endpoint when it moves; and a node labelled
``node.kubernetes.io/exclude-from-external-load-balancers`` stops announcing.
Root only (namespaces); run by ``make kubernetes-test``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "speaker" / "tests"))

from conftest import Namespace, wait_for
from controlplane import ControlPlane, free_port, stop_pid
from l2lab import Lab
from lbspeaker.controller.kube import ApiError, Kube

VIP = "198.51.100.100"
POOLS = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]}]
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


@pytest.fixture
def lab(cluster: ControlPlane, tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        raise RuntimeError("tests/kubernetes/test_speaker_follows_cluster.py needs root (network namespaces)")
    lab = Lab(name="lbk8s")
    relay = None
    try:
        lab.create()
        port = free_port()
        relay = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("netns_relay.py")),
             "--target", f"127.0.0.1:{cluster.ports['apiserver']}", *(f"{n.ns}:{port}" for n in lab.nodes)],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        for c in kubeconfig["clusters"]:
            c["cluster"]["server"] = f"https://127.0.0.1:{port}"  # the relay, inside each namespace
        path = tmp_path / "speaker.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        for n in lab.nodes:
            cfg: dict[str, Any] = lab.speaker_config(n, [])
            cfg["kubernetes"] = {"kubeconfig": str(path), "pools": POOLS}
            n.config_path = os.path.join(lab.workdir, f"{n.name}.yaml")
            Path(n.config_path).write_text(yaml.safe_dump(cfg))
            lab.start_speaker(n)
        for n in lab.nodes:
            assert lab.wait_for(lambda n=n: lab.status(n) is not None, 20), f"{n.name}: no /status"
        yield lab
    finally:
        if relay is not None:
            stop_pid(relay.pid)
        lab.destroy()


def announcers(lab: Lab) -> list[str]:
    return sorted(name for name, (_leader, announcing) in lab.leaders(VIP).items() if announcing)


def answered_by(lab: Lab) -> list[str]:
    macs = {n.mac: n.name for n in lab.nodes}
    return sorted(macs.get(m, m) for m in lab.who_has(VIP))


def slice_on(api: Kube, ns: Namespace, service: str, node: str | None, serving: bool = True) -> None:
    """The Service's one EndpointSlice, with one endpoint on ``node`` (none: no endpoint)."""
    path = f"/apis/discovery.k8s.io/v1/namespaces/{ns.name}/endpointslices"
    endpoints = [] if node is None else [{"addresses": ["198.51.100.200"], "nodeName": node,
                                          "conditions": {"ready": serving, "serving": serving}}]
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
            "endpoints": endpoints, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    try:
        api.request("PUT", f"{path}/{service}-1", body)
    except ApiError as exc:
        if exc.status != 404:
            raise
        api.request("POST", path, body)


def label_node(api: Kube, node: str, value: str | None) -> None:
    api.request("PATCH", f"/api/v1/nodes/{node}", {"metadata": {"labels": {EXCLUDE: value}}},
                content_type="application/merge-patch+json")


def test_a_service_made_through_the_api_is_answered_for_and_local_follows_its_endpoint(
        lab: Lab, api: Kube, ns: Namespace) -> None:
    name = f"web-{uuid.uuid4().hex[:4]}"
    ns.apply(name, selector=None)  # no selector: the endpoints are this test's own slice
    t0 = time.monotonic()
    api.patch_service_status(ns.name, name, {"status": {"loadBalancer": {"ingress": [{"ip": VIP}]}}})

    def exactly_one() -> list[str] | None:
        a = announcers(lab)
        return a if len(a) == 1 else None

    one = wait_for("one node announcing the Service's ingress (Cluster)", exactly_one, timeout=20)
    took = time.monotonic() - t0
    assert answered_by(lab) == one, "the client's ARP reply comes from the node that says it announces"
    print(f"\n  Cluster: ingress written -> announced by {one[0]} in {took:.2f} s")

    # Local: only the node with a serving endpoint
    ns.patch(name, {"spec": {"externalTrafficPolicy": "Local"}})
    slice_on(api, ns, name, "node2")
    wait_for("node2 alone announcing under Local", lambda: announcers(lab) == ["node2"], timeout=20)
    assert answered_by(lab) == ["node2"]
    t1 = time.monotonic()
    slice_on(api, ns, name, "node3")
    wait_for("the endpoint moved: node3 alone", lambda: announcers(lab) == ["node3"], timeout=20)
    print(f"  Local: endpoint moved node2 -> node3, announced by node3 after {time.monotonic() - t1:.2f} s")
    assert answered_by(lab) == ["node3"]

    # excluded from external load balancers: node3 may not announce, and no other node serves it
    label_node(api, "node3", "true")
    try:
        wait_for("node3 excluded: nobody announces the Local Service", lambda: announcers(lab) == [], timeout=20)
        assert answered_by(lab) == []
        ns.patch(name, {"spec": {"externalTrafficPolicy": "Cluster"}})
        again = wait_for("Cluster again: one node", exactly_one, timeout=20)
        assert again != ["node3"], "node3 is excluded from external load balancers"
    finally:
        label_node(api, "node3", None)

    # the Service deleted: nobody announces
    ns.delete(name)
    wait_for("the Service deleted: nobody announces", lambda: announcers(lab) == [], timeout=20)
