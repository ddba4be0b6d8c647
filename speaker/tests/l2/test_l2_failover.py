"""Failover as a client sees it: TCP probe every 10 ms while the leader is lost.

Outage figures are printed; the assertions are about behaviour only (traffic
resumes, exactly one node answers, it is the elected one), never timings.
"""

import json
import subprocess
import time

import pytest
from conftest import stable
from l2lab import VIP4, VIP6, sh

KINDS = ["kill9", "sigterm", "linkdown", "partition"]


def _probe_report(out, capsys, label):
    """l2probe's result file, printed on one line (failed probes, who answered)."""
    with open(out) as fh:
        result = json.load(fh)
    with capsys.disabled():
        print(f"\n  {label}: failed probes {result['failed']}/{result['probes']}, answered by {result['answered']}")
    return result


@pytest.mark.parametrize("address", [VIP4, VIP6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("kind", KINDS)
def test_failover(lab, kind, address, tmp_path, capsys):
    lab.all_alive()
    leader = lab.node_by_name(stable(lab, address))
    assert lab.tcp(address) == leader.name
    out = str(tmp_path / "probe.json")
    duration = 6.0 if kind == "partition" else 4.0
    probe = lab.start_outage_probe(address, duration, out)
    time.sleep(1.0)
    lab.fail(leader, kind)
    try:
        if kind == "partition":
            # the others elect a new leader while the old one still thinks it leads
            time.sleep(1.5)
            others = [n for n in lab.nodes if n is not leader]
            views = {n.name: v for n, v in ((n, lab.status(n)) for n in others) if v}
            owners = {
                name for name, doc in views.items()
                for a in doc["announcements"] if a["address"] == address and a["announcing"]
            }
            assert len(owners) == 1 and leader.name not in owners
            lab.restore(leader, kind)
        assert probe.wait(timeout=duration + 20) == 0
        with open(out) as fh:
            result = json.load(fh)
        if kind != "partition":
            new = lab.node_by_name(stable(lab, address, skip=(leader.name,)))
            assert new is not leader
            assert lab.who_has(address) == [new.mac]  # exactly one owner answers
            assert lab.tcp(address) == new.name
    finally:
        if kind != "partition":
            lab.restore(leader, kind)
    with capsys.disabled():
        print(f"\n  {kind:9s} {'IPv6' if ':' in address else 'IPv4'}: outage {result['outage_s']:.3f} s, "
              f"failed probes {result['failed']}/{result['probes']}, answered by {result['answered']}")
    assert result["recovered"], result
    # after restore/heal: one owner, the elected one, and the client's cache points at it (MetalLB #584)
    lab.all_alive()
    final = lab.node_by_name(stable(lab, address))
    assert lab.wait_for(lambda: lab.who_has(address) == [final.mac], 10, 0.3)
    assert lab.wait_for(lambda: lab.tcp(address) == final.name, 10, 0.2)
    assert lab.wait_for(lambda: lab.client_neighbor(address) == final.mac, 10, 0.2)


@pytest.mark.parametrize("address", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_rejoin_is_hitless(lab, address, tmp_path, capsys):
    """A restarted leader takes its IP back without a lost probe: the node covering
    for it lets go only once the returning node says it already answers (ready)."""
    lab.all_alive()
    leader = lab.node_by_name(stable(lab, address))
    lab.fail(leader, "kill9")
    cover = lab.node_by_name(stable(lab, address, skip=(leader.name,)))
    assert lab.wait_for(lambda: lab.tcp(address) == cover.name, 10, 0.2)
    out = str(tmp_path / "probe.json")
    probe = lab.start_outage_probe(address, 4.0, out)
    time.sleep(1.0)
    lab.restore(leader, "kill9")  # the speaker starts again
    assert probe.wait(timeout=30) == 0
    result = _probe_report(out, capsys, f"rejoin    {'IPv6' if ':' in address else 'IPv4'}")
    lab.all_alive()
    assert stable(lab, address) == leader.name  # it ranks first again, and took the IP back
    assert lab.wait_for(lambda: lab.client_neighbor(address) == leader.mac, 10, 0.2)
    assert result["failed"] == 0, result


def test_link_back_without_its_ipv6_address_does_not_take_the_ipv6_ip(lab):
    """The kernel flushes IPv6 addresses on link-down; a node whose link comes back
    without them must leave its IPv6 IP to a node that can serve it, and say why."""
    lab.all_alive()
    leader = lab.node_by_name(stable(lab, VIP6))
    sh("ip", "-n", leader.ns, "link", "set", "eth0", "down")
    try:
        cover = stable(lab, VIP6, skip=(leader.name,))
        sh("ip", "-n", leader.ns, "link", "set", "eth0", "up")  # back, without its IPv6 address
        lab.all_alive()
        assert stable(lab, VIP6) == cover

        def says_why():
            doc = lab.status(leader) or {"announcements": []}
            entry = [a for a in doc["announcements"] if a["address"] == VIP6]
            return entry and not entry[0]["announcing"] and "cannot serve IPv6 here" in entry[0]["reason"]

        assert lab.wait_for(says_why, 10, 0.2), lab.status(leader)
        assert lab.tcp(VIP6) == cover
        assert lab.who_has(VIP6) == [lab.node_by_name(cover).mac]
    finally:
        lab.restore(leader, "linkdown")  # the address comes back
    assert stable(lab, VIP6) == leader.name
    assert lab.wait_for(lambda: lab.tcp(VIP6) == leader.name, 10, 0.2)


def _drop(lab, name, iif, oifs):
    rules = (
        f"add table bridge {name}\n"
        f"add chain bridge {name} isolate {{ type filter hook forward priority 0 ; }}\n"
        f"add rule bridge {name} isolate iifname {iif} oifname {{ {', '.join(oifs)} }} drop\n"
    )
    subprocess.run(["ip", "netns", "exec", lab.br, "nft", "-f", "-"], input=rules, text=True, check=True, timeout=10)


def test_partition_heal_seen_first_by_the_cut_off_node_is_hitless(lab, tmp_path, capsys):
    """bench/chaos: after a heal the cut-off node hears its peers before they hear it
    (ARP resolves again one way first). It gives back the IP it took during the
    partition at once, while the elected node re-announces only when it hears it:
    until then clients keep the cut-off node's MAC, so it must keep accepting."""
    lab.all_alive()
    elected = lab.node_by_name(stable(lab, VIP6))
    cut = next(n for n in lab.nodes if n is not elected)
    assert lab.wait_for(lambda: lab.tcp(VIP6) == elected.name, 10, 0.2)  # the client has a neighbour entry
    peers = [n.port for n in lab.nodes if n is not cut]
    _drop(lab, "lbl2out", cut.port, peers)
    _drop(lab, "lbl2in", peers[0], [cut.port])
    if len(peers) > 1:
        sh("ip", "netns", "exec", lab.br, "nft", "add", "rule", "bridge", "lbl2in", "isolate", "iifname", peers[1],
           "oifname", cut.port, "drop")
    try:
        # alone, the cut-off node takes VIP6 too, and the client follows its NA
        assert lab.wait_for(lambda: lab.client_neighbor(VIP6) == cut.mac, 10, 0.1), lab.client_neighbor(VIP6)
        out = str(tmp_path / "probe.json")
        probe = lab.start_outage_probe(VIP6, 4.0, out)
        time.sleep(1.0)
        sh("ip", "netns", "exec", lab.br, "nft", "delete", "table", "bridge", "lbl2in")  # it hears its peers...
        time.sleep(0.8)
        sh("ip", "netns", "exec", lab.br, "nft", "delete", "table", "bridge", "lbl2out")  # ...they hear it later
        assert probe.wait(timeout=30) == 0
    finally:
        for table in ("lbl2in", "lbl2out"):
            sh("ip", "netns", "exec", lab.br, "nft", "delete", "table", "bridge", table, check=False)
    result = _probe_report(out, capsys, "one-way heal IPv6")
    lab.all_alive()
    assert stable(lab, VIP6) == elected.name
    assert lab.wait_for(lambda: lab.client_neighbor(VIP6) == elected.mac, 10, 0.2)
    assert result["failed"] == 0, result
