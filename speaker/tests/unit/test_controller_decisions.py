"""The controller's decisions without a cluster: Service JSON in, status/annotation/events out."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from lbspeaker.controller import config as ctl_config
from lbspeaker.controller.kube import ApiError
from lbspeaker.controller.leader import Elector
from lbspeaker.controller.reconcile import Plan
from lbspeaker.controller.translate import ALLOCATED_FROM, to_request
from lbspeaker.core.errors import InputError

POOLS = [
    {"name": "web", "addresses": ["198.51.100.100-198.51.100.102", "2001:db8:1::100-2001:db8:1::102"]},
    {"name": "manual", "addresses": ["203.0.113.10/31"], "auto_assign": False},
]


def svc(name: str = "a", namespace: str = "default", annotations: dict[str, str] | None = None,
        ingress: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {},
                     "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", **spec},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress or ()]}},
    }
    return obj


def plan(**kw: Any) -> Plan:
    cfg = ctl_config.parse({"kubernetes": {"in_cluster": True}, "pools": POOLS, **kw})
    return Plan(cfg.pools, cfg.load_balancer_class, cfg.serve_unclassed, cfg.reserved)


def applied(obj: dict[str, Any], write: Any) -> dict[str, Any]:
    """The Service as the API server would hold it after our write."""
    out = copy.deepcopy(obj)
    if write.writes_status:
        out["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in write.ingress]}}
        out["metadata"]["annotations"][ALLOCATED_FROM] = write.pool
    return out


def reasons(write: Any) -> list[str]:
    return [e.reason for e in write.events]


def test_first_free_address_status_annotation_and_event() -> None:
    p = plan()
    w = p.reconcile(svc())
    assert w.ingress == ("198.51.100.100",) and w.pool == "web" and reasons(w) == ["IPAllocated"]
    patch = w.status_patch("7")
    assert patch == {"metadata": {"annotations": {ALLOCATED_FROM: "web"}, "resourceVersion": "7"},
                     "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.100"}]}}}


def test_already_right_writes_nothing() -> None:
    p = plan()
    obj = svc()
    obj = applied(obj, p.reconcile(obj))
    again = p.reconcile(obj)
    assert not again.writes_status and not again.events


@pytest.mark.parametrize("annotations,spec", [
    ({"metallb.io/loadBalancerIPs": "198.51.100.101"}, {}),
    ({"metallb.universe.tf/loadBalancerIPs": "198.51.100.101"}, {}),
    ({}, {"loadBalancerIP": "198.51.100.101"}),
])
def test_requested_address_every_spelling(annotations: dict[str, str], spec: dict[str, Any]) -> None:
    assert plan().reconcile(svc(annotations=annotations, **spec)).ingress == ("198.51.100.101",)


def test_pool_annotation_ignores_auto_assign() -> None:
    w = plan().reconcile(svc(annotations={"metallb.io/address-pool": "manual"}))
    assert w.ingress == ("203.0.113.10",) and w.pool == "manual"


def test_dual_stack_policies() -> None:
    p = plan()
    dual = p.reconcile(svc("d", ipFamilies=["IPv6", "IPv4"], ipFamilyPolicy="RequireDualStack"))
    assert dual.ingress == ("2001:db8:1::100", "198.51.100.100")
    prefer = p.reconcile(svc("p", ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="PreferDualStack"))
    assert prefer.ingress == ("198.51.100.101", "2001:db8:1::101")


@pytest.mark.parametrize("annotations,spec,field", [
    ({"metallb.io/address-pool": "nope"}, {}, "Failed to allocate"),
    ({"metallb.io/loadBalancerIPs": "192.0.2.99"}, {}, "not in any address pool"),
    ({"metallb.io/loadBalancerIPs": "not-an-ip"}, {}, 'metadata.annotations["metallb.io/loadBalancerIPs"]'),
    ({"metallb.io/loadBalancerIPs": "198.51.100.1,"}, {}, 'metadata.annotations["metallb.io/loadBalancerIPs"]'),
    ({}, {"loadBalancerIP": "2001:db8:1::100"}, "spec.loadBalancerIP: is IPv6 but ip_families is IPv4"),
    ({"metallb.io/loadBalancerIPs": "198.51.100.100"}, {"loadBalancerIP": "198.51.100.100"}, "spec.loadBalancerIP"),
    ({"metallb.io/allow-shared-ip": " "}, {}, 'metadata.annotations["metallb.io/allow-shared-ip"]'),
])
def test_bad_input_is_a_warning_and_nothing_else(annotations: dict[str, str], spec: dict[str, Any],
                                                 field: str) -> None:
    w = plan().reconcile(svc(annotations=annotations, **spec))
    assert not w.writes_status
    assert [(e.type, e.reason) for e in w.events] == [("Warning", "AllocationFailed")]
    assert field in w.events[0].message


def test_bad_change_keeps_the_old_address() -> None:
    p = plan()
    obj = applied(svc(), p.reconcile(svc()))
    obj["metadata"]["annotations"]["metallb.io/address-pool"] = "nope"
    w = p.reconcile(obj)
    assert not w.writes_status and reasons(w) == ["AllocationFailed"]
    assert p.reconcile(svc("b")).ingress == ("198.51.100.101",)  # .100 still held


def test_sharing_rules() -> None:
    p = plan()
    key = {"metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "198.51.100.100"}
    assert p.reconcile(svc("tcp", annotations=key)).ingress == ("198.51.100.100",)
    udp = p.reconcile(svc("udp", annotations=key, ports=[{"port": 80, "protocol": "UDP"}]))
    assert udp.ingress == ("198.51.100.100",)
    same_port = p.reconcile(svc("dup", annotations=key))
    assert reasons(same_port) == ["AllocationFailed"] and "already uses TCP/80" in same_port.events[0].message
    other_key = {**key, "metallb.io/allow-shared-ip": "other"}
    mismatch = p.reconcile(svc("o", annotations=other_key, ports=[{"port": 81, "protocol": "TCP"}]))
    assert "sharing_key 'k', not 'other'" in mismatch.events[0].message
    local = p.reconcile(svc("l", annotations=key, ports=[{"port": 82, "protocol": "TCP"}],
                            externalTrafficPolicy="Local", selector={"app": "x"}))
    assert "backends differ" in local.events[0].message


def test_other_class_and_types_ignored_and_unclassed_optional() -> None:
    p = plan()
    assert p.reconcile(svc(loadBalancerClass="other.io/lb")) .events == ()
    assert not p.reconcile(svc(type="ClusterIP")).writes_status
    assert plan(serve_unclassed=False).reconcile(svc()).events == ()
    assert plan(serve_unclassed=False).reconcile(svc(loadBalancerClass="baremetal.lb/speaker")).ingress


def test_type_change_clears_and_frees() -> None:
    p = plan()
    obj = applied(svc(), p.reconcile(svc()))
    obj["spec"]["type"] = "ClusterIP"
    w = p.reconcile(obj)
    assert w.ingress == () and w.pool is None and reasons(w) == ["ClearAssignment"]
    assert p.reconcile(svc("b")).ingress == ("198.51.100.100",)


def test_deleted_frees_for_the_next() -> None:
    p = plan()
    p.reconcile(svc())
    p.forget("default/a")
    assert p.reconcile(svc("b")).ingress == ("198.51.100.100",)


def test_rebuild_holders_first_and_no_writes_for_right_ones() -> None:
    p = plan()
    base = svc("z-held", annotations={"metallb.io/loadBalancerIPs": "198.51.100.100"})
    held = applied(base, p.reconcile(base))
    pending = svc("a-pending")
    pending["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"  # older, listed first
    fresh = plan()
    writes = fresh.rebuild([pending, held])
    assert [(w.key, w.ingress) for w in writes] == [("default/a-pending", ("198.51.100.101",))]


def test_reload_with_pool_shrunk_moves_or_clears() -> None:
    p = plan()
    base = svc(annotations={"metallb.io/address-pool": "web"})
    obj = applied(base, p.reconcile(base))
    shrunk = plan(pools=[{"name": "web", "addresses": ["198.51.100.101/32"]}])
    (w,) = shrunk.rebuild([obj])
    assert w.ingress == ("198.51.100.101",) and reasons(w) == ["ClearAssignment", "IPAllocated"]
    gone = plan(pools=[{"name": "other", "addresses": ["203.0.113.0/28"]}])
    (w,) = gone.rebuild([obj])
    assert w.ingress == () and reasons(w) == ["ClearAssignment", "AllocationFailed"]


def test_reserved_addresses_are_never_handed_out() -> None:
    p = plan(reserved=[{"address": "198.51.100.100", "service": "apps/from-playbook"}])
    assert p.reconcile(svc()).ingress == ("198.51.100.101",)
    w = p.reconcile(svc("b", annotations={"metallb.io/loadBalancerIPs": "198.51.100.100"}))
    assert w.ingress is None
    assert w.events[0].message == (
        "Failed to allocate IP for default/b (metadata.annotations[\"metallb.io/loadBalancerIPs\"]=198.51.100.100): "
        "requested address 198.51.100.100 "
        "cannot be shared: it is held by apps/from-playbook, which has no sharing_key "
        "(apps/from-playbook: reserved for the playbook's ledger)")


def test_the_ledgers_own_service_keeps_its_reserved_address() -> None:
    """The playbook renders apps/from-playbook with the ledger's address and applies it: same service."""
    p = plan(reserved=[{"address": "198.51.100.101", "service": "apps/from-playbook"}])
    assert p.reconcile(svc("from-playbook", "apps")).ingress == ("198.51.100.101",)  # not .100, the lowest free
    asks = svc("from-playbook", "apps", annotations={"metallb.io/loadBalancerIPs": "198.51.100.101"})
    assert p.reconcile(asks).ingress == ("198.51.100.101",)
    p.forget("apps/from-playbook")  # deleted from the cluster: the ledger still holds it
    assert p.reconcile(svc("c", annotations={"metallb.io/loadBalancerIPs": "198.51.100.101"})).ingress is None
    assert p.reconcile(svc("d")).ingress == ("198.51.100.100",)
    assert p.reconcile(svc("e")).ingress == ("198.51.100.102",)


def test_a_rebuild_keeps_what_the_ledgers_service_holds_in_the_cluster() -> None:
    p = plan(reserved=[{"address": "198.51.100.101", "service": "apps/from-playbook"}])
    held = svc("from-playbook", "apps", ingress=["198.51.100.101"],
               annotations={ALLOCATED_FROM: "web"})
    assert p.rebuild([svc("new"), held]) == [p.reconcile(svc("new"))]
    assert p.reconcile(svc("new")).ingress == ("198.51.100.100",)


@pytest.mark.parametrize("raw,field", [
    ({"pools": POOLS}, "kubernetes"),
    ({"kubernetes": {"in_cluster": True, "kubeconfig": "/x"}, "pools": POOLS}, "kubernetes"),
    ({"kubernetes": {"in_cluster": True}, "pools": [{"name": "x", "addresses": ["bad"]}]}, "pools[0].addresses[0]"),
    ({"kubernetes": {"in_cluster": True}, "pools": [*POOLS, POOLS[0]]}, "pools[2].name"),
    ({"kubernetes": {"in_cluster": True}, "pools": POOLS, "lease": {"duration_s": 1}}, "lease.duration_s"),
    ({"kubernetes": {"in_cluster": True}, "pools": POOLS, "reserved": [{"address": "x", "service": "a/b"}]},
     "reserved[0].address"),
    ({"kubernetes": {"in_cluster": True}, "pools": POOLS, "serve_unclased": False}, "serve_unclased"),
])
def test_config_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as exc:
        ctl_config.parse(raw)
    assert exc.value.field == field


def test_request_errors_name_the_annotation() -> None:
    req = to_request(svc(annotations={"metallb.universe.tf/loadBalancerIPs": "1.2.3"}))
    assert req.error is not None and req.error.field == 'metadata.annotations["metallb.universe.tf/loadBalancerIPs"]'


class FakeLeases:
    """A Lease with the API's optimistic concurrency: replace with a stale resourceVersion is 409."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def _store(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.lease = copy.deepcopy(lease)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise ApiError(409, "exists", "create")
        return self._store(lease)

    def replace_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if lease["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "conflict", "replace")
        return self._store(lease)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return {}


def two_candidates(now: list[float]) -> tuple[FakeLeases, Elector, Elector]:
    """One lease, candidates a and b (9 s lease) on the clock ``now[0]``; a takes it first."""
    api = FakeLeases()
    a = Elector(api, "ns", "l", "a", 9, clock=lambda: now[0])
    b = Elector(api, "ns", "l", "b", 9, clock=lambda: now[0])
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    return api, a, b


def test_election_one_writer_and_takeover_after_the_duration() -> None:
    now = [0.0]
    api, a, b = two_candidates(now)
    now[0] = 5.0
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    # a dies: b sees no change for the whole duration before it takes the lease
    now[0] = 13.9
    assert not b.try_acquire_or_renew()
    assert not a.is_leader()  # a would have stopped writing at 5 + 6
    now[0] = 14.1
    assert b.try_acquire_or_renew() and b.is_leader()
    assert api.lease is not None and api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1


def test_election_release_hands_over_at_once() -> None:
    _api, a, b = two_candidates([0.0])
    a.release()
    assert not a.is_leader() and b.try_acquire_or_renew()


def test_run_check_status_never_import_the_client(tmp_path: Any) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("kubernetes: {in_cluster: true}\npools: [{name: a, addresses: [198.51.100.0/28]}]\n")
    code = (
        "import sys\n"
        "from lbspeaker import cli, daemon\n"
        f"assert cli.main(['check', '--config', {str(config)!r}]) == 0\n"
        "assert 'kubernetes' not in sys.modules, 'check imported kubernetes'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_controller_without_the_client_says_how_to_install_it(tmp_path: Any, monkeypatch: Any,
                                                              capsys: Any) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("kubernetes: {in_cluster: true}\npools: [{name: a, addresses: [198.51.100.0/28]}]\n")
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes now fails
    from lbspeaker import cli  # noqa: PLC0415

    assert cli.main(["controller", "--config", str(config)]) == 1
    assert "pip install 'lbspeaker[kubernetes]'" in capsys.readouterr().err


def test_check_names_a_bad_controller_field(tmp_path: Any, capsys: Any) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("kubernetes: {in_cluster: true}\npools: [{name: a, addresses: [198.51.100.0/28]}]\n"
                      "lease: {duration_s: 0}\n")
    from lbspeaker import cli  # noqa: PLC0415

    assert cli.main(["check", "--config", str(config)]) == 1
    assert "lease.duration_s: must be an integer from 3 to 300 (got 0)" in capsys.readouterr().err


class FakeWatchApi:
    """A list, then a watch that ends in 410 Gone, then a second list: what the watcher must do."""

    def __init__(self, controller_stopping: Any) -> None:
        self.lists = 0
        self.watched_from: list[str] = []
        self.stopping = controller_stopping

    def list_services(self) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        if self.lists == 2:
            self.stopping.set()
        return [svc(f"s{self.lists}")], str(10 * self.lists)

    def watch_services(self, resource_version: str, timeout_s: int) -> Any:
        self.watched_from.append(resource_version)
        yield {"type": "ADDED", "object": svc("late")}
        yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}


def test_watch_relists_on_410_gone() -> None:
    import asyncio  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from lbspeaker.controller.daemon import Controller  # noqa: PLC0415

    async def scenario() -> tuple[FakeWatchApi, Controller]:
        cfg = ctl_config.parse({"kubernetes": {"in_cluster": True}, "pools": POOLS})
        stopping = threading.Event()
        api = FakeWatchApi(stopping)
        controller = Controller(cfg, "unused", api, "test")  # type: ignore[arg-type]
        controller.stopping = stopping
        await asyncio.to_thread(controller.watch_forever)
        await asyncio.sleep(0.05)  # the loop runs what the watcher handed it
        return api, controller

    api, controller = asyncio.run(scenario())
    assert api.lists == 2 and api.watched_from[0] == "10"
    assert controller.metrics.get("relists_total") == 2
    assert set(controller.cache) == {"default/s2"}  # the relist replaced what the broken watch had left


class ConflictOnceKube:
    """The API for status writes: the first patch is refused with 409 (the Service changed meanwhile)."""

    def __init__(self, current: dict[str, Any]) -> None:
        self.current = current
        self.patches: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.gets = 0

    def patch_service_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(patch)
        if len(self.patches) == 1:
            raise ApiError(409, "the object has been modified", "patch")
        out = copy.deepcopy(self.current)
        out["metadata"]["resourceVersion"] = "9"
        return out

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return copy.deepcopy(self.current)

    def create_event(self, obj: dict[str, Any], **fields: str) -> None:
        self.events.append(fields["reason"])


def test_status_conflict_is_read_again_and_decided_again() -> None:
    import asyncio  # noqa: PLC0415

    from lbspeaker.controller.daemon import Controller  # noqa: PLC0415

    stale = svc("a")
    changed = svc("a", annotations={"metallb.io/loadBalancerIPs": "198.51.100.102"})
    changed["metadata"]["resourceVersion"] = "8"
    api = ConflictOnceKube(changed)

    async def scenario() -> Controller:
        cfg = ctl_config.parse({"kubernetes": {"in_cluster": True}, "pools": POOLS})
        controller = Controller(cfg, "unused", api, "test")  # type: ignore[arg-type]
        controller.elector.is_leader = lambda: True  # type: ignore[method-assign]
        controller.cache["default/a"] = stale
        await controller._write(controller.plan.reconcile(stale))
        return controller

    controller = asyncio.run(scenario())
    assert api.gets == 1 and len(api.patches) == 2
    assert api.patches[0]["metadata"]["resourceVersion"] == "1"
    assert api.patches[1]["metadata"]["resourceVersion"] == "8"  # written against what is there now
    assert api.patches[1]["status"]["loadBalancer"]["ingress"] == [{"ip": "198.51.100.102"}]
    assert api.events == ["IPAllocated"]
    assert controller.metrics.get("write_conflicts_total") == 1
    assert controller.metrics.get("writes_total", kind="status") == 2
