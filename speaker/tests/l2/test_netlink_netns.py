"""host.LocalRoutes and link.LinkWatcher against a real kernel, in a namespace of
their own (netlink_agent.py runs them there): routes tagged so leftovers are
found, kernel errors with their errno, link and address events, and an
overrun of the event socket survived."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from l2lab import sh

AGENT = str(Path(__file__).resolve().parent / "netlink_agent.py")


@pytest.fixture
def netns(request):
    name = f"lbnl-{os.getpid() % 4096:x}{secrets.token_hex(2)}"
    sh("ip", "netns", "add", name)
    request.addfinalizer(lambda: sh("ip", "netns", "del", name, check=False))
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


def run_agent(ns: str, scenario: str) -> dict:
    res = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, AGENT, scenario],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_local_routes_are_ours_leftovers_go_and_errors_carry_their_errno(netns):
    # a killed speaker's routes (ours: proto 199 in table local), and others' that must stay
    for route in (
        ("-4", "route", "add", "local", "203.0.113.52", "dev", "lo", "table", "local", "proto", "199"),
        ("-6", "route", "add", "local", "2001:db8:5::52", "dev", "lo", "table", "local", "proto", "199"),
        ("-4", "route", "add", "local", "203.0.113.51", "dev", "lo", "table", "local", "proto", "198"),
        ("-4", "route", "add", "203.0.113.50/32", "dev", "lo", "proto", "199"),
    ):
        sh("ip", "-n", netns, *route)
    seen = run_agent(netns, "routes")
    assert seen["leftovers_removed"] == 2
    assert seen["after_leftovers"] == []
    assert seen["after_add"] == ["198.51.100.7", "2001:db8:1::7"]
    assert seen["installed"] == ["198.51.100.7", "2001:db8:1::7"]
    assert seen["after_remove"] == ["2001:db8:1::7"]
    assert seen["bad_add"] == 19  # ENODEV
    local = sh("ip", "-n", netns, "route", "show", "table", "local").stdout
    main = sh("ip", "-n", netns, "route", "show").stdout
    assert "203.0.113.51" in local and "203.0.113.50" in main  # not ours: untouched


def test_link_and_address_events_and_an_overrun(netns):
    sh("ip", "-n", netns, "link", "add", "lbnl0", "type", "veth", "peer", "name", "lbnl1")
    for knob in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
        sh("ip", "netns", "exec", netns, "sysctl", "-qw", knob)
    sh("ip", "-n", netns, "link", "set", "lbnl1", "up")
    sh("ip", "-n", netns, "link", "set", "lbnl0", "up")
    sh("ip", "-n", netns, "addr", "add", "198.51.100.7/24", "dev", "lbnl0")
    seen = run_agent(netns, "links")
    assert seen["watched_up"] == ["lbnl0"]
    assert seen["down_seen"] and seen["ups_while_down"] == []
    assert seen["up_seen"]
    assert seen["unserved_before"] == [6] and seen["unserved_after"] == []
    assert seen["address_seen"]
    assert seen["overrun_logged"], "the flood did not overflow the event socket: the test proved nothing"
    assert seen["resynced_down"]
    assert seen["addresses_after_overrun"]
    assert seen["up_after_overrun"]
    assert seen["closed"]


def test_a_route_added_while_the_speaker_stops_is_removed(netns):
    """stop() cancels the reconcile while the kernel's answer to a route add is outstanding:
    the kernel has the route, the speaker has not recorded it. It must not stay behind."""
    sh("ip", "-n", netns, "link", "add", "lbnl0", "type", "veth", "peer", "name", "lbnl1")
    sh("ip", "-n", netns, "link", "set", "lbnl1", "up")
    sh("ip", "-n", netns, "link", "set", "lbnl0", "up")
    sh("ip", "-n", netns, "addr", "add", "198.51.100.7/24", "dev", "lbnl0")
    seen = run_agent(netns, "stop-during-take")
    assert seen["take_in_flight"], "the speaker never added its route: the test proved nothing"
    assert seen["during"] == ["198.51.100.100"]
    assert seen["after_stop"] == []
    assert "proto 199" not in sh("ip", "-n", netns, "route", "show", "table", "local").stdout
