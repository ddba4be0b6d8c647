"""/metrics of a running `lb-speaker run` holds every series the alert rules and the dashboard read.

One node in a namespace with an L2 service, two bgp services, a BFD-enabled
peer (BIRD) and a second configured member that never comes: the rules in
roles/speaker/files/prometheus and the dashboard must find each metric they
name with the labels they use (tests/prometheus/alert_series.py), and the
series must say what the daemon does (announcing, member missing, reload refused).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .bgplab import Lab, node_v4, wait_for
from .helpers import need
from .test_daemon_bgp import Daemon, daemon_config
from .test_interop_bird import bird_peer, speaker_bgp

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "prometheus"))
from alert_series import missing_series

L2_V4 = "198.51.100.100"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("bird", "birdc")


def scrape_config() -> dict[str, Any]:
    config = daemon_config(1, speaker_bgp(1, peer={"name": "r1", "bfd": {"enabled": True}}))
    config["nodes"].append({"name": "n2", "address": node_v4(2)})  # configured, never started: missing
    config["membership"].update({"interval_ms": 100, "dead_after": 5})
    config["interfaces"] = ["eth0"]
    config["services"].append({"name": "shop/front", "addresses": [L2_V4]})
    return config


def samples(daemon: Daemon, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(daemon.metrics()):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_every_series_the_alerts_read_is_exposed(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    bird = lab.start_bird(bird_peer(1))
    config = scrape_config()
    daemon = Daemon(lab, 1, config)
    wait_for(lambda: bird.established("n1"), 30, what="session up with the daemon")
    l2 = (("address", L2_V4), ("mode", "l2"), ("node", "n1"), ("service", "shop/front"))
    wait_for(lambda: samples(daemon, "lbspeaker_address_announced").get(l2) == 1, 15, what="L2 address announced")

    assert missing_series(daemon.metrics(), "lbspeaker_") == []
    assert samples(daemon, "lbspeaker_member_up") == {(("member", "n2"), ("node", "n1")): 0}
    session = samples(daemon, "lbspeaker_bgp_session_up")
    assert session == {(("name", "r1"), ("node", "n1"), ("peer", "198.51.100.1")): 1}, session
    assert samples(daemon, "lbspeaker_config_last_reload_successful") == {(("node", "n1"),): 1}

    # a reload with a bad field is refused: the gauge the alert reads goes to 0
    config["membership"]["interval_ms"] = "often"
    daemon.config.write_text(yaml.safe_dump(config))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: samples(daemon, "lbspeaker_config_last_reload_successful") == {(("node", "n1"),): 0}, 10,
             what="reload refused")
    assert samples(daemon, "lbspeaker_address_announced").get(l2) == 1  # the running config goes on
