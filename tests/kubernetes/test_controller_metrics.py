"""/metrics of a running controller holds every series the alert rules and the dashboard read.

The rules (roles/speaker/files/prometheus) and the dashboard name lbcontroller_
metrics with labels (tests/prometheus/alert_series.py); a controller leading a
real control plane must expose each of them, and the figures must follow what
it does: a Service it cannot serve waits, with its reason, and is counted once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Namespace, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prometheus"))
from alert_series import missing_series

pytestmark = pytest.mark.usefixtures("cluster")

POOL = "metallb.io/address-pool"


def test_every_series_the_alerts_read_is_exposed(ns: Namespace, start_controller: Any) -> None:
    ctl = start_controller()
    ns.apply("web")
    assert ns.wait_ingress("web") == ["198.51.100.100"]
    ns.apply("lost", annotations={POOL: "no-such-pool"})
    ns.wait_event("lost", "AllocationFailed")
    # as rendered: labels in name order
    waiting = f'lbcontroller_service_waiting_for_address{{namespace="{ns.name}",reason="no_pool",service="lost"}}'
    wait_for("the refused Service exported as waiting", lambda: ctl.metric(waiting) == 1)

    assert missing_series(ctl.get("/metrics")[1], "lbcontroller_") == []
    assert ctl.metric("lbcontroller_leader") == 1
    assert ctl.metric('lbcontroller_allocation_failures_total{reason="no_pool"}') == 1
    assert ctl.metric("lbcontroller_services_waiting") >= 1
    # the pool's figures: what pool_info computes (Allocator.usage), for the addresses the cluster holds
    in_use = ctl.metric('lbcontroller_pool_addresses_in_use{family="ipv4",pool="default"}')
    available = ctl.metric('lbcontroller_pool_addresses_available{family="ipv4",pool="default"}')
    assert in_use >= 1 and in_use + available == 10, (in_use, available)

    # the Service is deleted: it waits no more, and its failure stays counted once
    ns.delete("lost")
    wait_for("the deleted Service no longer waiting", lambda: ctl.metric(waiting) == 0)
    assert ctl.metric('lbcontroller_allocation_failures_total{reason="no_pool"}') == 1


def test_refused_reload_is_exported_until_a_good_one(start_controller: Any) -> None:
    """BaremetalLBControllerConfigReloadFailed reads lbcontroller_config_last_reload_successful."""
    ctl = start_controller()
    gauge = "lbcontroller_config_last_reload_successful"
    # metric() reads a missing sample as 0: the sample must be there, at 1, before any reload
    assert any(line.startswith(gauge + " ") for line in ctl.get("/metrics")[1].splitlines())
    assert ctl.metric(gauge) == 1

    good = ctl.config
    ctl.write_config({**good, "pools": [{"name": "x", "addresses": ["nonsense"]}]})
    ctl.reload()
    wait_for("the refused reload counted", lambda: ctl.metric('lbcontroller_reloads_total{result="error"}') == 1)
    assert ctl.metric(gauge) == 0
    assert any(line.startswith(gauge + " ") for line in ctl.get("/metrics")[1].splitlines())

    ctl.write_config(good)
    ctl.reload()
    wait_for("the good reload counted", lambda: ctl.metric('lbcontroller_reloads_total{result="ok"}') == 1)
    assert ctl.metric(gauge) == 1
