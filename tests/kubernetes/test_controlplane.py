"""The control plane the Kubernetes tests run against is the real one, working.

Real kube-apiserver semantics the controller and the speaker rely on, and the
path from a Deployment to EndpointSlices through the real scheduler, kwok's
pods and the real EndpointSlice controller.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import NODE_ADDRESSES, NODES, wait_for
from controlplane import ControlPlane


def _json(cluster: ControlPlane, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_the_apiserver_is_the_real_one(cluster: ControlPlane) -> None:
    status, body = cluster.get("/version")
    assert status == 200
    version = json.loads(body)
    assert version["major"] == "1" and version["minor"].startswith("37"), version


def test_nodes_are_ready_with_the_lab_addresses(cluster: ControlPlane) -> None:
    nodes = {n["metadata"]["name"]: n for n in _json(cluster, "nodes")["items"]}
    assert set(NODES) <= set(nodes)
    for name in NODES:
        status = nodes[name]["status"]
        ready = [c for c in status["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", (name, status["conditions"])
        internal = [a["address"] for a in status["addresses"] if a["type"] == "InternalIP"]
        assert internal == list(NODE_ADDRESSES[name])


def test_ready_pods_become_endpoints_on_their_nodes(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "deployment", "web", "--image=example.invalid/web",
                    "--replicas=3", "--port=80")
    cluster.kubectl("-n", namespace, "expose", "deployment", "web", "--port=80", "--type=LoadBalancer")

    def endpoints() -> list[dict]:
        slices = _json(cluster, "-n", namespace, "endpointslices", "-l", "kubernetes.io/service-name=web")
        eps = [e for s in slices["items"] for e in (s.get("endpoints") or [])]
        return eps if len(eps) == 3 and all(e["conditions"].get("serving") for e in eps) else []

    eps = wait_for("3 serving endpoints", endpoints, timeout=30.0)
    pods = {p["status"]["podIP"]: p["spec"]["nodeName"] for p in _json(cluster, "-n", namespace, "pods")["items"]}
    assert {e["addresses"][0]: e["nodeName"] for e in eps} == pods
    assert set(pods.values()) <= set(NODES)

    # scaled down: the real controller drops the endpoint of the deleted pod
    cluster.kubectl("-n", namespace, "scale", "deployment", "web", "--replicas=1")

    def one_left() -> list[dict]:
        slices = _json(cluster, "-n", namespace, "endpointslices", "-l", "kubernetes.io/service-name=web")
        eps = [e for s in slices["items"] for e in (s.get("endpoints") or [])]
        return eps if len(eps) == 1 else []

    wait_for("one endpoint after scaling to 1", one_left, timeout=30.0)


def test_status_subresource_keeps_annotations_and_drops_spec(cluster: ControlPlane, namespace: str) -> None:
    """NOTES: a write to /status keeps metadata changes and discards spec changes."""
    cluster.kubectl("-n", namespace, "create", "service", "loadbalancer", "lb", "--tcp=80:80")
    svc = _json(cluster, "-n", namespace, "service", "lb")
    svc["metadata"].setdefault("annotations", {})["example.invalid/written-with-status"] = "yes"
    svc["spec"]["ports"][0]["port"] = 81
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.50", "ipMode": "VIP"}]}}
    out = cluster.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(svc))
    assert out.returncode == 0
    after = _json(cluster, "-n", namespace, "service", "lb")
    assert after["status"]["loadBalancer"]["ingress"][0]["ip"] == "198.51.100.50"
    assert after["spec"]["ports"][0]["port"] == 80
    assert after["metadata"]["annotations"]["example.invalid/written-with-status"] == "yes"
    # a stale resourceVersion is refused with 409
    out = cluster.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(svc), check=False)
    assert out.returncode != 0 and "modified" in out.stderr, out.stderr


def test_stop_leaves_no_process(tmp_path) -> None:
    cp = ControlPlane(tmp_path / "cp").start()
    pids = dict(cp.pids)
    cp.stop()
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        pytest.fail(f"{name} (pid {pid}) still runs after stop()")
    assert not (tmp_path / "cp" / "state.json").exists()


def test_make_cluster_path_runs_the_controller_with_the_pools_file(tmp_path, capsys) -> None:
    """What `make cluster` runs: the control plane, plus the controller serving the
    (documented, editable) pools file; `down` stops both and leaves nothing."""
    import controlplane  # noqa: PLC0415 - the module's CLI, as the Makefile calls it

    run = tmp_path / "run"
    pools = controlplane.HERE / "cluster-pools.yml"
    assert controlplane.main(["up", "--dir", str(run), "--nodes", "node1", "--pools", str(pools)]) == 0
    try:
        cp = ControlPlane.load(run)
        assert "controller" in cp.pids and "controller:" in capsys.readouterr().out
        cp.kubectl("create", "service", "loadbalancer", "web", "--tcp=80:80")

        def ingress() -> str:
            svc = _json(cp, "service", "web")
            return ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress", [{}])[0].get("ip", "")

        assert wait_for("the controller's address for web", ingress, timeout=30.0) == "198.51.100.100"  # first of pool default
    finally:
        pids = dict(ControlPlane.load(run).pids) if (run / "state.json").exists() else {}
        controlplane.main(["down", "--dir", str(run)])
    assert not run.exists()
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        pytest.fail(f"{name} (pid {pid}) still runs after down")
