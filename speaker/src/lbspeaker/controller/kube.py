"""The API server over HTTP: the ``kubernetes`` client's configuration, our own thin requests.

The ``kubernetes`` package (the speaker's ``kubernetes`` extra) reads the
kubeconfig or the in-cluster service account, TLS and tokens included; the
requests themselves go through urllib3 (which it brings) as plain JSON, so
that 10,000 Services are parsed by ``json`` and not turned into generated
model objects. Blocking, thread-safe: the controller calls it from worker
threads.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ..config import KubernetesAccess

REQUEST_TIMEOUT_S = 10.0
USER_AGENT = "baremetal-lb-controller"
SERVICES = "/api/v1/services"
ENDPOINT_SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
NODES = "/api/v1/nodes"


class MissingClient(RuntimeError):
    pass


class ApiError(Exception):
    def __init__(self, status: int, body: str, what: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")


def now_rfc3339(micro: bool = False) -> str:
    stamp = datetime.now(UTC)
    if micro:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


class WatchStream:
    """One watch response: its events, one JSON object a line, until the server ends it or ``close()``."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        try:
            for chunk in self._resp.stream(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            self._resp.release_conn()

    def close(self) -> None:
        """End the stream from another thread: the reader sees its end (or an error) at once."""
        self.closed = True
        with contextlib.suppress(Exception):
            self._resp.shutdown()  # urllib3 >= 2.3: unblocks a read in progress
        with contextlib.suppress(Exception):
            self._resp.close()


class Kube:
    """One API server; each method is one request (``watch_services`` a stream)."""

    def __init__(self, access: KubernetesAccess, pool_size: int = 16, user_agent: str = USER_AGENT) -> None:
        try:
            import urllib3  # noqa: PLC0415
            from kubernetes import client, config  # noqa: PLC0415
        except ImportError as exc:
            raise MissingClient(
                "lb-speaker controller needs the kubernetes client: pip install 'lbspeaker[kubernetes]' "
                f"(import failed: {exc})"
            ) from exc
        cfg = client.Configuration()
        if access.in_cluster:
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=access.kubeconfig, client_configuration=cfg, persist_config=False)
        self._cfg = cfg
        self.host = cfg.host.rstrip("/")
        self._http = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
        )
        self._timeout = urllib3.Timeout(connect=5.0, read=REQUEST_TIMEOUT_S)
        self._urllib3 = urllib3
        self._user_agent = user_agent

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        # the User-Agent names the field manager of what we write (managedFields)
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": self._user_agent}
        # refreshed in-cluster tokens too; the client keeps a token under "BearerToken" (kubernetes >= 30),
        # older ones under "authorization"
        token = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        query: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        url = self.host + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        limit = self._timeout if timeout is None else self._urllib3.Timeout(connect=5.0, read=timeout)
        resp = self._http.request(method, url, body=data, headers=self._headers(content_type),
                                  timeout=limit, retries=False)
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, resp.data.decode(errors="replace"), f"{method} {path}")
        result: dict[str, Any] = json.loads(resp.data)
        return result

    # -- Services --------------------------------------------------------------

    def list_services(self) -> tuple[list[dict[str, Any]], str]:
        """Every Service in the cluster and the list's resourceVersion (to watch from)."""
        return self.list_all(SERVICES)

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}")

    def watch_services(self, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        """Watch events from ``resource_version`` (with bookmarks); an ERROR event carries the Status (410...)."""
        return iter(self.watch(SERVICES, resource_version, timeout_s))

    # -- Any collection: EndpointSlices and Nodes as the speaker follows them ----

    def list_all(self, path: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of the collection at ``path`` and the list's resourceVersion (to watch from)."""
        doc = self.request("GET", path, timeout=60)
        return doc.get("items") or [], doc["metadata"]["resourceVersion"]

    def watch(self, path: str, resource_version: str, timeout_s: int) -> WatchStream:
        """The watch of the collection at ``path`` from ``resource_version``, with bookmarks.

        An HTTP error (403, 410 for a resourceVersion the apiserver no longer has...) raises ``ApiError``;
        an ERROR event in the stream carries the Status (code 410: relist). ``close()`` ends it from
        another thread.
        """
        query = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_s)}
        url = f"{self.host}{path}?{urllib.parse.urlencode(query)}"
        resp = self._http.request("GET", url, headers=self._headers(), preload_content=False, retries=False,
                                  timeout=self._urllib3.Timeout(connect=5.0, read=timeout_s + 10.0))
        if resp.status != 200:
            body = resp.read().decode(errors="replace")
            resp.release_conn()
            raise ApiError(resp.status, body, f"watch {path}")
        return WatchStream(resp)

    def patch_service(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the Service itself (its metadata: what ``kubectl describe`` shows)."""
        return self.request("PATCH", f"/api/v1/namespaces/{namespace}/services/{name}", patch,
                            content_type="application/merge-patch+json")

    def patch_service_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v1/namespaces/{namespace}/services/{name}/status", patch,
                            content_type="application/merge-patch+json")

    # -- Events (core v1: what ``kubectl describe service`` shows) ---------------

    def create_event(self, service: Mapping[str, Any], *, type_: str, reason: str, message: str,
                     component: str, instance: str) -> None:
        meta = service.get("metadata") or {}
        stamp = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": meta.get("namespace"),
                               "name": meta.get("name"), "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": instance,
            "action": reason,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": now_rfc3339(micro=True),
            "count": 1,
        }
        self.request("POST", f"/api/v1/namespaces/{meta.get('namespace')}/events", event)

    # -- Leases ----------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", lease)

    def replace_lease(self, namespace: str, name: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion read: 409 if anyone wrote it since (optimistic concurrency)."""
        return self.request("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", lease)

    def close(self) -> None:
        self._http.clear()


def backoff(attempt: int, base_s: float = 0.2, cap_s: float = 10.0) -> float:
    """Reconnect delay: doubling from ``base_s``, capped (bounded: a watcher never spins nor sleeps forever)."""
    return float(min(cap_s, base_s * (2 ** min(attempt, 16))))
