"""The ``bgp`` section of the speaker configuration, parsed into typed dataclasses.

Every error is a :class:`~lbspeaker.errors.ConfigError` naming the dotted field.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.errors import ConfigError

from ..core.advertisements import (
    AGGREGATION_LENGTH,
    AGGREGATION_LENGTH_V6,
    Advertisement,
    parse_community,
    parse_large_community,
)
from ..core.announcements import DUPLICATE_PEER, peer_clashes, peer_keys
from ..core.dataplane import IPAddress
from ..core.fields import boolean, integer, mapping, sequence
from ..core.limits import password_problem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class BfdConfig:
    enabled: bool = False
    min_rx_ms: int = 300
    min_tx_ms: int = 300
    multiplier: int = 3


@dataclass(frozen=True)
class PeerConfig:
    address: IPAddress
    asn: int
    name: str = ""
    port: int = 179
    password: str | None = None
    multihop: bool = False
    ttl: int | None = None  # None: 1 for eBGP single hop, 255 with multihop, the OS default for iBGP
    source_address: IPAddress | None = None
    passive: bool = False
    hold_time: int = 90
    keepalive_time: int = 30
    connect_retry_time: float = 1.0
    connect_retry_max: float = 30.0
    graceful_restart: bool = False
    restart_time: int = 120
    next_hop_ipv4: ipaddress.IPv4Address | None = None
    next_hop_ipv6: ipaddress.IPv6Address | None = None
    address_families: tuple[str, ...] = ("ipv4", "ipv6")
    bfd: BfdConfig = field(default_factory=BfdConfig)

    @property
    def key(self) -> str:
        return self.name or str(self.address)

    def session_params(self) -> tuple[Any, ...]:
        """Everything that needs a session reset when it changes."""
        return (self.asn, self.port, self.password, self.multihop, self.ttl, self.source_address, self.passive,
                self.hold_time, self.keepalive_time, self.graceful_restart, self.restart_time,
                self.next_hop_ipv4, self.next_hop_ipv6, self.address_families)


@dataclass(frozen=True)
class RouteAdvertisement:
    services: tuple[str, ...] = ()  # empty with no addresses: every announcement
    addresses: tuple[IPNetwork, ...] = ()
    peers: tuple[str, ...] = ()  # peer names or addresses; empty: every peer
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    local_pref: int | None = None
    aggregation_length: int = AGGREGATION_LENGTH
    aggregation_length_v6: int = AGGREGATION_LENGTH_V6


@dataclass(frozen=True)
class BgpConfig:
    asn: int
    router_id: ipaddress.IPv4Address
    peers: tuple[PeerConfig, ...] = ()
    advertisements: tuple[RouteAdvertisement, ...] = (RouteAdvertisement(),)
    listen_address: IPAddress | None = None
    listen_port: int = 179

    def peer(self, key: str) -> PeerConfig | None:
        for p in self.peers:
            if p.key == key:
                return p
        return None


# --------------------------------------------------------------------------
# Helpers


def parse_ip(text: str) -> IPAddress:
    """An IP address from text, via inet_pton: ten times faster than ip_address() for bulk input."""
    try:
        if ":" in text:
            return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text))
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _asn(value: Any, path: str) -> int:
    if isinstance(value, str) and "." in value:  # asdot notation
        try:
            hi, lo = (int(x) for x in value.split("."))
            value = (hi << 16) | lo
        except ValueError:
            raise ConfigError(path, value, "must be an AS number") from None
    return integer(value, path, 1, 0xFFFFFFFF)


def _ip(value: Any, path: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ConfigError(path, value, "must be an IP address") from None


def _ip_of(value: Any, path: str, version: int) -> Any:
    addr = _ip(value, path)
    if addr.version != version:
        raise ConfigError(path, value, f"must be an IPv{version} address")
    return addr


# --------------------------------------------------------------------------
# Sections


def _parse_bfd(value: Any, path: str) -> BfdConfig:
    if value is None:
        return BfdConfig()
    if isinstance(value, bool):
        return BfdConfig(enabled=value)
    data = mapping(value, path, {"enabled", "min_rx_ms", "min_tx_ms", "multiplier"})
    return BfdConfig(
        enabled=boolean(data.get("enabled"), f"{path}.enabled", True),
        min_rx_ms=integer(data.get("min_rx_ms"), f"{path}.min_rx_ms", 10, 60000, 300),
        min_tx_ms=integer(data.get("min_tx_ms"), f"{path}.min_tx_ms", 10, 60000, 300),
        multiplier=integer(data.get("multiplier"), f"{path}.multiplier", 1, 255, 3),
    )


PEER_KEYS = {"address", "asn", "name", "port", "password", "multihop", "ttl", "source_address", "passive",
             "hold_time", "keepalive_time", "connect_retry_time", "connect_retry_max", "graceful_restart",
             "restart_time", "next_hop_ipv4", "next_hop_ipv6", "address_families", "bfd"}


def _parse_peer(value: Any, path: str) -> PeerConfig:
    data = mapping(value, path, PEER_KEYS)
    for required in ("address", "asn"):
        if required not in data:
            raise ConfigError(f"{path}.{required}", None, "is required")
    hold = integer(data.get("hold_time"), f"{path}.hold_time", 0, 65535, 90)
    if hold in (1, 2):
        raise ConfigError(f"{path}.hold_time", hold, "must be 0 or at least 3 seconds")
    keepalive = integer(data.get("keepalive_time"), f"{path}.keepalive_time", 1, 21845,
                        max(hold // 3, 1) if hold else 30)
    if hold and keepalive > hold:
        raise ConfigError(f"{path}.keepalive_time", keepalive, "must not exceed hold_time")
    password = data.get("password")
    problem = None if password is None else password_problem(password)
    if problem:
        raise ConfigError(f"{path}.password", "***", problem)
    ttl = data.get("ttl")
    if ttl is not None:
        ttl = integer(ttl, f"{path}.ttl", 1, 255)
    listed = sequence(data.get("address_families", ["ipv4", "ipv6"]), f"{path}.address_families")
    families = tuple(str(f).lower() for f in listed)
    for i, fam in enumerate(families):
        if fam not in ("ipv4", "ipv6"):
            raise ConfigError(f"{path}.address_families[{i}]", fam, "must be ipv4 or ipv6")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{path}.name", name, "must be a string")
    retry = data.get("connect_retry_time", 1.0)
    retry_max = data.get("connect_retry_max", 30.0)
    for key, val in (("connect_retry_time", retry), ("connect_retry_max", retry_max)):
        if isinstance(val, bool) or not isinstance(val, int | float) or not 0.1 <= val <= 3600:
            raise ConfigError(f"{path}.{key}", val, "must be a number of seconds between 0.1 and 3600")
    return PeerConfig(
        address=_ip(data["address"], f"{path}.address"),
        asn=_asn(data["asn"], f"{path}.asn"),
        name=name,
        port=integer(data.get("port"), f"{path}.port", 1, 65535, 179),
        password=password,
        multihop=boolean(data.get("multihop"), f"{path}.multihop", False),
        ttl=ttl,
        source_address=_ip(data["source_address"], f"{path}.source_address") if data.get("source_address") else None,
        passive=boolean(data.get("passive"), f"{path}.passive", False),
        hold_time=hold,
        keepalive_time=keepalive,
        connect_retry_time=float(retry),
        connect_retry_max=float(max(retry, retry_max)),
        graceful_restart=boolean(data.get("graceful_restart"), f"{path}.graceful_restart", False),
        restart_time=integer(data.get("restart_time"), f"{path}.restart_time", 1, 4095, 120),
        next_hop_ipv4=_ip_of(data["next_hop_ipv4"], f"{path}.next_hop_ipv4", 4) if data.get("next_hop_ipv4") else None,
        next_hop_ipv6=_ip_of(data["next_hop_ipv6"], f"{path}.next_hop_ipv6", 6) if data.get("next_hop_ipv6") else None,
        address_families=families,
        bfd=_parse_bfd(data.get("bfd"), f"{path}.bfd"),
    )


ADV_KEYS = {"services", "addresses", "peers", "communities", "large_communities", "local_pref",
            "aggregation_length", "aggregation_length_v6"}


def _canonical(reference: str) -> str:
    try:
        return str(ipaddress.ip_address(reference))
    except ValueError:
        return reference


def _parse_advertisement(value: Any, path: str, known_peers: set[str]) -> RouteAdvertisement:
    data = mapping(value, path, ADV_KEYS)
    services = tuple(str(s) for s in sequence(data.get("services"), f"{path}.services"))
    addresses: list[IPNetwork] = []
    for i, a in enumerate(sequence(data.get("addresses"), f"{path}.addresses")):
        try:
            addresses.append(ipaddress.ip_network(str(a), strict=False))
        except ValueError:
            raise ConfigError(f"{path}.addresses[{i}]", a, "must be an address or CIDR") from None
    peers = tuple(str(p) for p in sequence(data.get("peers"), f"{path}.peers"))
    for i, p in enumerate(peers):
        if p not in known_peers:
            raise ConfigError(f"{path}.peers[{i}]", p, "names no configured peer (use its name or address)")
    # an address however written names the peer by its canonical form, the one sessions are matched on
    peers = tuple(_canonical(p) for p in peers)
    local_pref = data.get("local_pref")
    if local_pref is not None:
        local_pref = integer(local_pref, f"{path}.local_pref", 0, 0xFFFFFFFF)
    return RouteAdvertisement(
        services=services,
        addresses=tuple(addresses),
        peers=peers,
        communities=tuple(parse_community(c, f"{path}.communities[{i}]")
                          for i, c in enumerate(sequence(data.get("communities"), f"{path}.communities"))),
        large_communities=tuple(
            parse_large_community(c, f"{path}.large_communities[{i}]")
            for i, c in enumerate(sequence(data.get("large_communities"), f"{path}.large_communities"))),
        local_pref=local_pref,
        aggregation_length=integer(data.get("aggregation_length"), f"{path}.aggregation_length", 0,
                                   AGGREGATION_LENGTH, AGGREGATION_LENGTH),
        aggregation_length_v6=integer(data.get("aggregation_length_v6"), f"{path}.aggregation_length_v6", 0,
                                      AGGREGATION_LENGTH_V6, AGGREGATION_LENGTH_V6),
    )


@functools.lru_cache(maxsize=1024)
def route_advertisement(ad: Advertisement) -> RouteAdvertisement:
    """A pool's BGP advertisement (the core's model, from the ``kubernetes:`` section) as the BGP speaker's policy.

    It applies to the addresses it is attached to (no ``services``/``addresses`` of its own); the text of its
    communities was checked when the section was parsed, and becomes the values sent here.
    """
    field_name = ad.field
    return RouteAdvertisement(
        peers=ad.peers,
        communities=tuple(parse_community(c, f"{field_name}.communities[{i}]") for i, c in enumerate(ad.communities)),
        large_communities=tuple(parse_large_community(c, f"{field_name}.large_communities[{i}]")
                                for i, c in enumerate(ad.large_communities)),
        local_pref=ad.local_pref,
        aggregation_length=AGGREGATION_LENGTH if ad.aggregation_length is None else ad.aggregation_length,
        aggregation_length_v6=AGGREGATION_LENGTH_V6 if ad.aggregation_length_v6 is None else ad.aggregation_length_v6,
    )


SECTION_KEYS = {"asn", "router_id", "peers", "advertisements", "listen_address", "listen_port"}


def parse_bgp_config(data: Mapping[str, Any], field: str = "bgp") -> BgpConfig:
    """Parse the ``bgp`` mapping; raise ConfigError naming ``field.<key>`` on error."""
    data = mapping(data, field, SECTION_KEYS)
    if "asn" not in data:
        raise ConfigError(f"{field}.asn", None, "is required")
    if "router_id" not in data:
        raise ConfigError(f"{field}.router_id", None, "is required")
    router_id = _ip(data["router_id"], f"{field}.router_id")
    if router_id.version != 4 or int(router_id) == 0:
        raise ConfigError(f"{field}.router_id", data["router_id"], "must be a non-zero IPv4 address")
    peers_raw = sequence(data.get("peers"), f"{field}.peers")
    peers = tuple(_parse_peer(p, f"{field}.peers[{i}]") for i, p in enumerate(peers_raw))
    if clashes := peer_clashes(peers_raw):
        j, key, i = clashes[0]
        raise ConfigError(f"{field}.peers[{j}]", key, f"{DUPLICATE_PEER} peers[{i}]")
    keys: set[str] = set().union(*(peer_keys(raw) for raw in peers_raw))
    ads_raw = data.get("advertisements")
    ads = (RouteAdvertisement(),) if ads_raw is None else tuple(
        _parse_advertisement(a, f"{field}.advertisements[{i}]", keys)
        for i, a in enumerate(sequence(ads_raw, f"{field}.advertisements")))
    return BgpConfig(
        asn=_asn(data["asn"], f"{field}.asn"),
        router_id=router_id,
        peers=peers,
        advertisements=ads,
        listen_address=_ip(data["listen_address"], f"{field}.listen_address") if data.get("listen_address") else None,
        listen_port=integer(data.get("listen_port"), f"{field}.listen_port", 1, 65535, 179),
    )
