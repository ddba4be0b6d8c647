"""Interop with BIRD 2: routes, attributes, FIB, ECMP, Local withdraw, MD5, 4-byte ASN, GR, BFD.

Every wait is bounded; nothing asserts a duration.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from .bgplab import NODE_ASN, ROUTER_ASN, ROUTER_V4, ROUTER_V6, Lab, node_v4, node_v6, wait_for
from .helpers import need

V4 = "203.0.113.10"
V6 = "2001:db8:ff::10"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("bird", "birdc")


def bird_peer(i: int, asn: int = NODE_ASN, extra: str = "", proto: str | None = None) -> str:
    return f"protocol bgp {proto or f'n{i}'} from nodes {{ neighbor {node_v4(i)} as {asn}; {extra} }}\n"


def speaker_bgp(i: int, asn: int = NODE_ASN, peer: dict[str, Any] | None = None,
                ads: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    p = {"address": ROUTER_V4, "asn": ROUTER_ASN, "next_hop_ipv6": node_v6(i), "connect_retry_time": 0.5,
         "connect_retry_max": 2}
    p.update(peer or {})
    data: dict[str, Any] = {"asn": asn, "router_id": node_v4(i), "peers": [p]}
    if ads is not None:
        data["advertisements"] = ads
    return data


ANNS = [{"service": "web", "address": V4}, {"service": "web", "address": V6}]


def test_routes_with_communities_in_rib_and_fib(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    bird = lab.start_bird(bird_peer(1))
    sp = lab.start_speaker(1, speaker_bgp(1, ads=[{"communities": ["64500:100", "no-export"],
                                                  "large_communities": ["64500:1:2"]}]), ANNS)
    wait_for(lambda: bird.established("n1"), 30, what="BGP session with BIRD")
    r4 = wait_for(lambda: bird.route(f"{V4}/32"), 15, what="IPv4 route in BIRD")
    r6 = wait_for(lambda: bird.route(f"{V6}/128"), 15, what="IPv6 route in BIRD")
    for out in (r4, r6):
        assert "BGP.community: (64500,100) (65535,65281)" in out
        assert "BGP.large_community: (64500, 1, 2)" in out
        assert f"BGP.as_path: {NODE_ASN}" in out
    assert f"via {node_v4(1)}" in wait_for(lambda: lab.router.route(V4), 15, what="IPv4 route in FIB")
    assert f"via {node_v6(1)}" in wait_for(lambda: lab.router.route(V6), 15, what="IPv6 route in FIB")
    st = sp.status()
    peer = st["bgp"]["peers"][0]
    assert peer["state"] == "Established" and peer["advertised"] == 2 and peer["asn"] == ROUTER_ASN
    assert any(line.startswith("lbspeaker_bgp_session_up{") and float(line.rsplit(" ", 1)[1]) == 1 for line in st["metrics"])
    # SIGTERM: routes withdrawn (Cease), clean exit.
    assert sp.stop() == 0
    wait_for(lambda: not lab.router.route(V4) and not lab.router.route(V6), 15, what="withdraw after SIGTERM")
    assert not bird.established("n1")


def test_ibgp_local_pref_and_four_byte_asn(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    gw = "direct; ipv4 { import all; export none; gateway direct; }; ipv6 { import all; export none; gateway direct; };"
    bird = lab.start_bird(bird_peer(1, asn=ROUTER_ASN, extra=gw) + bird_peer(2, asn=4200000001))
    lab.start_speaker(1, speaker_bgp(1, asn=ROUTER_ASN, ads=[{"local_pref": 250}]), ANNS)
    lab.start_speaker(2, speaker_bgp(2, asn=4200000001), [{"service": "x", "address": "203.0.113.20"}])
    wait_for(lambda: bird.established("n1") and bird.established("n2"), 30, what="both sessions")
    r4 = wait_for(lambda: bird.route(f"{V4}/32"), 15, what="iBGP IPv4 route")
    assert "BGP.local_pref: 250" in r4
    assert "BGP.local_pref: 250" in wait_for(lambda: bird.route(f"{V6}/128"), 15, what="iBGP IPv6 route")
    r = wait_for(lambda: bird.route("203.0.113.20/32"), 15, what="route from 4-byte ASN")
    assert "BGP.as_path: 4200000001" in r


def test_ecmp_cluster_and_local_withdraw_without_reset(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    bird = lab.start_bird(bird_peer(1) + bird_peer(2))
    local_v4 = "203.0.113.30"
    anns = [{"service": "web", "address": V4, "policy": "Cluster"},
            {"service": "db", "address": local_v4, "policy": "Local"}]
    sp1 = lab.start_speaker(1, speaker_bgp(1), anns)
    sp2 = lab.start_speaker(2, speaker_bgp(2), anns)
    wait_for(lambda: bird.established("n1") and bird.established("n2"), 30, what="both sessions")

    def both(prefix: str) -> bool:
        out = lab.router.route(prefix)
        return f"via {node_v4(1)}" in out and f"via {node_v4(2)}" in out and "nexthop" in out

    wait_for(lambda: both(V4), 15, what="ECMP route over both nodes")
    wait_for(lambda: both(local_v4), 15, what="ECMP route for the Local service")
    # Node 1's local endpoints go unhealthy: the daemon drops the Local announcement (SIGHUP here).
    sp1.write(speaker_bgp(1), [anns[0]])
    sp1.send(signal.SIGHUP)
    wait_for(lambda: f"via {node_v4(1)}" not in lab.router.route(local_v4), 15, what="Local withdrawn on node 1")
    assert f"via {node_v4(2)}" in lab.router.route(local_v4)
    assert both(V4)
    st = sp1.status()["bgp"]["peers"][0]
    assert st["state"] == "Established"
    assert any(line.startswith("lbspeaker_bgp_established_total{") and float(line.rsplit(" ", 1)[1]) == 1
               for line in sp1.status()["metrics"]), "the session must not have been reset"
    # Cluster: node 2 stops (SIGTERM); the route remains via node 1 only.
    assert sp2.stop() == 0
    wait_for(lambda: not both(V4) and f"via {node_v4(1)}" in lab.router.route(V4), 15, what="node 2 withdrawn")


def test_md5_right_and_wrong_password(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    bird = lab.start_bird(bird_peer(1, extra='password "s3cret-1";') + bird_peer(2, extra='password "s3cret-2";'))
    lab.start_speaker(1, speaker_bgp(1, peer={"password": "s3cret-1"}), ANNS)
    sp2 = lab.start_speaker(2, speaker_bgp(2, peer={"password": "wrong"}),
                            [{"service": "x", "address": "203.0.113.20"}])
    wait_for(lambda: bird.established("n1"), 30, what="MD5 session with the right password")
    wait_for(lambda: bird.route(f"{V4}/32"), 15, what="route over the MD5 session")
    # The wrong password never gets a session: after several connect attempts it is still down.
    wait_for(lambda: sp2.status()["bgp"]["peers"][0]["last_error"], 30, what="a connect error on node 2")
    assert not bird.established("n2")
    assert sp2.status()["bgp"]["peers"][0]["state"] != "Established"
    assert not bird.route("203.0.113.20/32")


def test_graceful_restart_keeps_routes_over_a_crash(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    bird = lab.start_bird(bird_peer(1, extra="graceful restart on;"))
    bgp = speaker_bgp(1, peer={"graceful_restart": True, "restart_time": 60})
    sp = lab.start_speaker(1, bgp, ANNS)
    wait_for(lambda: bird.established("n1"), 30, what="session")
    wait_for(lambda: lab.router.route(V4), 15, what="route in FIB")
    assert "graceful restart" in bird.protocol("n1").lower()
    sp.stop(signal.SIGKILL)
    # BIRD sees the TCP session close and keeps the routes as stale while the speaker restarts.
    wait_for(lambda: not bird.established("n1"), 30, what="BIRD to notice the crash")
    proto = bird.protocol("n1")
    assert "Neighbor graceful restart active" in proto, proto
    assert lab.router.route(V4), "routes must survive the crash under graceful restart"
    sp2 = lab.start_speaker(1, bgp, ANNS, name="sp1b")
    wait_for(lambda: bird.established("n1"), 30, what="session after restart")
    wait_for(lambda: "graceful restart active" not in bird.protocol("n1"), 30, what="GR to complete")
    assert lab.router.route(V4)
    assert sp2.stop() == 0
    wait_for(lambda: not lab.router.route(V4), 15, what="withdraw after SIGTERM")


def test_bfd_up_and_routes_dropped_on_silent_link_loss(make_lab) -> None:  # type: ignore[no-untyped-def]
    need("nft")
    lab: Lab = make_lab(1)
    bird = lab.start_bird(bird_peer(1, extra="bfd on; hold time 240;"), bfd=True)
    peer = {"hold_time": 240, "keepalive_time": 80, "bfd": {"min_rx_ms": 100, "min_tx_ms": 100, "multiplier": 3}}
    sp = lab.start_speaker(1, speaker_bgp(1, peer=peer),
                           ANNS)
    wait_for(lambda: bird.established("n1"), 30, what="session")
    wait_for(lambda: lab.router.route(V4), 15, what="route in FIB")
    wait_for(lambda: " Up " in bird.cmd("show", "bfd", "sessions"), 30, what="BFD Up on BIRD")
    wait_for(lambda: sp.status()["bgp"]["peers"][0]["bfd"]["state"] == "Up", 15, what="BFD Up on the speaker")
    # Silent loss: the node drops everything; no FIN, no RST, the link stays up.
    node = lab.nodes[0]
    node.exec(["nft", "add table inet lbbg; add chain inet lbbg in { type filter hook input priority 0; policy drop; };"
               " add chain inet lbbg out { type filter hook output priority 0; policy drop; }"])
    # With a 240 s hold time only BFD can remove the route within this bound.
    wait_for(lambda: not lab.router.route(V4) and not lab.router.route(V6), 30, what="routes dropped by BFD")
    assert "Down" in bird.cmd("show", "bfd", "sessions") or not bird.established("n1")
    st = wait_for(lambda: (p := sp.status()["bgp"]["peers"][0])["bfd"]["state"] != "Up" and p, 15,
                  what="speaker's BFD down")
    assert st["state"] != "Established"
    node.exec(["nft", "delete table inet lbbg"])
    wait_for(lambda: bird.established("n1"), 60, what="session back after the link heals")
    wait_for(lambda: lab.router.route(V4), 15, what="route back")


def test_passive_speaker_with_gtsm_and_md5(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    # BIRD connects (passive off) with an MD5 key and demands TTL 255 (GTSM); the speaker only listens.
    bird = lab.start_bird(bird_peer(1, extra='passive off; ttl security on; password "pw-passive";'))
    lab.start_speaker(1, speaker_bgp(1, peer={"passive": True, "ttl": 255, "password": "pw-passive"}), ANNS)
    wait_for(lambda: bird.established("n1"), 30, what="session opened by BIRD to the passive speaker")
    wait_for(lambda: lab.router.route(V4), 15, what="route in FIB")


def test_ipv6_session_carries_both_families(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    bird = lab.start_bird(f"protocol bgp n1 from nodes {{ local {ROUTER_V6} as {ROUTER_ASN}; "
                          f"neighbor {node_v6(1)} as {NODE_ASN}; bfd on; }}\n", bfd=True)
    bgp = {"asn": NODE_ASN, "router_id": node_v4(1),
           "peers": [{"address": ROUTER_V6, "asn": ROUTER_ASN, "next_hop_ipv4": node_v4(1),
                      "connect_retry_time": 0.5, "connect_retry_max": 2, "bfd": True}]}
    sp = lab.start_speaker(1, bgp, ANNS)
    wait_for(lambda: bird.established("n1"), 30, what="BGP over IPv6")
    assert f"via {node_v6(1)}" in wait_for(lambda: lab.router.route(V6), 15, what="IPv6 route in FIB")
    assert f"via {node_v4(1)}" in wait_for(lambda: lab.router.route(V4), 15, what="IPv4 route in FIB")
    # BFD over IPv6 (hop limit 255 both ways).
    wait_for(lambda: sp.status()["bgp"]["peers"][0]["bfd"]["state"] == "Up", 30, what="BFD over IPv6 up")
    assert " Up " in bird.cmd("show", "bfd", "sessions")


def test_source_address(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    second = "198.51.100.51"
    lab.nodes[0].ip("addr", "add", f"{second}/24", "dev", "eth0")
    # BIRD knows the node only by its second address: the session must come from there.
    bird = lab.start_bird(f"protocol bgp n1 from nodes {{ neighbor {second} as {NODE_ASN}; }}\n")
    lab.start_speaker(1, speaker_bgp(1, peer={"source_address": second}), ANNS)
    wait_for(lambda: bird.established("n1"), 30, what="session from the source address")
    assert f"via {second}" in wait_for(lambda: lab.router.route(V4), 15, what="route via the source address")


def test_ebgp_multihop_from_a_loopback_address(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    loop = "198.51.100.201"
    node = lab.nodes[0]
    node.ip("addr", "add", f"{loop}/32", "dev", "lo")
    lab.router.ip("route", "add", f"{loop}/32", "via", node_v4(1))
    # BIRD reaches the node's loopback through a static route: a multihop session, next hops resolved through it.
    bird = lab.start_bird(
        f"protocol bgp n1 from nodes {{ neighbor {loop} as {NODE_ASN}; multihop 2; }}\n",
        extra=f"protocol static {{ ipv4; route {loop}/32 via {node_v4(1)}; }}")
    lab.start_speaker(1, speaker_bgp(1, peer={"multihop": True, "source_address": loop}),
                      [{"service": "web", "address": V4}])
    wait_for(lambda: bird.established("n1"), 30, what="multihop session")
    out = wait_for(lambda: bird.route(f"{V4}/32"), 15, what="route over the multihop session")
    assert f"BGP.next_hop: {loop}" in out
    assert f"via {node_v4(1)}" in wait_for(lambda: lab.router.route(V4), 15, what="route in FIB")
