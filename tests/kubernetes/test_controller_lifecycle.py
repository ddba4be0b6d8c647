"""Leader election and restarts against the real control plane."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest
from conftest import Namespace, wait_for

pytestmark = pytest.mark.usefixtures("cluster")

LEASE_S = 6


def test_leader_killed_the_other_takes_over_within_the_lease(ns: Namespace, start_controller: Any) -> None:
    first = start_controller("ctl-a", lease_s=LEASE_S)
    second = start_controller("ctl-b", lease_s=LEASE_S, wait=False)
    wait_for("ctl-b synced as a standby", lambda: second.get("/healthz")[0] == 200
             and second.status().get("holder") == "ctl-a", 20)
    assert wait_for("ctl-b's /status", second.status, 10)["leader"] is False
    ns.apply("before")
    assert ns.wait_ingress("before") == ["198.51.100.100"]
    time.sleep(1.0)
    assert second.writes() == 0  # the standby never wrote
    assert {e["reportingInstance"] for e in ns.events("before")} == {"ctl-a"}

    first.kill9()
    killed = time.monotonic()
    ns.apply("after")
    wait_for("ctl-b leading", lambda: second.status().get("leader"), LEASE_S + 5, interval=0.05)
    took = time.monotonic() - killed
    # the lease runs from ctl-a's last renewal, before the kill; one poll (duration/10) of slack
    assert took <= LEASE_S * 1.1 + 0.5, took
    assert ns.wait_ingress("after") == ["198.51.100.101"]
    # the event is written after the status: wait for it, then it must be ctl-b's alone
    wait_for("the event for after", lambda: ns.events("after"), 10)
    assert {e["reportingInstance"] for e in ns.events("after")} == {"ctl-b"}
    assert ns.ingress("before") == ["198.51.100.100"]  # nothing moved
    assert {e["reportingInstance"] for e in ns.events("before")} == {"ctl-a"}
    print(f"takeover after kill -9: {took:.2f} s (lease {LEASE_S} s)")


def test_never_two_writers(ns: Namespace, start_controller: Any) -> None:
    """Two controllers racing from the start: every status write and event comes from one of them."""
    a = start_controller("ctl-a", lease_s=LEASE_S, wait=False)
    b = start_controller("ctl-b", lease_s=LEASE_S, wait=False)
    for i in range(10):
        ns.apply(f"svc-{i}")
    for i in range(10):
        ns.wait_ingress(f"svc-{i}")
    # /status may answer slowly on a loaded machine: wait for an answer, never read a missing one as False
    status = {c.identity: wait_for(f"{c.identity}'s /status", c.status, 10) for c in (a, b)}
    leader, other = (a, b) if status["ctl-a"]["leader"] else (b, a)
    assert status[other.identity]["leader"] is False
    assert other.writes() == 0

    def one_event_each() -> list[set[str]] | None:  # events follow the status writes
        got = [{e["reportingInstance"] for e in ns.events(f"svc-{i}")} for i in range(10)]
        return got if all(got) else None

    instances = set().union(*wait_for("an event for each Service", one_event_each, 10))
    assert instances == {leader.identity}
    assert len({ns.ingress(f"svc-{i}")[0] for i in range(10)}) == 10  # no address handed out twice


def test_clean_stop_hands_over_at_once(ns: Namespace, start_controller: Any) -> None:
    first = start_controller("ctl-a", lease_s=30)
    second = start_controller("ctl-b", lease_s=30, wait=False)
    wait_for("ctl-b standing by", lambda: second.get("/healthz")[0] == 200
             and second.status().get("holder") == "ctl-a", 20)
    first.stop()
    stopped = time.monotonic()
    wait_for("ctl-b leading", lambda: second.status().get("leader"), 10)
    assert time.monotonic() - stopped < 5  # released, not left to lapse (30 s)


def test_restart_with_1000_allocated_services_writes_nothing(ns: Namespace, start_controller: Any) -> None:
    pools = [{"name": "big", "addresses": ["2001:db8:5::/112"]}]  # IPv6: documentation IPv4 is too small
    first = start_controller("ctl-a", pools=pools)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: ns.apply(f"s{i:04d}", ipFamilies=["IPv6"]), range(1000)))
    wait_for("1,000 Services with addresses", lambda: first.status().get("pending") == 0 and all(
        (o.get("status") or {}).get("loadBalancer", {}).get("ingress")
        for o in ns.api.request("GET", f"/api/v1/namespaces/{ns.name}/services")["items"]), 120, interval=0.5)
    before = ns.api.request("GET", f"/api/v1/namespaces/{ns.name}/services")["items"]
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in before}
    events_before = len(ns.api.request("GET", f"/api/v1/namespaces/{ns.name}/events")["items"])
    first.stop()

    second = start_controller("ctl-b", pools=pools)
    time.sleep(1.0)  # anything it would write has had time to happen
    assert wait_for("ctl-b's /status", second.status, 10)["allocations"] == 1000
    assert second.writes() == 0
    after = ns.api.request("GET", f"/api/v1/namespaces/{ns.name}/services")["items"]
    assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in after} == versions
    assert len(ns.api.request("GET", f"/api/v1/namespaces/{ns.name}/events")["items"]) == events_before

    # and a pending Service takes none of the held addresses (MetalLB #1774, #2479)
    held = {o["status"]["loadBalancer"]["ingress"][0]["ip"] for o in after}
    ns.apply("pending", ipFamilies=["IPv6"])
    assert ns.wait_ingress("pending")[0] not in held
