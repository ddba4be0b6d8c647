# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.baremetal.lb.plugins.filter.lb import FilterModule

FILTERS = FilterModule().filters()


def test_traffic_share_reproduces_metallb_example():
    share = FILTERS["traffic_share"]
    local = share({"node-a": 2, "node-b": 1}, mode="bgp", policy="Local")
    assert local == [
        {"node": "node-a", "share": 0.25},
        {"node": "node-a", "share": 0.25},
        {"node": "node-b", "share": 0.5},
    ]
    cluster = [p["share"] for p in share({"node-a": 2, "node-b": 1}, mode="bgp", policy="Cluster")]
    assert [round(s, 2) for s in cluster] == [0.33, 0.33, 0.33]
    assert round(sum(cluster), 10) == 1


def test_traffic_share_l2_local_leader_takes_everything():
    shares = FILTERS["traffic_share"]({"a": 1, "b": 1}, mode="L2", policy="Local", leader="b")
    assert [p["share"] for p in shares] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("placement", "kwargs", "text"),
    [
        ({"a": 1}, {"mode": "ospf"}, "mode"),
        ({"a": 1}, {"policy": "Nearest"}, "policy"),
        (["a"], {}, "mapping"),
        ({"a": -1}, {}, "pod count"),
    ],
)
def test_traffic_share_bad_input(placement, kwargs, text):
    with pytest.raises(AnsibleFilterError, match=text):
        FILTERS["traffic_share"](placement, **kwargs)


DNS_TCP = {"name": "dns-tcp", "ports": [{"port": 53, "protocol": "TCP"}], "sharing_key": "dns"}
DNS_UDP = {"name": "dns-udp", "ports": [{"port": 53, "protocol": "UDP"}], "sharing_key": "dns"}


def test_can_share_dns_over_tcp_and_udp():
    assert FILTERS["can_share"](DNS_TCP, DNS_UDP) is True
    assert FILTERS["sharing_conflict"](DNS_TCP, DNS_UDP) == ""


def test_cannot_share_the_same_port_and_says_why():
    other = dict(DNS_TCP, name="dns-tcp-2")
    assert FILTERS["can_share"](other, DNS_TCP) is False
    assert "TCP/53" in FILTERS["sharing_conflict"](other, DNS_TCP)


def test_sharing_filters_name_a_bad_field():
    with pytest.raises(AnsibleFilterError, match=r"other\.external_traffic_policy"):
        FILTERS["can_share"](DNS_TCP, dict(DNS_UDP, external_traffic_policy="Nearest"))
