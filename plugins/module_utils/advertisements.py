# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Advertisements: which pools are announced, over L2 or BGP, from which nodes.

One schema for the inventory's ``lb_l2_advertisements`` and
``lb_bgp_advertisements`` and for ``validate``'s ``l2_advertisements`` and
``bgp_advertisements``: :func:`parse_advertisement` checks each key and
refuses unknown ones, naming the field and the value.

One rule for the mode a pool is announced with, used by ``validate`` and by
the announcement plan (:func:`.announcements.resolve`):
:func:`pool_announcement`. Any BGP advertisement that applies to the pool
makes it ``bgp``, else any L2 one ``l2``, else the pool is not announced; an
advertisement without ``pools`` applies to every pool, and one without
``nodes`` may be announced by every node.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import InputError, refuse_unknown_keys
from .fields import integer, sequence
from .names import check_object_name

MODES = ("l2", "bgp")
COMMON_KEYS = frozenset({"name", "pools", "nodes"})
L2_KEYS = COMMON_KEYS | {"interfaces"}
# the BGP policy keys are the speaker's own (lbspeaker/bgp/config.py, _parse_advertisement)
BGP_POLICY_KEYS = ("communities", "large_communities", "local_pref", "aggregation_length", "aggregation_length_v6")
BGP_KEYS = COMMON_KEYS | {"peers", *BGP_POLICY_KEYS}
KEYS = {"l2": L2_KEYS, "bgp": BGP_KEYS}
# aggregation_length and aggregation_length_v6 when unset, and their largest values: a route for the address alone
AGGREGATION_LENGTH = 32
AGGREGATION_LENGTH_V6 = 128
# well-known communities by name (RFC 1997, RFC 7999), taken in any case; the speaker sends these values
WELL_KNOWN_COMMUNITIES = {
    "no-export": 0xFFFFFF01,
    "no-advertise": 0xFFFFFF02,
    "no-export-subconfed": 0xFFFFFF03,
    "blackhole": 0xFFFF029A,
}
MAX_U16 = 0xFFFF
MAX_U32 = 0xFFFFFFFF


def applies_to_node(nodes: Sequence[str] | None, node: str) -> bool:
    """The rule of a ``nodes`` list (an advertisement's, and a service's or a peer's in the inventory): empty or
    None means every node, else only the nodes it names."""
    return not nodes or node in nodes


@dataclass(frozen=True)
class Advertisement:
    """One L2 or BGP advertisement, as the inventory and ``validate`` give it."""

    mode: str  # "l2" or "bgp"
    index: int
    pools: tuple[str, ...] = ()  # empty: every pool
    nodes: tuple[str, ...] = ()  # empty: every node
    name: str | None = None
    interfaces: tuple[str, ...] = ()  # L2: empty means the speaker's own interfaces
    peers: tuple[str, ...] = ()  # BGP: names or addresses of peers; empty means every peer
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None
    aggregation_length: int | None = None
    aggregation_length_v6: int | None = None
    prefix: str = ""  # "lb_" when read from the inventory's variables

    @property
    def field(self) -> str:
        return f"{self.prefix}{self.mode}_advertisements[{self.index}]"

    def announces(self, pool: str) -> bool:
        return not self.pools or pool in self.pools

    def applies_to(self, node: str) -> bool:
        """Whether this advertisement is meant for ``node`` (:func:`applies_to_node`)."""
        return applies_to_node(self.nodes, node)


@dataclass(frozen=True)
class PoolAnnouncement:
    """How a pool is announced: its mode and the nodes that may announce it."""

    mode: str | None  # "bgp", "l2", or None: no advertisement applies, nobody announces the pool
    modes: tuple[str, ...]  # every mode with an advertisement of the pool, sorted
    advertisements: tuple[Advertisement, ...]  # the advertisements of ``mode`` that apply to the pool
    nodes: tuple[str, ...] | None  # the candidate nodes; None: every node, and their names were not given

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The L2 interfaces the pool is announced on, in the advertisements' order, each once.

        Empty: every interface the speaker has (and always for BGP, which is not tied to an interface).
        """
        if self.mode != "l2":
            return ()
        return tuple(dict.fromkeys(i for ad in self.advertisements for i in ad.interfaces))


def pool_announcement(
    pool: str, advertisements: Sequence[Advertisement], nodes: Sequence[str] = ()
) -> PoolAnnouncement:
    """The mode a pool is announced with, and the nodes that may announce it.

    BGP when any BGP advertisement applies to the pool (routed clients follow
    BGP), else L2 when any L2 one does, else None. The candidates are the
    union of the nodes of that mode's advertisements, in order; an
    advertisement without ``nodes`` stands for every node: ``nodes``, or None
    when those are not known.
    """
    modes = tuple(sorted({ad.mode for ad in advertisements if ad.announces(pool)}))
    if not modes:
        return PoolAnnouncement(None, (), (), ())
    mode = "bgp" if "bgp" in modes else "l2"
    chosen = tuple(ad for ad in advertisements if ad.mode == mode and ad.announces(pool))
    candidates: list[str] = []
    for ad in chosen:
        extra = ad.nodes or tuple(nodes)
        if not extra:
            return PoolAnnouncement(mode, modes, chosen, None)
        for node in extra:
            if node not in candidates:
                candidates.append(node)
    return PoolAnnouncement(mode, modes, chosen, tuple(candidates))


# -- the schema -------------------------------------------------------------------------------


def names_list(data: object, field: str, what: str) -> tuple[str, ...]:
    """A list of non-empty names (pools, nodes, peers, interfaces); None is the empty list."""
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(n, str) and n for n in data):
        raise InputError(field, data, f"must be a list of {what} names")
    return tuple(data)


def _integer(data: object, field: str, high: int) -> int | None:
    """An optional whole number from 0 to ``high``: None is unset."""
    return None if data is None else integer(data, field, 0, high)


def _numbers(data: object, count: int, high: int) -> tuple[int, ...] | None:
    """``count`` colon-separated numbers, each at most ``high``, from a string; else None."""
    if not isinstance(data, str):
        return None
    parts = data.strip().split(":")
    if len(parts) != count or not all(p.isascii() and p.isdigit() and int(p) <= high for p in parts):
        return None
    return tuple(int(p) for p in parts)


def parse_community(data: object, field: str) -> int:
    """A standard community as the 32-bit value sent: ``ASN:VALUE`` (each 0-65535) or a well-known name."""
    if isinstance(data, str) and data.strip().lower() in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[data.strip().lower()]
    numbers = _numbers(data, 2, MAX_U16)
    if numbers is None:
        raise InputError(
            field,
            data,
            f'must be a string "ASN:VALUE" (each 0-{MAX_U16}, for example "64500:100"; quote it in YAML) '
            f"or one of {', '.join(WELL_KNOWN_COMMUNITIES)}",
        )
    return (numbers[0] << 16) | numbers[1]


def parse_large_community(data: object, field: str) -> tuple[int, int, int]:
    """A large community (RFC 8092): ``GLOBAL:LOCAL1:LOCAL2`` (each 0-4294967295)."""
    numbers = _numbers(data, 3, MAX_U32)
    if numbers is None:
        raise InputError(
            field,
            data,
            f'must be a string "GLOBAL:LOCAL1:LOCAL2" (each 0-{MAX_U32}, for example "64500:1:100"; quote it in YAML)',
        )
    return numbers[0], numbers[1], numbers[2]


def check_community(data: object, field: str) -> str:
    """A standard community, kept as written (the speaker's configuration carries the text)."""
    parse_community(data, field)
    return str(data)


def check_large_community(data: object, field: str) -> str:
    """A large community, kept as written."""
    parse_large_community(data, field)
    return str(data)


def _checked(data: object, field: str, check: Callable[[object, str], str]) -> tuple[str, ...]:
    return tuple(check(item, f"{field}[{i}]") for i, item in enumerate(sequence(data, field)))


def parse_advertisement(data: object, mode: str, index: int, prefix: str = "") -> Advertisement:
    """One advertisement; ``prefix`` is ``lb_`` when it comes from the inventory (errors name that variable)."""
    field = f"{prefix}{mode}_advertisements[{index}]"
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping with pools and optional nodes")
    refuse_unknown_keys(data, KEYS[mode], field)
    name = data.get("name")
    return Advertisement(
        mode=mode,
        index=index,
        name=None if name is None else check_object_name(name, f"{field}.name"),
        pools=names_list(data.get("pools"), f"{field}.pools", "pool"),
        nodes=names_list(data.get("nodes"), f"{field}.nodes", "node"),
        interfaces=names_list(data.get("interfaces"), f"{field}.interfaces", "interface"),
        peers=names_list(data.get("peers"), f"{field}.peers", "peer"),
        communities=_checked(data.get("communities"), f"{field}.communities", check_community),
        large_communities=_checked(data.get("large_communities"), f"{field}.large_communities", check_large_community),
        local_pref=_integer(data.get("local_pref"), f"{field}.local_pref", MAX_U32),
        aggregation_length=_integer(data.get("aggregation_length"), f"{field}.aggregation_length", AGGREGATION_LENGTH),
        aggregation_length_v6=_integer(
            data.get("aggregation_length_v6"), f"{field}.aggregation_length_v6", AGGREGATION_LENGTH_V6
        ),
        prefix=prefix,
    )


def parse_advertisements(data: object, mode: str, prefix: str = "") -> list[Advertisement]:
    """A list of advertisements of one mode (None is the empty list)."""
    field = f"{prefix}{mode}_advertisements"
    return [parse_advertisement(ad, mode, i, prefix) for i, ad in enumerate(sequence(data, field))]
