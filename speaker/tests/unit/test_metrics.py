"""/metrics as a Prometheus server reads it: types, HELP lines and names of every family."""

import ipaddress
import re

import pytest
from lbspeaker.bgp.config import parse_bgp_config
from lbspeaker.bgp.manager import BGP_FAMILIES, BgpSpeaker
from lbspeaker.bgp.session import BgpSession, State
from lbspeaker.config import Config, MembershipConfig, NodeConfig, ServiceConfig, StatusConfig
from lbspeaker.daemon import Speaker
from lbspeaker.decisions.l2 import L2Action
from lbspeaker.metrics import FAMILIES, Metrics

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def parse(text):
    """The text exposition format: {family: {"help", "type", "samples": [(labels, value)]}}."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _hash, what, name, rest = line.split(" ", 3)
            entry = families.setdefault(name, {"samples": []})
            assert what.lower() not in entry, f"second {what} line for {name}"
            assert not entry["samples"], f"{what} for {name} after its samples"
            entry[what.lower()] = rest
        elif line:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = dict(LABEL.findall(m["labels"] or ""))
            assert families.get(m["name"]), f"{m['name']}: sample without HELP and TYPE before it"
            families[m["name"]]["samples"].append((labels, float(m["value"])))
    return families


@pytest.fixture
def exposition():
    """/metrics of a speaker with L2, membership, health checks, forwarding and two BGP peers."""
    nodes = (
        NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),
        NodeConfig("node2", ipaddress.ip_address("198.51.100.12")),
    )
    config = Config("node1", nodes, MembershipConfig(b"s" * 32, 7946, 50, 4), (), StatusConfig(), ())
    speaker = Speaker("/etc/lb-speaker/config.yaml", config)
    m = speaker.metrics
    m.inc("leader_changes_total")
    m.inc("heartbeats_dropped_total", reason="bad_mac")
    m.inc("heartbeats_send_errors_total")
    m.inc("membership_stalls_total")
    for interface in ("eth0", "eth1"):
        m.inc("arp_replies_total", interface=interface)
        m.inc("ndp_replies_total", interface=interface)
        m.inc("gratuitous_sent_total", interface=interface)
        m.inc("packets_dropped_total", interface=interface, reason="malformed")
    m.inc("health_checks_total", service="default/web", result="healthy")
    m.inc("health_checks_total", service='odd "name"\\', result="unhealthy")
    m.inc("backend_checks_total", backend="198.51.100.21:8080", result="healthy")
    m.inc("forwarding_apply_errors_total")
    m.inc("reloads_total", result="ok")
    m.inc("reloads_total", 1234567, result="error")

    bgp = parse_bgp_config({
        "asn": 64501, "router_id": "198.51.100.11",
        "peers": [{"name": "r1", "address": "198.51.100.1", "asn": 64500, "bfd": {"enabled": True}},
                  {"address": "2001:db8::1", "asn": 64500}],
    })
    speaker.bgp = BgpSpeaker(bgp)
    for peer in bgp.peers:  # sessions as the speaker holds them, without connecting
        speaker.bgp._sessions[peer.key] = BgpSession(peer, bgp.asn, bgp.router_id)
    speaker.bgp._sessions[bgp.peers[0].key].state = State.ESTABLISHED
    speaker.bgp._sessions[bgp.peers[0].key].counters.updates_sent = 3
    speaker.membership.peers["node2"].last_seen = 1.0
    speaker.last_reload_ok = False

    code, content_type, body = speaker.status_server.body_for("/metrics")
    assert code == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode()


@pytest.fixture
def exposition_speaker():
    """A speaker (not started) with one L2 service IP and one Local BGP service IP in its tables."""
    web = ServiceConfig("default/web", (ipaddress.ip_address("198.51.100.100"),))
    api = ServiceConfig("default/api", (ipaddress.ip_address("203.0.113.10"),), mode="bgp",
                        external_traffic_policy="Local")
    nodes = (NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),)
    config = Config("node1", nodes, MembershipConfig(b"s" * 32, 7946, 50, 4), ("eth0",), StatusConfig(), (web, api))
    return Speaker("/etc/lb-speaker/config.yaml", config)


def test_every_total_is_a_counter_and_every_counter_a_total(exposition):
    for name, family in parse(exposition).items():
        assert (family["type"] == "counter") == name.endswith("_total"), (name, family["type"])


def test_every_family_has_a_real_help_and_a_type(exposition):
    families = parse(exposition)
    assert {name.removeprefix("lbspeaker_") for name in families} == set(FAMILIES) | set(BGP_FAMILIES)
    for name, family in families.items():
        assert family.get("type") in ("counter", "gauge"), name
        help_text = family.get("help", "")
        assert help_text.strip(), f"{name} has no HELP"
        assert help_text not in (name, name.removeprefix("lbspeaker_")), f"{name}: HELP is its own name"
        assert len(help_text.split()) >= 3, f"{name}: HELP {help_text!r} says nothing"


def test_names_follow_prometheus_conventions(exposition):
    for name, family in parse(exposition).items():
        assert re.fullmatch(r"lbspeaker_[a-z0-9_]+", name), name
        # Base units only: seconds and bytes, never ms, _s or kb.
        assert not re.search(r"_(ms|milliseconds|s|minutes|kb|mb)(_total)?$", name), name
        for labels, value in family["samples"]:
            assert not any(key.startswith("__") for key in labels), (name, labels)
            assert value >= 0, (name, labels, value)


def test_samples_are_the_recorded_values(exposition):
    families = parse(exposition)
    assert ({"result": "error"}, 1234567.0) in families["lbspeaker_reloads_total"]["samples"]
    assert ({"backend": "198.51.100.21:8080", "result": "healthy"}, 1.0) in (
        families["lbspeaker_backend_checks_total"]["samples"])
    r1 = {"node": "node1", "peer": "198.51.100.1", "name": "r1"}
    assert (r1, 3.0) in families["lbspeaker_bgp_updates_sent_total"]["samples"]
    assert (r1, 1.0) in families["lbspeaker_bgp_session_up"]["samples"]
    assert (r1, 0.0) in families["lbspeaker_bfd_session_up"]["samples"]
    # membership, as this node sees it: node2 was heard once and is not alive now
    assert families["lbspeaker_member_up"]["samples"] == [({"node": "node1", "member": "node2"}, 0.0)]
    ((labels, age),) = families["lbspeaker_member_heartbeat_age_seconds"]["samples"]
    assert labels == {"node": "node1", "member": "node2"} and age > 0
    assert families["lbspeaker_config_last_reload_successful"]["samples"] == [({"node": "node1"}, 0.0)]
    assert 'service="odd \\"name\\"\\\\"' in exposition
    # Unlabelled counters exist from the start, so rate() sees their first increment.
    assert families["lbspeaker_heartbeats_received_total"]["samples"] == [({}, 0.0)]


def test_undeclared_or_mistyped_metric_is_refused():
    m = Metrics()
    with pytest.raises(KeyError, match="not declared"):
        m.inc("backend_check_total", backend="b", result="ok")
    with pytest.raises(TypeError, match="is a counter"):
        m.gauge("reloads_total", lambda: 1)
    with pytest.raises(ValueError, match="labels"):
        m.inc("reloads_total")
    bad = Metrics()
    bad.source(lambda: {"member_up": [((("node", "n1"),), 1)]})  # no member label
    with pytest.raises(ValueError, match="labels"):
        bad.render()
    assert set(FAMILIES) == {name.removeprefix("lbspeaker_") for name in parse(m.render().decode())}


def test_address_announced_and_eligibility_follow_the_daemon(exposition_speaker):
    """Per service IP one series per node and mode, 1 only while announced: what the alert rules count."""
    speaker = exposition_speaker
    families = parse(speaker.status_server.body_for("/metrics")[2].decode())
    samples = families["lbspeaker_address_announced"]["samples"]
    assert ({"node": "node1", "address": "198.51.100.100", "service": "default/web", "mode": "l2"}, 0.0) in samples
    assert ({"node": "node1", "address": "203.0.113.10", "service": "default/api", "mode": "bgp"}, 0.0) in samples
    eligible = dict((labels["service"], value) for labels, value in families["lbspeaker_service_eligible"]["samples"])
    assert eligible == {"default/web": 1.0, "default/api": 0.0}  # api is Local without a healthy endpoint

    speaker.l2_controller.carried_out(L2Action("take", ipaddress.ip_address("198.51.100.100"), ("eth0",)))
    families = parse(speaker.status_server.body_for("/metrics")[2].decode())
    assert ({"node": "node1", "address": "198.51.100.100", "service": "default/web", "mode": "l2"}, 1.0) in (
        families["lbspeaker_address_announced"]["samples"])
