# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration from MetalLB, run on MetalLB's own examples (metallb_samples/, each naming its source).

The files keep MetalLB's YAML byte for byte after a comment naming the source; they end in
``.manifest`` rather than ``.yaml`` so that linters, which would reformat them, leave them alone. Each
example is translated with ``referenced.manifest`` (ours: the pools and the peer the examples name
without defining); the test asserts the variables it gives, the exact list of what is not carried, and
that the core's parsers accept the result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.advertisements import parse_advertisements
from ansible_collections.baremetal.lb.plugins.module_utils.announcements import data_model_errors
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.manifest import load_manifests
from ansible_collections.baremetal.lb.plugins.module_utils.metallb import group_vars_text, seconds, translate
from ansible_collections.baremetal.lb.plugins.module_utils.pools import check_no_overlaps, parse_pool

SAMPLES = Path(__file__).parent / "metallb_samples"
OURS = ("referenced.manifest",)
REFERENCED_NAMES = {
    "first-pool",
    "third-pool",
    "fourth-pool",
    "pool1",
    "production-pool",
    "test-addresspool",
    "bgp-with-advertisement",
    "ebgp-single-hop0",
}
SECRET_REASON = "a reference to a Kubernetes Secret: the inventory needs the password itself"
NOT_METALLB = "not MetalLB configuration"
FAMILY_V4 = {"address_families": ["ipv4"]}


def documents(*names: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for name in names:
        out += [(f"{name}[{i}]", doc) for i, doc in enumerate(load_manifests((SAMPLES / name).read_text()))]
    return out


SELF_CONTAINED = ("doc_bgp_aggregation.manifest",)  # defines its own first-pool


def migrate(name: str):
    extra = () if name in SELF_CONTAINED else OURS
    return translate(documents(name, *extra))


def own(name: str, items: list[dict]) -> list[dict]:
    """The entries the example itself gave (not referenced.yaml's)."""
    return items if name in SELF_CONTAINED else [item for item in items if item.get("name") not in REFERENCED_NAMES]


# example file -> (its variables: lb_* -> entries of its own, the not-carried (kind, name, field) in order)
EXPECTED: dict[str, tuple[dict[str, list[dict]], list[tuple[str, str, str]]]] = {
    "ipaddresspool_simple.manifest": (
        {
            "lb_pools": [
                {
                    "name": "example",
                    "addresses": ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:0ccd:e799::/124"],
                }
            ]
        },
        [],
    ),
    "ipaddresspool_with_selector.manifest": (
        {
            "lb_pools": [
                {
                    "name": "ippool-ns-service-alloc-sample",
                    "addresses": ["192.168.20.0/24"],
                    "avoid_buggy_ips": True,
                    "service_allocation": {
                        "priority": 50,
                        "namespaces": ["namespace-a", "namespace-b"],
                        "service_selectors": [
                            {"match_expressions": [{"key": "app", "operator": "In", "values": ["bar"]}]}
                        ],
                    },
                }
            ]
        },
        [("IPAddressPool", "ippool-ns-service-alloc-sample", "spec.serviceAllocation.namespaceSelectors")],
    ),
    "doc_pools_auto_assign.manifest": (
        {
            "lb_pools": [
                {"name": "cheap", "addresses": ["192.168.10.0/24"]},
                {"name": "expensive", "addresses": ["42.176.25.64/30"], "auto_assign": False},
            ]
        },
        [],
    ),
    "simple_pool_adv_l2.manifest": (
        {
            "lb_pools": [
                {
                    "name": "example",
                    "addresses": ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:0ccd:e799::/124"],
                }
            ],
            "lb_l2_advertisements": [{"name": "empty"}],
        },
        [],
    ),
    "simple_pool_adv_bgp.manifest": (
        {
            "lb_pools": [
                {
                    "name": "example",
                    "addresses": ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:0ccd:e799::/124"],
                }
            ],
            "lb_bgp_advertisements": [{"name": "empty"}],
        },
        [],
    ),
    "l2adv_selects_pools_by_list.manifest": ({"lb_l2_advertisements": [{"name": "example", "pools": ["first-pool"]}]}, []),
    "l2adv_with_node_selector.manifest": (
        {"lb_l2_advertisements": [{"name": "example", "nodes": ["kind-control-plane"]}]},
        [],
    ),
    "doc_l2_node_selectors.manifest": (
        {"lb_l2_advertisements": [{"name": "example", "pools": ["first-pool"], "nodes": ["NodeA", "NodeB"]}]},
        [],
    ),
    "doc_l2_interfaces.manifest": (
        {"lb_l2_advertisements": [{"name": "example", "pools": ["third-pool"], "interfaces": ["eth0", "eth1"]}]},
        [],
    ),
    "doc_l2_interfaces_node_selector.manifest": (
        {
            "lb_l2_advertisements": [
                {"name": "example", "pools": ["fourth-pool"], "nodes": ["NodeA"], "interfaces": ["eth3"]}
            ]
        },
        [],
    ),
    "doc_l2_interfaces_union.manifest": (
        {
            "lb_l2_advertisements": [
                {"name": "example-advertisement9", "interfaces": ["eno1"]},
                {"name": "example-advertisement10", "pools": ["pool1"], "nodes": ["hostB"], "interfaces": ["ens18"]},
            ]
        },
        [],
    ),
    "doc_l2_preferred_and_service_selectors.manifest": (
        {
            "lb_l2_advertisements": [
                {"name": "prefer-edge", "pools": ["production-pool"]},
                {"name": "frontend-services", "pools": ["first-pool"], "interfaces": ["eth0"]},
                {"name": "backend-services", "pools": ["first-pool"], "interfaces": ["eth1"]},
            ]
        },
        [
            ("L2Advertisement", "prefer-edge", "spec.preferredNodeSelectors"),
            ("L2Advertisement", "frontend-services", "spec.serviceSelectors"),
            ("L2Advertisement", "backend-services", "spec.serviceSelectors"),
        ],
    ),
    "bgpadvertisement_communities_localpref.manifest": (
        {
            "lb_bgp_advertisements": [
                {
                    "name": "advertisement",
                    "pools": ["bgp-with-advertisement"],
                    "local_pref": 150,
                    "communities": ["65535:65282"],
                }
            ]
        },
        [],
    ),
    "bgpadvertisement_community_alias.manifest": (
        {
            "lb_bgp_advertisements": [
                {
                    "name": "advertisement",
                    "pools": ["bgp-with-advertisement"],
                    "local_pref": 150,
                    "communities": ["65535:65282"],  # NO_ADVERTISE, from the Community
                }
            ]
        },
        [],
    ),
    "doc_bgp_community_aliases.manifest": (
        {
            "lb_bgp_advertisements": [
                {
                    "name": "local",
                    "pools": ["first-pool"],
                    "aggregation_length": 32,
                    "local_pref": 100,
                    "communities": ["1234:1"],  # vpn-only
                }
            ]
        },
        [],
    ),
    "bgpadvertisement_with_node_selector.manifest": (
        {
            "lb_bgp_advertisements": [
                {
                    "name": "advertisement",
                    "pools": ["first-pool"],
                    "nodes": ["kind-control-plane", "kind-worker"],
                    "aggregation_length": 32,
                    "aggregation_length_v6": 128,
                }
            ]
        },
        [],
    ),
    "bgpadv_selectspool_by_label.manifest": (
        {"lb_bgp_advertisements": [{"name": "advertisement", "pools": ["bgp-with-advertisement"]}]},
        [],
    ),
    "bgpadv_selectspool_by_list.manifest": (
        {
            "lb_bgp_advertisements": [
                {"name": "advertisement", "pools": ["test-addresspool"], "peers": ["ebgp-single-hop0"]}
            ]
        },
        [],
    ),
    "doc_bgp_aggregation.manifest": (
        {
            "lb_pools": [{"name": "first-pool", "addresses": ["198.51.100.0/24"]}],
            "lb_bgp_advertisements": [
                {
                    "name": "local",
                    "pools": ["first-pool"],
                    "aggregation_length": 32,
                    "local_pref": 100,
                    "communities": ["65535:65282"],
                },
                {"name": "external", "pools": ["first-pool"], "aggregation_length": 24},
            ],
        },
        [("IPAddressPool", "first-pool", "spec.addresses[0]")],
    ),
    "bgppeer_simple.manifest": (
        {"lb_bgp_peers": [{"name": "peer", "address": "172.30.0.3", "asn": 64512, **FAMILY_V4}]},
        [],
    ),
    "bgppeer_with_bfdprofile.manifest": (
        {
            "lb_bgp_peers": [
                {
                    "name": "peer",
                    "address": "172.30.0.3",
                    "asn": 64512,
                    "bfd": {"enabled": True, "min_rx_ms": 380, "min_tx_ms": 270, "multiplier": 3},
                    **FAMILY_V4,
                }
            ]
        },
        [],
    ),
    "bgppeer_with_session_options.manifest": (
        {
            "lb_bgp_peers": [
                {
                    "name": "peer",
                    "address": "172.30.0.3",
                    "asn": 64512,
                    "connect_retry_time": 120,
                    "connect_retry_max": 120,
                    **FAMILY_V4,
                }
            ]
        },
        [],
    ),
    "bgppeer_with_vrf.manifest": (
        {"lb_bgp_peers": [{"name": "peer", "address": "172.30.0.3", "asn": 64512, **FAMILY_V4}]},
        [("BGPPeer", "peer", "spec.vrf")],
    ),
    "bgppeer_withsecret.manifest": (
        {
            "lb_bgp_peers": [
                {
                    "name": "peer-with-secret",
                    "address": "172.30.0.3",
                    "asn": 64512,
                    "port": 179,
                    "hold_time": 540,
                    **FAMILY_V4,
                }
            ]
        },
        [("BGPPeer", "peer-with-secret", "spec.keepaliveTime"), ("BGPPeer", "peer-with-secret", "spec.passwordSecret")],
    ),
    "doc_bgp_peer_node_selectors.manifest": (
        {"lb_bgp_peers": [{"name": "example", "address": "172.30.0.3", "asn": 64512, "port": 180, **FAMILY_V4}]},
        [("BGPPeer", "example", "spec.nodeSelectors")],
    ),
    "doc_bgp_source_address.manifest": (
        {
            "lb_bgp_peers": [
                {
                    "name": "example",
                    "address": "172.30.0.3",
                    "asn": 64512,
                    "port": 179,
                    "source_address": "172.30.0.2",
                    **FAMILY_V4,
                    "nodes": ["node-1"],
                }
            ]
        },
        [],
    ),
    "doc_bgp_graceful_restart.manifest": (
        {
            "lb_bgp_peers": [
                {"name": "example", "address": "172.30.0.3", "asn": 64512, "graceful_restart": True, **FAMILY_V4}
            ]
        },
        [],
    ),
    "deployment_l2.manifest": (
        {
            "lb_pools": [{"name": "example", "addresses": ["192.168.10.0/24", "fc00:f853:0ccd:e799::/124"]}],
            "lb_l2_advertisements": [{"name": "empty"}],
        },
        [("Deployment", "nginx", ""), ("Service", "nginx", "")],
    ),
    "deployment_bgp.manifest": (
        {
            "lb_pools": [{"name": "example", "addresses": ["192.168.10.0/24", "fc00:f853:0ccd:e799::/124"]}],
            "lb_bgp_advertisements": [{"name": "empty"}],
            "lb_bgp_peers": [
                {"name": "peer", "address": "172.30.0.3", "asn": 64512, **FAMILY_V4},
                {"name": "peerv6", "address": "fc00:f853:ccd:e793::5", "asn": 64512, "address_families": ["ipv6"]},
            ],
        },
        [("Deployment", "nginx", ""), ("Service", "nginx", "")],
    ),
}


def test_every_example_file_is_tested():
    assert sorted(p.name for p in SAMPLES.glob("*.manifest") if p.name not in OURS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metallb_examples(name):
    variables, not_carried = EXPECTED[name]
    migration = migrate(name)
    for key in ("lb_pools", "lb_l2_advertisements", "lb_bgp_advertisements", "lb_bgp_peers"):
        assert own(name, migration.inventory[key]) == variables.get(key, []), key
    assert [(n.kind, n.name, n.field) for n in migration.not_carried] == not_carried


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_core_parsers_accept_what_the_examples_give(name):
    inventory = migrate(name).inventory
    pools = [parse_pool(p, f"lb_pools[{i}]") for i, p in enumerate(inventory["lb_pools"])]
    check_no_overlaps(pools, "lb_pools")
    parse_advertisements(inventory["lb_l2_advertisements"], "l2", "lb_")
    parse_advertisements(inventory["lb_bgp_advertisements"], "bgp", "lb_")
    args = [inventory[k] for k in ("lb_bgp_peers", "lb_l2_advertisements", "lb_bgp_advertisements", "lb_pools")]
    assert data_model_errors(*args) == []
    assert ("lb_bgp_asn" in inventory) == bool(inventory["lb_bgp_peers"])


def test_reasons_say_what_to_do():
    notes = {(n.name, n.field): n.reason for n in migrate("bgppeer_withsecret.manifest").not_carried}
    secret = notes[("peer-with-secret", "spec.passwordSecret")]
    assert secret.startswith(SECRET_REASON)
    assert "vault" in secret
    assert "hold_time / 3" in notes[("peer-with-secret", "spec.keepaliveTime")]
    pool = migrate("ipaddresspool_with_selector.manifest").not_carried[0].reason
    assert "namespace-a, namespace-b" in pool
    host_bits = migrate("doc_bgp_aggregation.manifest").not_carried[0].reason
    assert host_bits == "198.51.100.10/24 has host bits set; MetalLB uses its network, written as 198.51.100.0/24"
    assert migrate("deployment_bgp.manifest").not_carried[1].reason.startswith(NOT_METALLB)


def test_the_group_vars_file_names_what_is_not_carried_and_reads_back():
    migration = migrate("bgppeer_withsecret.manifest")
    text = group_vars_text(migration, ["metallb/"])
    assert text.startswith("---\n")
    assert "#   BGPPeer/peer-with-secret spec.passwordSecret: a reference to a Kubernetes Secret" in text
    assert load_manifests(text) == [migration.inventory]
    assert group_vars_text(migration, ["metallb/"]) == text  # the same input, the same bytes


# -- fields the examples do not show -------------------------------------------------------------


def pool(name="p", **spec):
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": name}, "spec": spec}


def peer(name="tor", version="v1beta2", **spec):
    base = {"myASN": 64512, "peerASN": 64500, "peerAddress": "198.51.100.1"}
    return {"apiVersion": f"metallb.io/{version}", "kind": "BGPPeer", "metadata": {"name": name}, "spec": base | spec}


def bfd(name="fast", **spec):
    return {"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "metadata": {"name": name}, "spec": spec}


def ad(kind, name="ad", **spec):
    return {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def run(*docs):
    return translate([(f"documents[{i}]", d) for i, d in enumerate(docs)])


def fields(migration):
    return [(n.kind, n.name, n.field) for n in migration.not_carried]


def test_every_peer_field():
    migration = run(
        bfd(receiveInterval=100, detectMultiplier=5, echoMode=True, echoInterval=50, passiveMode=True, minimumTtl=10),
        peer(
            sourceAddress="198.51.100.11",
            peerPort=1179,
            holdTime="1m30s",
            keepaliveTime="30s",
            connectTime="5s",
            routerID="198.51.100.11",
            password="s3cret",
            bfdProfile="fast",
            ebgpMultiHop=True,
            enableGracefulRestart=True,
            disableMP=True,
            localASN=65410,
            nodeSelectors=[
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}
            ],
        ),
        peer("v6", peerAddress="2001:db8::1", dualStackAddressFamily=True),
        peer("ibgp", peerAddress="198.51.100.2", peerASN=None, dynamicASN="internal"),
    )
    assert migration.inventory["lb_bgp_asn"] == 64512
    assert migration.inventory["lb_bgp_peers"] == [
        {
            "name": "tor",
            "address": "198.51.100.1",
            "asn": 64500,
            "port": 1179,
            "source_address": "198.51.100.11",
            "hold_time": 90,
            "keepalive_time": 30,
            "connect_retry_time": 5,
            "connect_retry_max": 5,
            "password": "s3cret",
            "bfd": {"enabled": True, "min_rx_ms": 100, "min_tx_ms": 300, "multiplier": 5},
            "multihop": True,
            "graceful_restart": True,
            "address_families": ["ipv4"],
            "nodes": ["n1"],
        },
        {"name": "v6", "address": "2001:db8::1", "asn": 64500, "address_families": ["ipv4", "ipv6"]},
        {"name": "ibgp", "address": "198.51.100.2", "asn": 64512, "address_families": ["ipv4"]},
    ]
    assert fields(migration) == [
        ("BGPPeer", "tor", "spec.localASN"),
        ("BGPPeer", "tor", "spec.routerID"),
        ("BGPPeer", "v6", "spec.dualStackAddressFamily"),
        ("BFDProfile", "fast", "spec.echoMode"),
        ("BFDProfile", "fast", "spec.echoInterval"),
        ("BFDProfile", "fast", "spec.passiveMode"),
        ("BFDProfile", "fast", "spec.minimumTtl"),
    ]


def test_peers_that_cannot_be_carried_are_left_out_with_their_advertisements():
    migration = run(
        pool(addresses=["203.0.113.0/24"]),
        peer("tor"),
        peer("other-as", peerAddress="198.51.100.2", myASN=64999),
        peer("unnumbered", peerAddress=None, interface="eth1"),
        peer("dynamic", peerAddress="198.51.100.3", peerASN=None, dynamicASN="external"),
        bfd("unused"),
        ad("BGPAdvertisement", "to-both", peers=["tor", "other-as"]),
        ad("BGPAdvertisement", "to-other", peers=["other-as"]),
    )
    assert [p["name"] for p in migration.inventory["lb_bgp_peers"]] == ["tor"]
    assert migration.inventory["lb_bgp_advertisements"] == [{"name": "to-both", "peers": ["tor"]}]
    assert fields(migration) == [
        ("BGPPeer", "other-as", "spec.myASN"),
        ("BGPPeer", "unnumbered", "spec.interface"),
        ("BGPPeer", "dynamic", "spec.dynamicASN"),
        ("BFDProfile", "unused", ""),
        ("BGPAdvertisement", "to-both", "spec.peers[1]"),
        ("BGPAdvertisement", "to-other", "spec.peers[0]"),
        ("BGPAdvertisement", "to-other", "spec.peers"),
    ]


def test_one_router_address_in_two_racks_is_carried_by_hostname_and_refused_by_label():
    def rack(name, *hosts, **labels):
        selector = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": list(hosts)}]}
        return peer(name, nodeSelectors=[{"matchLabels": labels} if labels else selector])

    migration = run(rack("tor-a", "n1", "n2"), rack("tor-b", "n3"))  # the same peerAddress, disjoint nodes
    assert [(p["name"], p["nodes"]) for p in migration.inventory["lb_bgp_peers"]] == [
        ("tor-a", ["n1", "n2"]), ("tor-b", ["n3"])]
    assert fields(migration) == []
    # by rack labels we cannot follow: both would be every node's, one address two peers on each node
    migration = run(rack("tor-a", rack="a"), rack("tor-b", rack="b"), ad("BGPAdvertisement", "both", peers=["tor-a", "tor-b"]))
    assert [p["name"] for p in migration.inventory["lb_bgp_peers"]] == ["tor-a"]
    assert migration.inventory["lb_bgp_advertisements"] == [{"name": "both", "peers": ["tor-a"]}]
    notes = {(n.name, n.field): n.reason for n in migration.not_carried}
    assert notes[("tor-b", "spec.peerAddress")].startswith("refused: '198.51.100.1' also names BGPPeer 'tor-a'")
    assert ("both", "spec.peers[1]") in notes


def test_a_pool_our_rules_refuse_is_reported_not_written():
    migration = run(
        pool("a", addresses=["203.0.113.0/24"]),
        pool("b", addresses=["203.0.113.128/25"]),  # MetalLB refuses it too, at apply time
        pool("c", addresses=["198.51.100.0/24"], serviceAllocation={"priority": -1}),
        ad("L2Advertisement", "only-b", ipAddressPools=["b"]),
        ad("L2Advertisement", "b-and-a", ipAddressPools=["b", "a"]),
    )
    assert [p["name"] for p in migration.inventory["lb_pools"]] == ["a"]
    assert migration.inventory["lb_l2_advertisements"] == [{"name": "b-and-a", "pools": ["a"]}]
    notes = {(n.name, n.field): n.reason for n in migration.not_carried}
    assert list(notes) == [
        ("b", "spec.addresses"),
        ("c", "spec.serviceAllocation.priority"),
        ("only-b", "spec.ipAddressPools[0]"),
        ("only-b", "spec.ipAddressPools"),
        ("b-and-a", "spec.ipAddressPools[0]"),
    ]
    assert notes[("b", "spec.addresses")] == (
        "refused: 203.0.113.128/25 of pool 'b' overlaps 203.0.113.0/24 of pool 'a'; pools never share addresses"
    )
    assert notes[("c", "spec.serviceAllocation.priority")].startswith("refused by baremetal.lb's rules: must be")


def test_selectors_our_schema_lacks():
    migration = run(
        pool(
            "p", addresses=["203.0.113.0/24"], serviceAllocation={"namespaceSelectors": [{"matchLabels": {"a": "b"}}]}
        ),
        ad("L2Advertisement", "by-rack", nodeSelectors=[{"matchLabels": {"rack": "r1"}}]),
        ad("BGPAdvertisement", "svc", serviceSelectors=[{"matchLabels": {"tier": "web"}}], communities=["large:1:2:3"]),
    )
    assert migration.inventory["lb_pools"] == [{"name": "p", "addresses": ["203.0.113.0/24"]}]
    assert migration.inventory["lb_l2_advertisements"] == [{"name": "by-rack"}]
    assert migration.inventory["lb_bgp_advertisements"] == [{"name": "svc", "large_communities": ["1:2:3"]}]
    reasons = [n.reason for n in migration.not_carried]
    assert "the pool now serves every namespace" in reasons[0]
    assert "the pools are announced from every node" in reasons[1]
    assert fields(migration)[2] == ("BGPAdvertisement", "svc", "spec.serviceSelectors")


def test_a_list_from_kubectl_is_opened():
    listed = {"apiVersion": "v1", "kind": "List", "items": [pool(addresses=["203.0.113.0/24"])]}
    assert run(listed).inventory["lb_pools"] == [{"name": "p", "addresses": ["203.0.113.0/24"]}]


def test_durations():
    assert seconds("9m0s", "f") == 540
    assert seconds("1h30m", "f") == 5400
    assert seconds("1.5s", "f") == 1.5
    assert seconds("0s", "f") == 0
    with pytest.raises(InputError):
        seconds("90", "f")


# -- bad input names the document and the field --------------------------------------------------


@pytest.mark.parametrize(
    ("docs", "field", "message"),
    [
        ([ad("AddressPool")], "documents[0] AddressPool/ad kind", "is not a MetalLB kind"),
        ([dict(peer(), apiVersion="metallb.io/v1alpha1")], "documents[0] BGPPeer/tor apiVersion", "must be"),
        ([pool(addresses=["203.0.113.0/33"])], "documents[0] IPAddressPool/p spec.addresses[0]", "not a valid CIDR"),
        ([pool(addresses=["203.0.113.9-203.0.113.1"])], "documents[0] IPAddressPool/p spec.addresses[0]", "reversed"),
        ([pool()], "documents[0] IPAddressPool/p spec.addresses", "is required"),
        ([pool(adresses=["203.0.113.0/24"])], "documents[0] IPAddressPool/p spec.adresses", "did you mean 'addresses'"),
        ([{"kind": "IPAddressPool"}], "documents[0]", "needs apiVersion and kind"),
        (
            [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool"}],
            "documents[0] IPAddressPool metadata.name",
            "required",
        ),
        ([peer(peerASN=None)], "documents[0] BGPPeer/tor spec.peerASN", "is required"),
        ([peer(myASN=None)], "documents[0] BGPPeer/tor spec.myASN", "is required"),
        ([peer(myASN="64500")], "documents[0] BGPPeer/tor spec.myASN", "must be an integer from 1 to 4294967295"),
        ([peer(peerAddress="tor1")], "documents[0] BGPPeer/tor spec.peerAddress", "router's IP address"),
        ([peer(holdTime="2s")], "documents[0] BGPPeer/tor spec.holdTime", "0 or from 3s"),
        ([peer(holdTime="ninety")], "documents[0] BGPPeer/tor spec.holdTime", "duration"),
        ([peer(bfdProfile="nope")], "documents[0] BGPPeer/tor spec.bfdProfile", "not a BFDProfile"),
        (
            [ad("L2Advertisement", ipAddressPools=["nope"])],
            "documents[0] L2Advertisement/ad spec.ipAddressPools[0]",
            "not an IPAddressPool",
        ),
        ([ad("BGPAdvertisement", peers=["nope"])], "documents[0] BGPAdvertisement/ad spec.peers[0]", "not a BGPPeer"),
        (
            [ad("BGPAdvertisement", communities=["vpn-only"])],
            "documents[0] BGPAdvertisement/ad spec.communities[0]",
            "alias",
        ),
        (
            [ad("BGPAdvertisement", communities=[74041])],
            "documents[0] BGPAdvertisement/ad spec.communities",
            "quote it",
        ),
        (
            [pool(addresses=["203.0.113.0/24"]), pool(addresses=["198.51.100.0/24"])],
            "documents[1] IPAddressPool/p metadata.name",
            "another",
        ),
        (
            [
                ad(
                    "L2Advertisement",
                    nodeSelectors=[{"matchLabels": {"kubernetes.io/hostname": "n1"}, "matchFields": []}],
                )
            ],
            "documents[0] L2Advertisement/ad spec.nodeSelectors[0].matchFields",
            "unknown key",
        ),
        (
            [ad("Community", communities=[{"name": "a", "value": "1:1"}, {"name": "a", "value": "1:2"}])],
            "documents[0] Community/ad spec.communities[1].value",
            "defined with '1:1' too",
        ),
    ],
)
def test_bad_input_names_the_document_and_field(docs, field, message):
    with pytest.raises(InputError) as info:
        run(*docs)
    assert info.value.field == field
    assert message in info.value.message
