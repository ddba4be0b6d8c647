# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The share of a service's traffic each pod can expect.

The model (the one MetalLB documents, and the one the speaker implements):

- **L2**: one elected node answers for the IP and receives all of it.
  Under ``Cluster`` kube-proxy spreads it evenly over every pod of the service;
  under ``Local`` only the elected node's own pods get it (the leader's pods
  take everything, the other pods get nothing until the leader changes).
- **BGP, Cluster**: every announcing node is one equal ECMP unit, then
  kube-proxy spreads over every pod: equal per pod.
- **BGP, Local**: only announcing nodes with at least one pod announce; each is
  one equal ECMP unit, and its share is split evenly over its own pods.

Shares are computed as exact fractions and rounded only for display, with the
largest-remainder method so the rounded values still sum to exactly 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from .advertisements import MODES
from .service import TRAFFIC_POLICIES

DECIMALS = 4


@dataclass(frozen=True)
class PodShare:
    node: str
    share: Fraction


def other_policy(policy: str) -> str:
    return "Local" if policy == "Cluster" else "Cluster"


def eligible_nodes(placement: Mapping[str, int], candidates: Iterable[str] | None) -> list[str]:
    """Nodes that may receive traffic under Local: candidates running a pod."""
    allowed = None if candidates is None else set(candidates)
    return [node for node, pods in placement.items() if pods > 0 and (allowed is None or node in allowed)]


def assumed_leader(placement: Mapping[str, int], candidates: Iterable[str] | None) -> str | None:
    """The node the L2 figures assume is elected.

    The real leader is elected by the speakers from a hash of node name and
    IP, so it cannot be known here; the figures take the first eligible node
    (placement order) and say so.
    """
    eligible = eligible_nodes(placement, candidates)
    return eligible[0] if eligible else None


def per_pod_shares(
    mode: str,
    policy: str,
    placement: Mapping[str, int],
    candidates: Iterable[str] | None = None,
    leader: str | None = None,
) -> list[PodShare]:
    """One entry per pod (placement order), each with its exact share.

    ``candidates`` are the nodes allowed to announce the IP (None: every node).
    Shares sum to 1, or are all 0 when no node can take the traffic.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if policy not in TRAFFIC_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(TRAFFIC_POLICIES)}, not {policy!r}")
    pods = [(node, count) for node, count in placement.items() if count > 0]
    total = sum(count for _node, count in pods)
    candidate_list = None if candidates is None else list(candidates)
    if total == 0 or candidate_list == []:
        return [PodShare(node, Fraction(0)) for node, count in pods for _pod in range(count)]

    if policy == "Cluster":
        return [PodShare(node, Fraction(1, total)) for node, count in pods for _pod in range(count)]

    eligible = eligible_nodes(placement, candidate_list)
    if mode == "l2":
        chosen = leader if leader in eligible else (eligible[0] if eligible else None)
        shares: dict[str, Fraction] = {chosen: Fraction(1)} if chosen is not None else {}
    else:
        shares = {node: Fraction(1, len(eligible)) for node in eligible}
    return [PodShare(node, shares.get(node, Fraction(0)) / count) for node, count in pods for _pod in range(count)]


def round_shares(shares: Sequence[Fraction], decimals: int = DECIMALS) -> list[float]:
    """Shares rounded to ``decimals`` places that still sum to what they summed to.

    Largest remainder: floor every share, then hand the missing units to the
    shares that lost most (earliest first on ties).
    """
    unit = 10**decimals
    floors: list[int] = []
    remainders: list[float] = []
    for share in shares:
        whole, rest = divmod(share.numerator * unit, share.denominator)
        floors.append(whole)
        remainders.append(rest / share.denominator)  # only ordered: float is precise enough
    target = round(sum(shares, Fraction(0)) * unit)
    missing = target - sum(floors)
    order = sorted(range(len(floors)), key=lambda i: (-remainders[i], i))
    for i in order[:missing]:
        floors[i] += 1
    return [f / unit for f in floors]


def shares_to_list(shares: Sequence[PodShare]) -> list[dict[str, object]]:
    """The public form: ``[{node, share}]`` with rounded float shares."""
    rounded = round_shares([s.share for s in shares])
    return [{"node": s.node, "share": r} for s, r in zip(shares, rounded, strict=True)]


def percent(share: Fraction) -> str:
    """``Fraction(1, 3)`` -> ``33.3%``; ``Fraction(1, 4)`` -> ``25%``."""
    text = f"{float(share) * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def describe(shares: Sequence[PodShare]) -> str:
    """Per node, what each of its pods gets: ``node-a: 2 pods x 25%, node-b: 1 pod x 50%``."""
    parts: list[str] = []
    seen: dict[str, list[Fraction]] = {}
    for s in shares:
        seen.setdefault(s.node, []).append(s.share)
    for node, values in seen.items():
        count = len(values)
        plural = "pod" if count == 1 else "pods"
        parts.append(f"{node}: {count} {plural} x {percent(values[0])}")
    return ", ".join(parts)


def is_even(shares: Sequence[PodShare]) -> bool:
    return len({s.share for s in shares}) <= 1
