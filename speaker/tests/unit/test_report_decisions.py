"""Which node announces, told to the cluster: the reporting decisions and the worker, without root.

``wanted_reports``/``report_calls`` are pure; the worker is run against an
in-memory API that keeps Services' annotations and Events and can be taken
down, so the order of calls, the catch-up after an outage and the restart
case are checked without a control plane (tests/kubernetes does that part).
"""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from lbspeaker import election
from lbspeaker.config import Config, MembershipConfig, NodeConfig, ServiceConfig, StatusConfig
from lbspeaker.controller.kube import ApiError
from lbspeaker.daemon import Speaker
from lbspeaker.decisions.bgp import BgpDecision
from lbspeaker.decisions.l2 import RECORD_REASONS, L2Announcement
from lbspeaker.decisions.report import BGP_REASONS, ReportCall, apply_call, report_calls, wanted_reports
from lbspeaker.decisions.view import Eligibility, MembershipView
from lbspeaker.desired import DesiredServices, merge
from lbspeaker.sources.announcing import AnnouncementReporter, ReportWorker, annotation_key

V4 = ipaddress.ip_address("198.51.100.100")
V6 = ipaddress.ip_address("2001:db8:1::100")
B4 = ipaddress.ip_address("203.0.113.10")


def desired(*names: str, static: tuple[str, ...] = ()) -> DesiredServices:
    services = tuple(ServiceConfig(n, (V4,)) for n in (*names, *static))
    return DesiredServices(services, cluster_services={n: n for n in names})


def row(address, *services, announcing=True, reason="elected among 3 eligible nodes (Cluster) [a, b, c]"):
    return L2Announcement(address, services, ("eth0",), "here" if announcing else "other", announcing, reason)


def bgp(service, address, policy="Cluster", advertise=True):
    return BgpDecision(service, address, policy, advertise, advertise, "whatever /status says")


def test_only_cluster_services_are_reported_and_only_what_this_node_announces():
    d = desired("ns/web", "ns/dns", static=("static-web",))
    wanted = wanted_reports(
        d,
        [row(V4, "ns/web", "static-web"), row(V6, "ns/dns", announcing=False)],
        [bgp("ns/web", B4, "Local"), bgp("ns/dns", B4, advertise=False), bgp("static-web", B4)],
    )
    assert wanted == {
        "ns/web": {
            str(V4): ("l2", RECORD_REASONS["Cluster"]),  # not the row's reason, which names the candidates
            str(B4): ("bgp", BGP_REASONS["Local"]),
        },
        "ns/dns": {},  # still wanted, nothing announced here: stale records get withdrawn, not forgotten
    }


def test_the_cluster_key_survives_the_merge_and_the_config_file_wins_a_name():
    static = DesiredServices((ServiceConfig("ns/web", (V4,)),))
    cluster = DesiredServices(
        (ServiceConfig("ns/web", (V4,)), ServiceConfig("ns/api", (V6,))),
        cluster_services={"ns/web": "ns/web", "ns/api": "ns/api"},
    )
    merged = merge([("config", static), ("cluster", cluster)])
    assert merged.state.cluster_services == {"ns/api": "ns/api"}  # ns/web is the config file's: not reported


def test_calls_for_each_transition():
    reason = "only eligible node (Cluster)"
    assert report_calls({}, {"ns/a": {"ip1": ("l2", reason)}}) == [ReportCall("announce", "ns/a", "ip1", "l2", reason)]
    held = {"ns/a": {"ip1": ("l2", reason)}}
    assert report_calls(held, {"ns/a": {"ip1": ("l2", reason)}}) == []  # kept: nothing to say
    assert report_calls(held, {"ns/a": {"ip1": ("l2", "elected among 2 eligible nodes (Cluster) [x, y]")}}) == [
        ReportCall("announce", "ns/a", "ip1", "l2", "elected among 2 eligible nodes (Cluster) [x, y]")
    ]
    assert report_calls(held, {"ns/a": {}}) == [ReportCall("withdraw", "ns/a", "ip1")]  # released
    assert report_calls(held, {}) == [ReportCall("withdraw", "ns/a", "ip1"), ReportCall("forget", "ns/a")]
    assert report_calls({"ns/a": {}}, {}) == [ReportCall("forget", "ns/a")]
    # a move between modes: the withdrawal first, so the record never shows the address twice
    two = {"ns/a": {"ip1": ("l2", reason)}, "ns/b": {"ip2": ("bgp", BGP_REASONS["Cluster"])}}
    calls = report_calls(two, {"ns/a": {"ip3": ("l2", reason)}, "ns/b": {}})
    assert calls == [
        ReportCall("withdraw", "ns/a", "ip1"),
        ReportCall("announce", "ns/a", "ip3", "l2", reason),
        ReportCall("withdraw", "ns/b", "ip2"),
    ]
    for call in calls:
        apply_call(two, call)
    assert two == {"ns/a": {"ip3": ("l2", reason)}, "ns/b": {}}


class MemoryApi:
    """Services with annotations, and Events, as the API server keeps them; ``down`` refuses every request."""

    def __init__(self, *keys: str) -> None:
        self.services: dict[str, dict[str, Any]] = {
            k: {"metadata": {"namespace": k.split("/")[0], "name": k.split("/")[1], "annotations": {}}} for k in keys
        }
        self.events: list[str] = []
        self.requests: list[str] = []
        self.down = False
        self.refuse: dict[str, int] = {}  # Service key -> the HTTP status every request about it gets

    def _check(self, what: str) -> None:
        self.requests.append(what)
        if self.down:
            raise ConnectionRefusedError(f"{what}: connection refused")
        key = what.split(" ", 1)[1]
        if key in self.refuse:
            raise ApiError(self.refuse[key], "refused", what)

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        self._check(f"GET {namespace}/{name}")
        if f"{namespace}/{name}" not in self.services:
            raise ApiError(404, "not found", "GET")
        return json.loads(json.dumps(self.services[f"{namespace}/{name}"]))  # type: ignore[no-any-return]

    def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check(f"PATCH {namespace}/{name}")
        svc = self.services.get(f"{namespace}/{name}")
        if svc is None:
            raise ApiError(404, "not found", "PATCH")
        for k, v in patch["metadata"]["annotations"].items():
            if v is None:
                svc["metadata"]["annotations"].pop(k, None)
            else:
                svc["metadata"]["annotations"][k] = v
        return json.loads(json.dumps(svc))  # type: ignore[no-any-return]

    def create_event(self, service: dict[str, Any], **kw: Any) -> None:
        self._check("POST event")
        self.events.append(kw["message"])

    def record(self, key: str, node: str) -> dict[str, Any]:
        value = self.services[key]["metadata"]["annotations"].get(annotation_key(node))
        return json.loads(value)["addresses"] if value else {}  # type: ignore[no-any-return]


def settle(worker: ReportWorker, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not worker.idle():
        assert time.monotonic() < deadline, "the worker did not settle"
        time.sleep(0.01)


@pytest.fixture
def api():
    return MemoryApi("ns/web", "ns/api")


@pytest.fixture
def worker(api):
    w = ReportWorker(AnnouncementReporter(api), "node1", log_every_s=60)  # type: ignore[arg-type]
    w.start()
    yield w
    w.stop()


def test_the_worker_announces_withdraws_and_clears(api, worker):
    reason = "elected among 3 eligible nodes (Cluster) [node1, node2, node3]"
    before = datetime.now(UTC).replace(microsecond=0)  # "since" is written to the second
    worker.want({"ns/web": {"198.51.100.100": ("l2", reason)}, "ns/api": {}})
    settle(worker)
    record = api.record("ns/web", "node1")
    since = record["198.51.100.100"].pop("since")
    assert record == {"198.51.100.100": {"mode": "l2", "reason": reason}}
    assert before <= datetime.strptime(since, "%Y-%m-%dT%H:%M:%S%z") <= datetime.now(UTC)  # RFC 3339, UTC, now
    assert since.endswith("Z")
    assert api.events == [f"announcing 198.51.100.100 from node node1 (l2): {reason}"]
    assert api.record("ns/api", "node1") == {}
    worker.want({"ns/web": {}, "ns/api": {}})  # another node leads now
    settle(worker)
    assert annotation_key("node1") not in api.services["ns/web"]["metadata"]["annotations"]
    assert len(api.events) == 1  # a withdrawal makes no Event


def test_an_outage_is_caught_up_when_the_api_answers_again(api, worker):
    api.down = True
    worker.want({"ns/web": {"198.51.100.100": ("l2", "only eligible node (Cluster)")}})
    deadline = time.monotonic() + 5
    while worker.failures < 2:  # retried, not given up
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not worker.idle()
    api.down = False
    settle(worker, timeout=15)  # the back-off is bounded (controller.kube.backoff)
    assert set(api.record("ns/web", "node1")) == {"198.51.100.100"}
    assert len(api.events) == 1


def test_a_restarted_speaker_withdraws_what_its_last_run_left(api):
    api.services["ns/web"]["metadata"]["annotations"][annotation_key("node1")] = json.dumps(
        {"node": "node1", "addresses": {"198.51.100.100": {"mode": "l2", "reason": "old", "since": "x"}}}
    )
    w = ReportWorker(AnnouncementReporter(api), "node1")  # type: ignore[arg-type]
    w.start()
    try:
        w.want({"ns/web": {}}, recorded={"ns/web"})  # this run does not announce it; the source saw the record
        settle(w)
    finally:
        w.stop()
    assert annotation_key("node1") not in api.services["ns/web"]["metadata"]["annotations"]
    assert api.events == []


def test_a_burst_of_wants_ends_in_the_last_one(api, worker):
    for i in range(50):
        worker.want({"ns/web": {f"198.51.100.{100 + i % 3}": ("l2", f"reason {i}")}})
    settle(worker)
    assert {ip: e["reason"] for ip, e in api.record("ns/web", "node1").items()} == {"198.51.100.101": "reason 49"}


def test_a_deleted_service_is_forgotten_without_error(api, worker):
    worker.want({"ns/web": {"198.51.100.100": ("l2", "only eligible node (Cluster)")}})
    settle(worker)
    del api.services["ns/web"]
    worker.want({})
    settle(worker)
    assert worker.failures == 0
    assert worker.reporter.announced("ns/web", "node1") == {}


class ClusterSnapshot:
    """A cluster source that has listed once (the daemon's Source protocol)."""

    name = "cluster"

    def __init__(self, state: DesiredServices) -> None:
        self.state = state

    def snapshot(self) -> DesiredServices:
        return self.state

    async def start(self, changed: Any) -> None:
        pass

    async def stop(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.wanted: list[dict[str, Any]] = []

    def start(self) -> None:
        pass

    def want(self, wanted: Any, recorded: Any = ()) -> None:
        self.wanted.append(json.loads(json.dumps(wanted)))

    def stop(self, flush_s: float = 0.0) -> None:
        pass


def test_the_daemon_reports_its_takeovers_of_cluster_services_only_and_only_on_change():
    nodes = tuple(NodeConfig(f"node{i}", ipaddress.ip_address(f"198.51.100.1{i}")) for i in (1, 2))
    static = ServiceConfig("static-web", (ipaddress.ip_address("198.51.100.101"),))
    config = Config("node1", nodes, MembershipConfig(b"s" * 32), ("eth0",), StatusConfig(), (static,))
    cluster = DesiredServices((ServiceConfig("ns/web", (V4,)),), cluster_services={"ns/web": "ns/web"})
    recorder = Recorder()
    speaker = Speaker("/etc/baremetal-lb/speaker.yaml", config, sources=[ClusterSnapshot(cluster)], reporter=recorder)
    speaker._report(())
    assert recorder.wanted == [{"ns/web": {}}]  # known, not announced here yet: nothing about static-web

    plan = speaker.l2_controller.plan(MembershipView(True, {"node1": frozenset()}), speaker._eligibility())
    for action in plan.actions:
        speaker.l2_controller.carried_out(action)
    speaker._report(())
    speaker._report(())  # nothing changed: nothing handed over again
    assert recorder.wanted[1:] == [{"ns/web": {str(V4): ["l2", RECORD_REASONS["Cluster"]]}}]

    live = {"node1": frozenset(), "node2": frozenset()}
    plan = speaker.l2_controller.plan(MembershipView(True, live), speaker._eligibility())
    for action in plan.actions:
        speaker.l2_controller.carried_out(action)
    speaker._report(())
    assert election.rank(live, V4) == ["node2", "node1"]  # fixed by the hash: node2 takes V4 over
    assert [a.kind for a in plan.actions] == ["release"]
    assert recorder.wanted[-1] == {"ns/web": {}}  # released here, so withdrawn from the record


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_services_with_nothing_to_report_cost_no_call():
    keys = [f"ns/s{i:03}" for i in range(200)]
    api = MemoryApi(*keys)
    w = ReportWorker(AnnouncementReporter(api), "node1")  # type: ignore[arg-type]
    w.start()
    try:
        w.want({k: {} for k in keys})  # nothing announced here, no record seen by the source
        settle(w)
        assert api.requests == []
        w.want({**{k: {} for k in keys}, "ns/s150": {"198.51.100.100": ("l2", "elected among the eligible nodes")}})
        settle(w)
        assert api.requests == ["GET ns/s150", "PATCH ns/s150", "POST event"]  # the takeover, and only it
        api.requests.clear()
        w.want({k: {} for k in keys})  # released: withdrawn without reading anything again
        settle(w)
        assert api.requests == ["PATCH ns/s150"]
    finally:
        w.stop()
    assert annotation_key("node1") not in api.services["ns/s150"]["metadata"]["annotations"]


def test_a_service_that_keeps_failing_does_not_hold_up_the_others():
    api = MemoryApi("ns/a", "ns/b", "ns/c", "ns/d")
    api.refuse["ns/b"] = 403  # say, no RBAC in that namespace
    api.refuse["ns/c"] = 422
    w = ReportWorker(AnnouncementReporter(api), "node1", log_every_s=60)  # type: ignore[arg-type]
    w.start()
    try:
        w.want({k: {f"198.51.100.10{i}": ("l2", "r")} for i, k in enumerate(sorted(api.services))})
        wait_for(lambda: api.record("ns/a", "node1") and api.record("ns/d", "node1"))
        wait_for(lambda: api.requests.count("GET ns/b") >= 2)  # retried
        assert not w.idle()
        assert w.failures >= 3
        api.refuse.clear()
        settle(w, timeout=20)  # the back-off is bounded
    finally:
        w.stop()
    assert {k: list(api.record(k, "node1")) for k in sorted(api.services)} == {
        "ns/a": ["198.51.100.100"], "ns/b": ["198.51.100.101"], "ns/c": ["198.51.100.102"], "ns/d": ["198.51.100.103"]}
    assert len(api.events) == 4


def test_a_service_deleted_and_created_again_gets_its_record(api, worker):
    worker.want({"ns/web": {"198.51.100.100": ("l2", "r1")}})
    settle(worker)
    fresh = json.loads(json.dumps(api.services["ns/web"]))
    fresh["metadata"]["annotations"] = {}
    del api.services["ns/web"]  # deleted; the source has not seen it yet, and this node's reason changes
    api.requests.clear()
    worker.want({"ns/web": {"198.51.100.100": ("l2", "r2")}})
    wait_for(lambda: "PATCH ns/web" in api.requests)  # refused: 404
    api.services["ns/web"] = fresh  # created again within the source's debounce: the same want stands
    settle(worker, timeout=15)
    assert api.record("ns/web", "node1")["198.51.100.100"]["reason"] == "r2"
    assert api.events[-1] == "announcing 198.51.100.100 from node node1 (l2): r2"  # a takeover on the new Service
    assert worker.failures == 0  # a Service gone is no failure


def test_a_candidate_joining_or_leaving_rewrites_no_record():
    from lbspeaker.decisions.l2 import L2Controller  # noqa: PLC0415

    for policy in ("Cluster", "Local"):
        c = L2Controller("node1")
        svc = ServiceConfig("ns/web", (V4,), external_traffic_policy=policy)
        d = DesiredServices((svc,), cluster_services={"ns/web": "ns/web"})
        others = [n for n in (f"node{i}" for i in range(2, 40)) if election.rank(["node1", n], V4)[0] == "node1"][:3]
        wanted = []
        reasons = []
        for live in (["node1"], ["node1", others[0]], ["node1", *others], ["node1", others[1]]):
            view = {n: frozenset({"ns/web"}) for n in live}
            if policy == "Local":
                d = DesiredServices((svc,), {"ns/web": frozenset(live)}, cluster_services={"ns/web": "ns/web"})
            c.set_desired(d, lambda s: ("eth0",))
            for action in c.plan(MembershipView(True, view), Eligibility("node1", frozenset({"ns/web"}))).actions:
                c.carried_out(action)
            row = c.rows()[0]
            assert row.leader == "node1" and row.announcing
            reasons.append(row.reason)
            wanted.append(wanted_reports(d, c.rows(), ()))
        assert len(set(reasons)) == 4  # /status names the candidates
        assert all(w == wanted[0] for w in wanted), wanted  # the record does not
        assert wanted[0]["ns/web"][str(V4)][0] == "l2"


def test_the_reporters_failures_are_a_metric():
    nodes = (NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),)
    config = Config("node1", nodes, MembershipConfig(b"s" * 32), ("eth0",), StatusConfig(), ())
    recorder = Recorder()
    speaker = Speaker("/etc/baremetal-lb/speaker.yaml", config, reporter=recorder)
    recorder.failures = 3  # type: ignore[attr-defined]
    body = speaker.status_server.body_for("/metrics")[2].decode()
    assert "\nlbspeaker_cluster_report_errors_total 3.0\n" in body
