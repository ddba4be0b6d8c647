# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from fractions import Fraction

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.traffic import (
    describe,
    per_pod_shares,
    round_shares,
    shares_to_list,
)
from hypothesis import given
from hypothesis import strategies as st

SEED = {"node-a": 2, "node-b": 1}  # MetalLB's example: 2 pods on node A, 1 on node B


def exact(shares):
    return [(s.node, s.share) for s in shares]


def test_seed_example_bgp_local_is_25_25_50():
    shares = per_pod_shares("bgp", "Local", SEED)
    assert exact(shares) == [("node-a", Fraction(1, 4)), ("node-a", Fraction(1, 4)), ("node-b", Fraction(1, 2))]
    assert shares_to_list(shares) == [
        {"node": "node-a", "share": 0.25},
        {"node": "node-a", "share": 0.25},
        {"node": "node-b", "share": 0.5},
    ]


def test_seed_example_bgp_cluster_is_a_third_each():
    shares = per_pod_shares("bgp", "Cluster", SEED)
    assert [s.share for s in shares] == [Fraction(1, 3)] * 3
    rounded = [entry["share"] for entry in shares_to_list(shares)]
    assert [round(r, 2) for r in rounded] == [0.33, 0.33, 0.33]
    assert sum(rounded) == pytest.approx(1.0, abs=1e-12)


def test_l2_local_leader_pods_take_everything():
    shares = per_pod_shares("l2", "Local", SEED, leader="node-a")
    assert exact(shares) == [("node-a", Fraction(1, 2)), ("node-a", Fraction(1, 2)), ("node-b", Fraction(0))]
    shares = per_pod_shares("l2", "Local", SEED, leader="node-b")
    assert [s.share for s in shares] == [0, 0, 1]


def test_l2_cluster_spreads_over_all_pods():
    assert [s.share for s in per_pod_shares("l2", "Cluster", SEED)] == [Fraction(1, 3)] * 3


def test_bgp_local_pods_on_non_announcing_nodes_get_nothing():
    shares = per_pod_shares("bgp", "Local", {"a": 1, "b": 1, "c": 1}, candidates=["a", "b"])
    assert [s.share for s in shares] == [Fraction(1, 2), Fraction(1, 2), 0]


def test_no_candidates_means_no_traffic():
    assert [s.share for s in per_pod_shares("bgp", "Cluster", SEED, candidates=[])] == [0, 0, 0]


def test_unknown_mode_or_policy_is_refused():
    with pytest.raises(ValueError, match="mode"):
        per_pod_shares("ospf", "Local", SEED)
    with pytest.raises(ValueError, match="policy"):
        per_pod_shares("bgp", "Nearest", SEED)


@pytest.mark.parametrize("n", [1, 3, 6, 7, 9, 11])
def test_rounded_shares_sum_to_one(n):
    rounded = round_shares([Fraction(1, n)] * n)
    assert sum(round(r * 10000) for r in rounded) == 10000
    assert max(rounded) - min(rounded) <= 0.0001 + 1e-12


def test_describe_names_nodes_and_percentages():
    assert describe(per_pod_shares("bgp", "Local", SEED)) == "node-a: 2 pods x 25%, node-b: 1 pod x 50%"
    assert describe(per_pod_shares("bgp", "Cluster", SEED)) == "node-a: 2 pods x 33.3%, node-b: 1 pod x 33.3%"


placements = st.dictionaries(
    st.sampled_from([f"node-{c}" for c in "abcdefgh"]), st.integers(min_value=0, max_value=7), max_size=8
)


@given(placements, st.sampled_from(["l2", "bgp"]), st.sampled_from(["Cluster", "Local"]))
def test_shares_sum_to_one_exactly_and_when_rounded(placement, mode, policy):
    shares = per_pod_shares(mode, policy, placement)
    assert len(shares) == sum(placement.values())
    if shares:
        assert sum(s.share for s in shares) == 1
        assert sum(round(e["share"] * 10000) for e in shares_to_list(shares)) == 10000


@given(placements)
def test_bgp_local_gives_every_node_with_pods_the_same_total(placement):
    per_node: dict[str, Fraction] = {}
    for s in per_pod_shares("bgp", "Local", placement):
        per_node[s.node] = per_node.get(s.node, Fraction(0)) + s.share
    assert len(set(per_node.values())) <= 1
