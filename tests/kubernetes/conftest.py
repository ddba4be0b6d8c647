"""Fixtures for tests against the real control plane (controlplane.py).

``cluster``: one control plane per test session, stopped at the end, also on
failure. ``namespace``: a fresh namespace per test, deleted afterwards. A missing
binary fails the session with the command that builds it: nothing skips.

For the controller: ``api`` (the controller's own client, admin), ``ns`` (a
fresh namespace with helpers for Services, their status and events; its
Services deleted at the end so that the next test's controller does not see
them) and ``start_controller`` (``lb-speaker controller`` processes, each with
its config file and status port, stopped by PID at the end).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from controlplane import ControlPlane, free_port, stop_pid

try:
    from lbspeaker.config import KubernetesAccess
    from lbspeaker.controller.daemon import COMPONENT as CONTROLLER_COMPONENT
    from lbspeaker.controller.kube import ApiError, Kube
    from lbspeaker.sources.announcing import COMPONENT as SPEAKER_COMPONENT
except ImportError as exc:  # the wrong interpreter: say so, never skip
    raise RuntimeError(
        f"tests/kubernetes need the speaker with its kubernetes extra (make kubernetes-test): {exc}"
    ) from exc

NODES = ("node1", "node2", "node3")
NODE_ADDRESSES = {n: (f"198.51.100.{10 + i}", f"2001:db8:100::{10 + i}") for i, n in enumerate(NODES, 1)}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("cluster"))
    cp.start()
    try:
        for node in NODES:
            cp.add_node(node, addresses=NODE_ADDRESSES[node])
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    name = f"t-{name}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


LB_SPEAKER = Path(sys.executable).with_name("lb-speaker")
WAIT_S = 15.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def api(cluster: ControlPlane) -> Iterator[Kube]:
    kube = Kube(KubernetesAccess(kubeconfig=str(cluster.kubeconfig)))
    yield kube
    kube.close()


class Namespace:
    def __init__(self, api: Kube, name: str) -> None:
        self.api = api
        self.name = name

    def apply(self, name: str, *, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
              ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
        """Create a Service (type LoadBalancer unless ``type`` says otherwise)."""
        body = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": self.name, "annotations": annotations or {},
                         "labels": labels or {}},
            "spec": {"type": "LoadBalancer", "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}],
                     "selector": {"app": name}, **spec},
        }
        return self.api.request("POST", f"/api/v1/namespaces/{self.name}/services", body)

    def endpoints(self, service: str, *nodes: str, serving: bool = True) -> None:
        """The Service's one EndpointSlice (this test's own: the Service has no selector), one endpoint on each
        of ``nodes`` (none: no endpoint), serving or not (terminating), created or replaced."""
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.name}/endpointslices"
        conditions = {"ready": serving, "serving": serving, "terminating": not serving}
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
                "endpoints": [{"addresses": [f"198.51.100.{200 + i}"], "nodeName": node, "conditions": conditions}
                              for i, node in enumerate(nodes)],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
        try:
            self.api.request("PUT", f"{path}/{service}-1", body)
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.api.request("POST", path, body)

    def get(self, name: str) -> dict[str, Any]:
        return self.api.get_service(self.name, name)

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.api.request("PATCH", f"/api/v1/namespaces/{self.name}/services/{name}", patch,
                                content_type="application/merge-patch+json")

    def delete(self, name: str) -> None:
        self.api.request("DELETE", f"/api/v1/namespaces/{self.name}/services/{name}")

    def ingress(self, name: str) -> list[str]:
        lb = (self.get(name).get("status") or {}).get("loadBalancer") or {}
        return [i["ip"] for i in lb.get("ingress") or ()]

    def pool(self, name: str) -> str | None:
        return ((self.get(name)["metadata"].get("annotations")) or {}).get("metallb.io/ip-allocated-from-pool")

    def events(self, name: str) -> list[dict[str, Any]]:
        """Our events on ``name``, oldest first.

        Only those the controller and the speaker write: the apiserver writes its own on a Service
        now and then (its ClusterIP repair loop, ``ipallocator-repair-controller``), which say
        nothing about us and must not fail a test counting ours.
        """
        doc = self.api.request("GET", f"/api/v1/namespaces/{self.name}/events",
                               query={"fieldSelector": f"involvedObject.name={name}"})
        ours = [e for e in doc.get("items") or []
                if e.get("reportingComponent") in (CONTROLLER_COMPONENT, SPEAKER_COMPONENT)]
        return sorted(ours, key=lambda e: e["metadata"]["creationTimestamp"])

    def reasons(self, name: str) -> list[tuple[str, str]]:
        return [(e["type"], e["reason"]) for e in self.events(name)]

    def wait_ingress(self, name: str, expected: list[str] | None = None, timeout: float = WAIT_S) -> list[str]:
        def check() -> list[str] | None:
            ips = self.ingress(name)
            if expected is None:
                return ips or None
            return ips if ips == expected else None
        return wait_for(f"{self.name}/{name} ingress {expected or '(any)'}", check, timeout)  # type: ignore[no-any-return]

    def wait_event(self, name: str, reason: str, timeout: float = WAIT_S) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            return next((e for e in self.events(name) if e["reason"] == reason), None)
        return wait_for(f"event {reason} on {self.name}/{name}", check, timeout)  # type: ignore[no-any-return]


@pytest.fixture
def ns(api: Kube) -> Iterator[Namespace]:
    name = f"lbt-{uuid.uuid4().hex[:8]}"
    api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    namespace = Namespace(api, name)
    try:
        yield namespace
    finally:
        # Services first and at once: the next test's controller must not see them
        with contextlib.suppress(ApiError):
            api.request("DELETE", f"/api/v1/namespaces/{name}/services", timeout=120)
        with contextlib.suppress(ApiError):
            api.request("DELETE", f"/api/v1/namespaces/{name}")


class ControllerProcess:
    """One ``lb-speaker controller`` process with its config file and its status port."""

    def __init__(self, directory: Path, config: dict[str, Any], identity: str) -> None:
        self.directory = directory
        self.config = config
        self.identity = identity
        self.config_path = directory / f"{identity}.yaml"
        self.log_path = directory / f"{identity}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config(config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config['status']['port']}"

    def write_config(self, config: dict[str, Any]) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self) -> ControllerProcess:
        if not LB_SPEAKER.exists():
            raise RuntimeError(f"{LB_SPEAKER} is missing: install the speaker with pip install -e 'speaker[kubernetes]'")
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [str(LB_SPEAKER), "controller", "--config", str(self.config_path), "--identity", self.identity],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    def get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body); (0, "") while nothing listens yet."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        return json.loads(body) if code == 200 else {}  # type: ignore[no-any-return]

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"controller {self.identity} exited:\n{self.log_path.read_text()[-3000:]}")
            return self.get("/healthz")[0] == 200 and bool(self.status().get("leader"))
        wait_for(f"controller {self.identity} leading and ready", ready, timeout, interval=0.1)

    def metric(self, name: str) -> float:
        """The value of one sample (``name`` with its labels as rendered) in /metrics."""
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def writes(self) -> float:
        return self.metric('lbcontroller_writes_total{kind="status"}') + self.metric(
            'lbcontroller_writes_total{kind="event"}')

    def reload(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc.pid)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


POOLS = [
    {"name": "default", "addresses": ["198.51.100.100-198.51.100.109", "2001:db8:1::100-2001:db8:1::109"]},
    {"name": "manual", "addresses": ["203.0.113.200-203.0.113.203"], "auto_assign": False},
]


@pytest.fixture
def start_controller(cluster: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., ControllerProcess]]:
    """Start controllers for this test: each on its own status port, all on this test's Lease."""
    started: list[ControllerProcess] = []
    lease = f"lbt-{uuid.uuid4().hex[:8]}"

    def start(identity: str = "ctl-a", *, wait: bool = True, lease_s: int = 15, **overrides: Any) -> ControllerProcess:
        config = {
            "kubernetes": {"kubeconfig": str(cluster.kubeconfig)},
            "pools": POOLS,
            "lease": {"namespace": "baremetal-lb", "name": lease, "duration_s": lease_s},
            "status": {"address": "127.0.0.1", "port": free_port()},
            **overrides,
        }
        ctl = ControllerProcess(tmp_path, config, identity).start()
        started.append(ctl)
        if wait:
            ctl.wait_ready()
        return ctl

    try:
        yield start
    finally:
        for ctl in started:
            ctl.stop()
