# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address pools: CIDRs and ``start-end`` ranges of IPv4 and IPv6 addresses.

Addresses are handled as integers tagged with their family (4 or 6), which
keeps the allocator's inner loops cheap; :func:`format_address` turns them
back into text.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import InputError, refuse_unknown_keys
from .fields import boolean
from .names import check_namespace, check_object_name
from .selectors import LabelSelector, parse_selector

FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}
FAMILIES_BY_NAME = {"IPv4": 4, "IPv6": 6}
POOL_KEYS = frozenset({"name", "addresses", "auto_assign", "avoid_buggy_ips", "service_allocation"})
SERVICE_ALLOCATION_KEYS = frozenset({"priority", "namespaces", "service_selectors"})


def parse_address(text: object, field: str) -> tuple[int, int]:
    """``(family, integer)`` for one IP address given as text."""
    if not isinstance(text, str):
        raise InputError(field, text, "must be an IP address as a string")
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InputError(field, text, "is not a valid IPv4 or IPv6 address") from None
    return ip.version, int(ip)


def parse_stored_address(text: str, field: str) -> tuple[int, int]:
    """:func:`parse_address` for text :func:`format_address` wrote (a ledger's rows), several times faster.

    ``inet_pton`` reads the canonical forms; anything else it refuses is left to :func:`parse_address`
    and its error. Not for user input: the two parsers do not agree on every odd spelling.
    """
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError):
        return parse_address(text, field)


def format_address(family: int, value: int) -> str:
    # inet_ntop gives the same canonical (RFC 5952) text as ipaddress, several times faster
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    if value >> 48 == 0:  # ::a.b.c.d and ::ffff:a.b.c.d: inet_ntop writes these dotted, ipaddress does not
        return str(ipaddress.IPv6Address(value))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def is_buggy(family: int, value: int) -> bool:
    """IPv4 addresses ending in .0 or .255, which some old firmware mishandles."""
    return family == 4 and (value & 0xFF) in (0, 255)


def _count_buggy(first: int, last: int) -> int:
    """How many integers in [first, last] end in .0 or .255."""

    def upto(n: int) -> int:  # count in [0, n]
        if n < 0:
            return 0
        full, rest = divmod(n + 1, 256)
        return 2 * full + (1 if rest > 0 else 0) + (1 if rest == 256 else 0)

    return upto(last) - upto(first - 1)


@dataclass(frozen=True)
class AddressRange:
    """One declared entry of a pool: a CIDR or a range, as integers."""

    text: str
    family: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def usable(self, avoid_buggy_ips: bool) -> int:
        if avoid_buggy_ips and self.family == 4:
            return self.size - _count_buggy(self.first, self.last)
        return self.size

    def overlaps(self, other: AddressRange) -> bool:
        return self.family == other.family and self.first <= other.last and other.first <= self.last


def parse_range(text: object, field: str) -> AddressRange:
    """A CIDR (``198.51.100.0/24``), a range (``a-b``) or a single address."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(field, text, "must be a CIDR (198.51.100.0/24) or a range (198.51.100.10-198.51.100.20)")
    spec = text.strip()
    if "/" in spec:
        try:
            net = ipaddress.ip_network(spec, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                fixed = ipaddress.ip_network(spec, strict=False)
                raise InputError(field, text, f"has host bits set; the network is {fixed}") from None
            raise InputError(field, text, "is not a valid CIDR") from None
        return AddressRange(spec, net.version, int(net.network_address), int(net.broadcast_address))
    if "-" in spec:
        start_text, _sep, end_text = spec.partition("-")
        try:
            start = ipaddress.ip_address(start_text.strip())
            end = ipaddress.ip_address(end_text.strip())
        except ValueError:
            raise InputError(field, text, "is not a valid range: both ends must be IP addresses") from None
        if start.version != end.version:
            raise InputError(field, text, "mixes IPv4 and IPv6 in one range")
        if int(start) > int(end):
            raise InputError(field, text, "is reversed: the start is above the end")
        return AddressRange(spec, start.version, int(start), int(end))
    family, value = parse_address(spec, field)
    return AddressRange(spec, family, value, value)


@dataclass(frozen=True)
class ServiceAllocation:
    """Which services a pool serves, and with what priority (lower first, 0 = last)."""

    priority: int
    namespaces: tuple[str, ...]
    service_selectors: tuple[LabelSelector, ...]

    def allows(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.namespaces and namespace not in self.namespaces:
            return False
        return not self.service_selectors or any(s.matches(labels) for s in self.service_selectors)

    def refusal(self, namespace: str, labels: Mapping[str, str]) -> str | None:
        """Why this pool refuses a service, or None."""
        if self.namespaces and namespace not in self.namespaces:
            return f"serves only namespaces {', '.join(self.namespaces)}"
        if self.service_selectors and not any(s.matches(labels) for s in self.service_selectors):
            return "serves only services matching its service_selectors"
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "priority": self.priority,
            "namespaces": list(self.namespaces),
            "service_selectors": [s.to_dict() for s in self.service_selectors],
        }


def parse_service_allocation(data: object, field: str, *, check_names: bool = True) -> ServiceAllocation | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping with priority, namespaces and/or service_selectors")
    refuse_unknown_keys(data, SERVICE_ALLOCATION_KEYS, field)
    priority = data.get("priority") or 0
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise InputError(f"{field}.priority", priority, "must be a non-negative integer (lower is tried first, 0 last)")
    namespaces = data.get("namespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) and n for n in namespaces):
        raise InputError(f"{field}.namespaces", namespaces, "must be a list of namespace names")
    if check_names:
        for i, namespace in enumerate(namespaces):
            check_namespace(namespace, f"{field}.namespaces[{i}]")
    selectors_data = data.get("service_selectors") or []
    if not isinstance(selectors_data, list):
        raise InputError(f"{field}.service_selectors", selectors_data, "must be a list of label selectors")
    selectors = tuple(
        parse_selector(s, f"{field}.service_selectors[{i}]", check_names=check_names)
        for i, s in enumerate(selectors_data)
    )
    return ServiceAllocation(int(priority), tuple(namespaces), selectors)


@dataclass(frozen=True)
class Pool:
    name: str
    ranges: tuple[AddressRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None

    @functools.cached_property
    def families(self) -> tuple[int, ...]:
        return tuple(f for f in (4, 6) if any(r.family == f for r in self.ranges))

    def find_range(self, family: int, value: int) -> int | None:
        """Index of the range holding the address, or None."""
        for i, r in enumerate(self.ranges):
            if r.family == family and r.first <= value <= r.last:
                return i
        return None

    def allocatable(self, family: int, value: int) -> bool:
        if self.find_range(family, value) is None:
            return False
        return not (self.avoid_buggy_ips and is_buggy(family, value))

    def size(self, family: int) -> int:
        return sum(r.usable(self.avoid_buggy_ips) for r in self.ranges if r.family == family)

    def refusal(self, namespace: str, labels: Mapping[str, str]) -> str | None:
        """Why this pool will not serve a service (any path), or None."""
        if self.service_allocation is None:
            return None
        return self.service_allocation.refusal(namespace, labels)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "addresses": [r.text for r in self.ranges],
            "auto_assign": self.auto_assign,
            "avoid_buggy_ips": self.avoid_buggy_ips,
            "service_allocation": self.service_allocation.to_dict() if self.service_allocation else None,
        }


def parse_pool(data: Mapping[str, object], field: str = "pool", *, check_names: bool = True) -> Pool:
    """A pool from its user-facing form (as in ``address_pool``'s options).

    ``field`` prefixes the names in errors. Empty, ``data`` is a module's own
    options: Ansible's argument spec has checked their keys, and they hold the
    module's other options too (``ledger``, ``state``, ``force``). Otherwise
    ``data`` is one pool given inside another option (``validate``'s
    ``pools``) or saved in the ledger, and a key that is not a pool's is refused.

    Names follow Kubernetes' rules (:mod:`.names`); ``check_names=False``
    reads a pool saved by an earlier version, which did not check them.
    """
    prefix = f"{field}." if field else ""
    if field:
        refuse_unknown_keys(data, POOL_KEYS, field)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or name.strip() != name:
        raise InputError(f"{prefix}name", name, "must be a non-empty string without surrounding spaces")
    if check_names:
        check_object_name(name, f"{prefix}name")
    addresses = data.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        raise InputError(f"{prefix}addresses", addresses, "must be a non-empty list of CIDRs or ranges")
    ranges = tuple(parse_range(a, f"{prefix}addresses[{i}]") for i, a in enumerate(addresses))
    for i, a in enumerate(ranges):
        for j in range(i):
            if a.overlaps(ranges[j]):
                raise InputError(f"{prefix}addresses[{i}]", a.text, f"overlaps {ranges[j].text} of the same pool")
    return Pool(
        name=name,
        ranges=ranges,
        auto_assign=boolean(data.get("auto_assign"), f"{prefix}auto_assign", True),
        avoid_buggy_ips=boolean(data.get("avoid_buggy_ips"), f"{prefix}avoid_buggy_ips", False),
        service_allocation=parse_service_allocation(
            data.get("service_allocation"), f"{prefix}service_allocation", check_names=check_names
        ),
    )


def find_overlap(pool: Pool, others: Iterable[Pool]) -> tuple[AddressRange, Pool, AddressRange] | None:
    """The first range of ``pool`` that overlaps a range of another pool."""
    for other in others:
        if other.name == pool.name:
            continue
        for mine in pool.ranges:
            for theirs in other.ranges:
                if mine.overlaps(theirs):
                    return mine, other, theirs
    return None


def check_no_overlaps(pools: Iterable[Pool], field: str = "pools") -> None:
    """Raise if any two pools share an address (sort and sweep, per family).

    Ranges inside one pool never overlap (parse_pool checks), so a range that
    starts before the furthest end seen so far overlaps another pool's range.
    The error names both pools and both ranges, and points at the range of the
    pool listed later (the one added to a working list, most likely).
    """
    entries = sorted(
        (r.family, r.first, r.last, idx, j, p.name, r.text)
        for idx, p in enumerate(pools)
        for j, r in enumerate(p.ranges)
    )
    furthest: tuple[int, int, int, int, str, str] | None = None  # family, last, idx, j, pool, text
    for family, first, last, idx, j, pool, text in entries:
        if furthest is not None and furthest[0] == family and first <= furthest[1]:
            mine, theirs = sorted([(idx, j, pool, text), furthest[2:]], reverse=True)
            raise InputError(
                f"{field}[{mine[0]}].addresses[{mine[1]}]",
                mine[3],
                overlap_message(mine[2], mine[3], theirs[2], theirs[3]),
            )
        if furthest is None or furthest[0] != family or last > furthest[1]:
            furthest = (family, last, idx, j, pool, text)


def overlap_message(pool: str, text: str, other_pool: str, other_text: str) -> str:
    """The one wording of an overlap between two pools, both named with their ranges."""
    return f"{text} of pool {pool!r} overlaps {other_text} of pool {other_pool!r}; pools never share addresses"


def parse_pool_list(data: object, field: str = "pools") -> list[Pool]:
    """A whole list of pools (``lb_pools``, the controller's ``pools``): each parsed, names unique, no overlaps."""
    if not isinstance(data, list):
        raise InputError(field, data, "must be a list of pools")
    pools: list[Pool] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise InputError(f"{field}[{i}]", item, "must be a pool (a mapping with name and addresses)")
        pool = parse_pool(item, f"{field}[{i}]")
        if pool.name in first_index:
            also = first_index[pool.name]
            raise InputError(f"{field}[{i}].name", pool.name, f"is listed twice (also {field}[{also}])")
        first_index[pool.name] = i
        pools.append(pool)
    check_no_overlaps(pools, field)
    return pools
