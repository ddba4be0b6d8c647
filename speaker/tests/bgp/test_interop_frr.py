"""Interop with FRR 8.4: routes and attributes in RIB and FIB, ECMP, MD5, BFD."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from .bgplab import NODE_ASN, ROUTER_ASN, ROUTER_V4, Frr, Lab, node_v4, node_v6, wait_for
from .helpers import need

V4 = "203.0.113.10"
V6 = "2001:db8:ff::10"
ANNS = [{"service": "web", "address": V4}, {"service": "web", "address": V6}]


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh")


def frr_conf(neighbors: str = "", bfd: bool = False) -> str:
    return f"""router bgp {ROUTER_ASN}
 bgp router-id {ROUTER_V4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor NODES peer-group
 neighbor NODES remote-as {NODE_ASN}
 neighbor NODES passive
 neighbor NODES timers connect 1
{" neighbor NODES bfd" if bfd else ""}
 bgp listen range 198.51.100.0/24 peer-group NODES
{neighbors}
 address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
 address-family ipv6 unicast
  neighbor NODES activate
  maximum-paths 8
 exit-address-family
"""


def speaker_bgp(i: int, peer: dict[str, Any] | None = None, ads: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    p = {"address": ROUTER_V4, "asn": ROUTER_ASN, "next_hop_ipv6": node_v6(i), "connect_retry_time": 0.5,
         "connect_retry_max": 2}
    p.update(peer or {})
    data: dict[str, Any] = {"asn": NODE_ASN, "router_id": node_v4(i), "peers": [p]}
    if ads is not None:
        data["advertisements"] = ads
    return data


def start_frr(lab: Lab, conf: str, bfd: bool = False) -> Frr:
    frr = Frr(lab, conf, bfd)
    frr.start()
    return frr


def test_routes_communities_and_ecmp(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    frr = start_frr(lab, frr_conf())
    ads = [{"communities": ["64500:100"], "large_communities": ["64500:1:2"]}]
    sp1 = lab.start_speaker(1, speaker_bgp(1, ads=ads), ANNS)
    lab.start_speaker(2, speaker_bgp(2, ads=ads), ANNS)
    wait_for(lambda: frr.established(node_v4(1)) and frr.established(node_v4(2)), 30, what="both sessions")
    for prefix in (f"{V4}/32", f"{V6}/128"):
        route = wait_for(lambda p=prefix: len(frr.route(p).get("paths", [])) == 2 and frr.route(p), 15,
                         what=f"{prefix} from both nodes")
        for path in route["paths"]:
            assert path["community"]["list"] == ["64500:100"]
            assert path["largeCommunity"]["list"] == ["64500:1:2"]
            assert path["aspath"]["string"] == str(NODE_ASN)

    def ecmp(prefix: str, hops: tuple[str, ...]) -> bool:
        out = lab.router.route(prefix)
        return all(f"via {h}" in out for h in hops)

    wait_for(lambda: ecmp(V4, (node_v4(1), node_v4(2))), 15, what="IPv4 ECMP in the FIB")
    wait_for(lambda: ecmp(V6, (node_v6(1), node_v6(2))), 15, what="IPv6 ECMP in the FIB")
    assert sp1.stop() == 0
    wait_for(lambda: len(frr.route(f"{V4}/32").get("paths", [])) == 1, 15, what="node 1 withdrawn")
    wait_for(lambda: f"via {node_v4(1)}" not in lab.router.route(V4), 15, what="node 1 out of the FIB")
    assert f"via {node_v4(2)}" in lab.router.route(V4)


def test_md5(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    neighbors = "\n".join(f" neighbor {node_v4(i)} remote-as {NODE_ASN}\n neighbor {node_v4(i)} password pw-{i}\n"
                          f" neighbor {node_v4(i)} passive" for i in (1, 2))
    frr = start_frr(lab, frr_conf(neighbors))
    lab.start_speaker(1, speaker_bgp(1, peer={"password": "pw-1"}), ANNS)
    sp2 = lab.start_speaker(2, speaker_bgp(2, peer={"password": "pw-x"}), [{"service": "x", "address": "203.0.113.20"}])
    wait_for(lambda: frr.established(node_v4(1)), 30, what="MD5 session with the right password")
    wait_for(lambda: frr.route(f"{V4}/32"), 15, what="route over MD5")
    wait_for(lambda: sp2.status()["bgp"]["peers"][0]["last_error"], 30, what="a connect error on node 2")
    assert not frr.established(node_v4(2))
    assert not frr.route("203.0.113.20/32")


def test_bfd_drops_routes_on_silent_link_loss(make_lab) -> None:  # type: ignore[no-untyped-def]
    need("/usr/lib/frr/bfdd", "nft")
    lab: Lab = make_lab(1)
    conf = frr_conf(bfd=True).replace(" neighbor NODES timers connect 1",
                                      " neighbor NODES timers connect 1\n neighbor NODES timers 80 240")
    frr = start_frr(lab, conf, bfd=True)
    peer = {"hold_time": 240, "keepalive_time": 80, "bfd": {"min_rx_ms": 300, "min_tx_ms": 300}}
    sp = lab.start_speaker(1, speaker_bgp(1, peer=peer), ANNS)
    wait_for(lambda: frr.established(node_v4(1)), 30, what="session")
    wait_for(lambda: lab.router.route(V4), 15, what="route in FIB")
    wait_for(lambda: '"status":"up"' in frr.vtysh("show bfd peers json").replace(" ", ""), 30, what="BFD up on FRR")
    wait_for(lambda: sp.status()["bgp"]["peers"][0]["bfd"]["state"] == "Up", 15, what="BFD up on the speaker")
    lab.nodes[0].exec(["nft", "add table inet lbbg; add chain inet lbbg in { type filter hook input priority 0;"
                       " policy drop; }; add chain inet lbbg out { type filter hook output priority 0; policy drop; }"])
    # Hold time 240 s: only BFD can remove the routes within this bound.
    wait_for(lambda: not lab.router.route(V4) and not lab.router.route(V6), 30, what="routes dropped by BFD")


def test_graceful_restart_keeps_routes_over_a_crash(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    conf = frr_conf().replace(" no bgp ebgp-requires-policy", " no bgp ebgp-requires-policy\n bgp graceful-restart")
    frr = start_frr(lab, conf)
    bgp = speaker_bgp(1, peer={"graceful_restart": True, "restart_time": 60})
    sp = lab.start_speaker(1, bgp, ANNS)
    wait_for(lambda: frr.established(node_v4(1)), 30, what="session")
    wait_for(lambda: lab.router.route(V4), 15, what="route in FIB")
    sp.stop(signal.SIGKILL)
    wait_for(lambda: not frr.established(node_v4(1)), 30, what="FRR to notice the crash")
    path = wait_for(lambda: (frr.route(f"{V4}/32").get("paths") or [{}])[0].get("stale") and
                    frr.route(f"{V4}/32")["paths"][0], 15, what="route kept as stale")
    assert path["stale"] is True
    assert lab.router.route(V4), "the FIB keeps the route during the restart"
    sp2 = lab.start_speaker(1, bgp, ANNS, name="sp1b")
    wait_for(lambda: frr.established(node_v4(1)), 30, what="session after restart")

    def refreshed() -> bool:
        paths = frr.route(f"{V4}/32").get("paths") or []
        return bool(paths) and not paths[0].get("stale", False)

    wait_for(refreshed, 30, what="route refreshed (no longer stale)")
    assert sp2.stop() == 0
    wait_for(lambda: not lab.router.route(V4), 15, what="withdraw after SIGTERM")


def test_ibgp_local_pref(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    ibgp = (f" neighbor {node_v4(1)} remote-as {ROUTER_ASN}\n neighbor {node_v4(1)} passive\n"
            f" address-family ipv6 unicast\n  neighbor {node_v4(1)} activate\n exit-address-family")
    frr = start_frr(lab, frr_conf(ibgp))
    bgp = speaker_bgp(1, ads=[{"local_pref": 250, "communities": ["64500:7"]}])
    bgp["asn"] = ROUTER_ASN
    lab.start_speaker(1, bgp, ANNS)
    wait_for(lambda: frr.established(node_v4(1)), 30, what="iBGP session")
    for prefix in (f"{V4}/32", f"{V6}/128"):
        path = wait_for(lambda p=prefix: frr.route(p), 15, what=f"{prefix} over iBGP")["paths"][0]
        assert path["locPrf"] == 250
        assert path["community"]["list"] == ["64500:7"]
        assert path["peer"]["type"] == "internal"
    wait_for(lambda: lab.router.route(V4) and lab.router.route(V6), 15, what="iBGP routes in the FIB")
