"""The daemon logs what it tells BGP to advertise and to withdraw, once per change.

bench/kubernetes times "the speaker advertises" and "the speaker withdraws" by
these lines; operators read them to see when a route left this node.
"""

import ipaddress
import logging
from typing import Any

import pytest
from lbspeaker.config import Config, MembershipConfig, NodeConfig, ServiceConfig, StatusConfig
from lbspeaker.daemon import Speaker
from lbspeaker.desired import DesiredServices

ROUTED = ipaddress.ip_address("203.0.113.10")


class RecordingBgp:
    """The BGP speaker's two methods the daemon calls here: what it was told, sessions up."""

    def __init__(self) -> None:
        self.told: list[tuple[str, ...]] = []

    def set_announcements(self, announcements: Any) -> None:
        self.told.append(tuple(str(a.address) for a in announcements))

    def status(self) -> dict[str, Any]:
        return {"peers": [{"state": "Established"}]}


def speaker_with(services: tuple[ServiceConfig, ...]) -> tuple[Speaker, RecordingBgp]:
    nodes = (NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),)
    config = Config("node1", nodes, MembershipConfig(b"s" * 32), ("eth0",), StatusConfig(), services)
    speaker = Speaker("/etc/baremetal-lb/speaker.yaml", config)
    bgp = RecordingBgp()
    speaker.bgp = bgp  # type: ignore[assignment]
    return speaker, bgp


def test_advertising_and_withdrawing_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    svc = ServiceConfig("default/api", (ROUTED,), mode="bgp")
    speaker, bgp = speaker_with((svc,))
    caplog.set_level(logging.INFO, logger="lbspeaker.daemon")

    speaker._update_bgp()
    speaker._update_bgp()  # nothing changed: nothing told, nothing logged
    assert bgp.told == [("203.0.113.10",)]
    assert [r.getMessage() for r in caplog.records] == ["BGP: now advertising 1 IPs: 203.0.113.10"]

    caplog.clear()
    speaker.bgp_controller.set_desired(DesiredServices())  # the Service went away
    speaker._update_bgp()
    assert bgp.told[-1] == ()
    assert [r.getMessage() for r in caplog.records] == ["BGP: no longer advertising 1 IPs: 203.0.113.10"]
