"""Three real speakers on a bridge; a client checks with real ARP, NDP and TCP."""

import json
import signal
import time

import pytest
from conftest import SERVICES, VIP_LOCAL4, VIP_LOCAL6, stable
from l2lab import HERE, LB_SPEAKER, PY, SECRET, VIP4, VIP6, node_v4
from lbspeaker.config import DEFAULT_PORT


@pytest.mark.parametrize("address", [VIP4, VIP6])
def test_vip_answers_only_from_leader(lab, address):
    leader = lab.node_by_name(stable(lab, address))
    for _unused in range(3):
        assert lab.who_has(address) == [leader.mac]
    assert lab.tcp(address) == leader.name
    for n in lab.nodes:  # every node agrees with /status of the others
        views = lab.leaders(address)
        assert views[n.name][0] == leader.name
        assert views[n.name][1] == (n is leader)


@pytest.mark.parametrize("address", [VIP_LOCAL4, VIP_LOCAL6])
def test_local_follows_healthy_endpoints(lab, address):
    try:
        first = stable(lab, address)
        # take endpoints away from the leader: the IP moves to a node that has one
        lab.set_healthy(lab.node_by_name(first), False)
        second = stable(lab, address)
        assert second not in (first, None)
        assert lab.who_has(address) == [lab.node_by_name(second).mac]
        assert lab.tcp(address) == second
        # only one node keeps endpoints: it must lead
        remaining = [n for n in lab.nodes if n.name not in (first, second)]
        lab.set_healthy(lab.node_by_name(second), False)
        third = stable(lab, address)
        assert third == remaining[0].name
        assert lab.tcp(address) == third
        # no endpoint anywhere: nobody answers, rather than a black hole somewhere
        for n in lab.nodes:
            lab.set_healthy(n, False)
        assert stable(lab, address) is None
        assert lab.who_has(address) == []
        for n in lab.nodes:
            doc = lab.status(n)
            entry = next(a for a in doc["announcements"] if a["address"] == address)
            assert not entry["announcing"] and "no eligible node" in entry["reason"]
    finally:
        for n in lab.nodes:
            lab.set_healthy(n, True)
    assert stable(lab, address) is not None


def test_bad_packets_are_dropped_counted_and_survived(lab):
    leader = lab.node_by_name(stable(lab, VIP4))
    other = next(n for n in lab.nodes if n is not leader)
    # truncated and garbage ARP/NDP frames, from the client, at the leader
    lab.probe("garbage", "eth0", leader.mac, "200")
    # heartbeats with a wrong MAC and from an unknown node, from the client
    lab.probe("heartbeats", node_v4(leader.index), str(DEFAULT_PORT), SECRET, other.name)
    # a replay: an old sequence with the right secret, from a real node's address
    port = str(DEFAULT_PORT)
    lab.exec(other.ns, PY, str(HERE / "l2probe.py"), "replay", node_v4(leader.index), port, SECRET, other.name,
             node_v4(other.index))
    time.sleep(0.3)
    metrics = lab.exec(leader.ns, PY, str(HERE / "l2probe.py"), "get", "http://127.0.0.1:7473/metrics").stdout
    values = {}
    for line in metrics.splitlines():
        if line and not line.startswith("#"):
            key, _space, value = line.rpartition(" ")
            values[key] = float(value)
    assert values.get('lbspeaker_heartbeats_dropped_total{reason="bad_mac"}', 0) >= 1
    assert values.get('lbspeaker_heartbeats_dropped_total{reason="unknown_node"}', 0) >= 1
    assert values.get('lbspeaker_heartbeats_dropped_total{reason="replay"}', 0) >= 1
    assert values.get('lbspeaker_packets_dropped_total{interface="eth0",reason="malformed"}', 0) >= 1
    assert values["lbspeaker_members"] == 3
    assert values["lbspeaker_arp_replies_total{interface=\"eth0\"}"] >= 1
    assert leader.speaker.poll() is None
    assert stable(lab, VIP4) == leader.name
    assert lab.who_has(VIP4) == [leader.mac]
    assert lab.tcp(VIP4) == leader.name


def test_status_command_table_and_json(lab):
    leader = stable(lab, VIP4)
    n = lab.nodes[0]
    out = lab.exec(n.ns, LB_SPEAKER, "status").stdout
    header = out.splitlines()[2]
    for col in ("IP", "SERVICE", "MODE", "LEADER", "ANNOUNCING", "WHY"):
        assert col in header
    row = next(line for line in out.splitlines() if line.startswith(VIP4 + " "))
    assert "default/web" in row and leader in row and "l2" in row
    assert ("yes" in row.split()) == (n.name == leader)
    doc = json.loads(lab.exec(n.ns, LB_SPEAKER, "status", "--json", "--url", "http://127.0.0.1:7473/status").stdout)
    assert doc["node"] == n.name and doc["bgp"] == {"peers": []}
    assert {m["name"] for m in doc["members"] if m["alive"]} == {"node1", "node2", "node3"}
    assert lab.exec(n.ns, LB_SPEAKER, "status", "--url", "http://127.0.0.1:1/status", check=False).returncode != 0


def test_sighup_reload_keeps_unchanged_announcements(lab, tmp_path):
    leader = lab.node_by_name(stable(lab, VIP4))
    new_vip = "198.51.100.102"
    services = [*SERVICES, {"name": "default/new", "addresses": [new_vip]}]
    out = str(tmp_path / "probe.json")
    probe = lab.start_outage_probe(VIP4, 2.5, out)
    time.sleep(0.8)
    for n in lab.nodes:
        lab.write_config(n, services)
        n.speaker.send_signal(signal.SIGHUP)
    assert probe.wait(timeout=30) == 0
    with open(out) as fh:
        result = json.load(fh)
    print(f"\nSIGHUP reload: {result}")
    assert result["failed"] == 0 and result["answered"] == [leader.name]
    new_leader = stable(lab, new_vip)
    assert lab.tcp(new_vip) == new_leader
    assert stable(lab, VIP4) == leader.name
    # and back: the removed service's IP is withdrawn everywhere
    for n in lab.nodes:
        lab.write_config(n, SERVICES)
        n.speaker.send_signal(signal.SIGHUP)
    assert lab.wait_for(lambda: lab.leaders(new_vip) == {}, 10)
    assert lab.who_has(new_vip) == []
