# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving from MetalLB: its configuration objects turned into the inventory's ``lb_*`` variables.

:func:`translate` reads MetalLB's ``IPAddressPool``, ``L2Advertisement``,
``BGPAdvertisement``, ``BGPPeer`` (``metallb.io/v1beta1`` and ``v1beta2``),
``Community`` and ``BFDProfile`` objects and returns ``lb_pools``,
``lb_l2_advertisements``, ``lb_bgp_advertisements``, ``lb_bgp_asn`` and
``lb_bgp_peers``, plus every field it could not carry over, each named by
kind, object name and field path with the reason (:class:`NotCarried`).

Two kinds of trouble, kept apart:

- input MetalLB itself would refuse (an unknown kind or spec key, a malformed
  address, a missing required field, a reference to an object that is not
  there) raises :class:`.errors.InputError` naming the document and the field;
- a field we have no equivalent for (``vrf``, ``passwordSecret``, selectors on
  labels we do not have), or an object our own rules refuse, is reported in
  ``not_carried`` and left out, never dropped silently.

The output is checked with the core's own parsers (``parse_pool``,
``check_no_overlaps``' rule, ``parse_advertisement``, ``data_model_errors``),
so what is returned is what ``site.yml`` accepts. Field names and meanings
follow MetalLB's API reference (``website/content/apis/_index.md``) and its
``configsamples/``.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .advertisements import check_community, check_large_community, parse_advertisement
from .announcements import data_model_errors, peer_clashes, peer_keys
from .errors import InputError, refuse_unknown_keys
from .fields import boolean, integer
from .limits import password_problem
from .manifest import plain_yaml
from .pools import Pool, find_overlap, overlap_message, parse_pool, parse_range
from .selectors import LabelSelector, parse_selector

API_GROUP = "metallb.io"
# kind -> the API versions MetalLB serves it under
VERSIONS = {
    "IPAddressPool": ("v1beta1",),
    "L2Advertisement": ("v1beta1",),
    "BGPAdvertisement": ("v1beta1",),
    "BGPPeer": ("v1beta1", "v1beta2"),
    "Community": ("v1beta1",),
    "BFDProfile": ("v1beta1",),
}
# MetalLB's spec fields per kind (its api/v1beta1 and v1beta2 types); any other key is a typo
SPEC_KEYS = {
    "IPAddressPool": frozenset({"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}),
    "L2Advertisement": frozenset(
        {
            "ipAddressPools",
            "ipAddressPoolSelectors",
            "nodeSelectors",
            "interfaces",
            "serviceSelectors",
            "preferredNodeSelectors",
        }
    ),
    "BGPAdvertisement": frozenset(
        {
            "aggregationLength",
            "aggregationLengthV6",
            "localPref",
            "communities",
            "ipAddressPools",
            "ipAddressPoolSelectors",
            "nodeSelectors",
            "peers",
            "serviceSelectors",
        }
    ),
    "BGPPeer": frozenset(
        {
            "myASN",
            "peerASN",
            "localASN",
            "dynamicASN",
            "peerAddress",
            "interface",
            "sourceAddress",
            "peerPort",
            "holdTime",
            "keepaliveTime",
            "connectTime",
            "routerID",
            "nodeSelectors",
            "password",
            "passwordSecret",
            "bfdProfile",
            "enableGracefulRestart",
            "ebgpMultiHop",
            "vrf",
            "disableMP",
            "dualStackAddressFamily",
        }
    ),
    "Community": frozenset({"communities"}),
    "BFDProfile": frozenset(
        {
            "receiveInterval",
            "transmitInterval",
            "detectMultiplier",
            "echoInterval",
            "echoMode",
            "passiveMode",
            "minimumTtl",
        }
    ),
}
SERVICE_ALLOCATION_KEYS = frozenset({"priority", "namespaces", "namespaceSelectors", "serviceSelectors"})
SELECTOR_KEYS = frozenset({"matchLabels", "matchExpressions"})
EXPRESSION_KEYS = frozenset({"key", "operator", "values"})
HOSTNAME_LABEL = "kubernetes.io/hostname"
LARGE_PREFIX = "large:"
# MetalLB's BFD defaults (BFDProfileSpec), written out so the speaker runs what MetalLB ran
BFD_DEFAULTS = {"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3}
# our connect_retry_time limit (the speaker's bgp config)
MAX_CONNECT_RETRY_S = 3600
# a key of our schema -> MetalLB's spelling, to name a field our parsers refuse in MetalLB's terms
METALLB_SPELLING = {
    "name": "metadata.name",
    "addresses": "spec.addresses",
    "auto_assign": "spec.autoAssign",
    "avoid_buggy_ips": "spec.avoidBuggyIPs",
    "service_allocation": "spec.serviceAllocation",
    "service_selectors": "serviceSelectors",
    "match_labels": "matchLabels",
    "match_expressions": "matchExpressions",
    "pools": "spec.ipAddressPools",
    "nodes": "spec.nodeSelectors",
    "interfaces": "spec.interfaces",
    "peers": "spec.peers",
    "communities": "spec.communities",
    "large_communities": "spec.communities",
    "local_pref": "spec.localPref",
    "aggregation_length": "spec.aggregationLength",
    "aggregation_length_v6": "spec.aggregationLengthV6",
}
# PyYAML (and so Ansible's from_yaml) reads an unquoted 1234:1 as the base-60 integer 74041
_BASE_60 = (
    "; a community such as 1234:1 read by a YAML 1.1 reader (Ansible's from_yaml) becomes a number: "
    "quote it, or give the file in src"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class NotCarried:
    """A field (or a whole object, ``field`` empty) that is not in the inventory, and why."""

    kind: str
    name: str
    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "field": self.field, "reason": self.reason}


@dataclass
class Migration:
    """The inventory variables and what did not make it into them."""

    inventory: dict[str, Any]
    not_carried: list[NotCarried] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    """One MetalLB object; ``source`` says where it was read (``pools.yaml[2]``)."""

    source: str
    kind: str
    name: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]

    def path(self, spec_path: str) -> str:
        """The field path in errors: the document, then the field inside it."""
        return f"{self.source} {self.kind}/{self.name} {spec_path}"

    def not_carried(self, spec_path: str, reason: str) -> NotCarried:
        return NotCarried(self.kind, self.name, spec_path, reason)


# -- reading documents --------------------------------------------------------------------------


def read_documents(documents: Iterable[tuple[str, object]]) -> tuple[list[Document], list[NotCarried]]:
    """MetalLB's objects among ``(source, document)`` pairs; other API groups are reported and left out.

    ``kind: List`` (``kubectl get -o yaml``) is opened; empty YAML documents are skipped.
    """
    found: list[Document] = []
    others: list[NotCarried] = []
    queue = list(documents)
    while queue:
        source, data = queue.pop(0)
        if data is None:
            continue
        if not isinstance(data, Mapping):
            raise InputError(source, data, "must be a Kubernetes object (a mapping with apiVersion, kind and metadata)")
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise InputError(f"{source}", {"apiVersion": api_version, "kind": kind}, "needs apiVersion and kind")
        if kind == "List" and api_version == "v1":
            items = data.get("items") or []
            if not isinstance(items, list):
                raise InputError(f"{source}.items", items, "must be a list")
            queue[:0] = [(f"{source}.items[{i}]", item) for i, item in enumerate(items)]
            continue
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InputError(f"{source} {kind} metadata.name", name, "is required")
        group, _slash, version = api_version.rpartition("/")
        if group != API_GROUP:
            others.append(
                NotCarried(
                    kind,
                    name,
                    "",
                    f"not MetalLB configuration ({api_version}): left out; Services keep working as they are "
                    "(the controller honours MetalLB's annotations), or list them in lb_services",
                )
            )
            continue
        if kind not in VERSIONS:
            raise InputError(
                f"{source} {kind}/{name} kind",
                kind,
                f"is not a MetalLB kind this migration knows: {', '.join(VERSIONS)}",
            )
        if version not in VERSIONS[kind]:
            raise InputError(
                f"{source} {kind}/{name} apiVersion",
                api_version,
                f"must be {' or '.join(f'{API_GROUP}/{v}' for v in VERSIONS[kind])}",
            )
        spec = data.get("spec")
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise InputError(f"{source} {kind}/{name} spec", spec, "must be a mapping")
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        doc = Document(source, kind, name, spec, labels if isinstance(labels, Mapping) else {})
        refuse_unknown_keys(spec, SPEC_KEYS[kind], doc.path("spec"))
        found.append(doc)
    return found, others


# -- small conversions ----------------------------------------------------------------------------


def seconds(value: object, where: str) -> float:
    """A Kubernetes duration (Go's ``time.ParseDuration``: ``90s``, ``9m0s``, ``1h30m``) in seconds."""
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text == "0":
            return 0.0
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    raise InputError(where, value, "must be a duration such as 90s, 9m0s or 1h30m")


def _strings(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(where, value, f"must be a list of non-empty strings{_BASE_60}")
    return list(value)


def _selectors(value: object, where: str) -> list[dict[str, Any]]:
    """MetalLB's label selectors (``matchLabels``/``matchExpressions``) in our spelling; ``{}`` stays empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(where, value, "must be a list of label selectors")
    out = []
    for i, selector in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(selector, Mapping):
            raise InputError(at, selector, "must be a label selector (matchLabels and/or matchExpressions)")
        refuse_unknown_keys(selector, SELECTOR_KEYS, at)
        ours: dict[str, Any] = {}
        if selector.get("matchLabels"):
            ours["match_labels"] = dict(selector["matchLabels"])
        expressions = selector.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise InputError(f"{at}.matchExpressions", expressions, "must be a list")
        for j, expr in enumerate(expressions):
            if not isinstance(expr, Mapping):
                raise InputError(f"{at}.matchExpressions[{j}]", expr, "must be a mapping with key, operator, values")
            refuse_unknown_keys(expr, EXPRESSION_KEYS, f"{at}.matchExpressions[{j}]")
        if expressions:
            ours["match_expressions"] = [dict(e) for e in expressions]
        out.append(ours)
    return out


def _parsed_selector(selector: Mapping[str, Any], where: str) -> LabelSelector | None:
    """The core's selector; None for the empty one, which matches everything."""
    if not selector:
        return None
    try:
        return parse_selector(selector, where)
    except InputError as exc:
        rest = exc.field[len(where) :] if exc.field.startswith(where) else ""
        raise InputError(where + _metallb_field(rest), exc.value, exc.message) from None


def _metallb_field(ours: str) -> str:
    """A field path of our schema written with MetalLB's names (``service_allocation.priority``...)."""
    return "".join(METALLB_SPELLING.get(part, part) for part in re.split(r"(\.|\[\d+\])", ours))


def _node_names(selectors: list[dict[str, Any]]) -> list[str] | None:
    """Node names when every selector picks nodes by ``kubernetes.io/hostname`` alone, else None.

    Our advertisements and peers list nodes by name (each host's ``lb_node_name``, else its
    inventory name), so only hostname selectors have an equivalent.
    """
    names: list[str] = []
    for selector in selectors:
        labels = selector.get("match_labels") or {}
        expressions = selector.get("match_expressions") or []
        if set(labels) == {HOSTNAME_LABEL} and not expressions:
            picked = [str(labels[HOSTNAME_LABEL])]
        elif not labels and len(expressions) == 1 and expressions[0].get("key") == HOSTNAME_LABEL:
            if expressions[0].get("operator") != "In":
                return None
            picked = [str(v) for v in expressions[0].get("values") or []]
        else:
            return None
        names += [n for n in picked if n not in names]
    return names


# -- the kinds ------------------------------------------------------------------------------------


def _community_aliases(docs: Sequence[Document]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for doc in docs:
        entries = doc.spec.get("communities") or []
        if not isinstance(entries, list):
            raise InputError(doc.path("spec.communities"), entries, "must be a list of {name, value}")
        for i, entry in enumerate(entries):
            at = doc.path(f"spec.communities[{i}]")
            if not isinstance(entry, Mapping):
                raise InputError(at, entry, "must be a mapping with name and value")
            refuse_unknown_keys(entry, ("name", "value"), at)
            name, value = entry.get("name"), entry.get("value")
            if not isinstance(name, str) or not name:
                raise InputError(f"{at}.name", name, "is required")
            if not isinstance(value, str) or not value:
                raise InputError(f"{at}.value", value, f"is required, as a string{_BASE_60}")
            _community(value, f"{at}.value")
            if aliases.get(name, value) != value:
                raise InputError(f"{at}.value", value, f"alias {name!r} is defined with {aliases[name]!r} too")
            aliases[name] = value
    return aliases


def _community(value: str, where: str) -> tuple[str, str]:
    """``("communities" | "large_communities", text)``: MetalLB's ``large:G:L1:L2`` or a standard one."""
    if value.startswith(LARGE_PREFIX):
        return "large_communities", check_large_community(value[len(LARGE_PREFIX) :], where)
    return "communities", check_community(value, where)


def _pool(doc: Document) -> tuple[dict[str, Any], list[NotCarried]]:
    spec, notes = doc.spec, []
    addresses = spec.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        raise InputError(doc.path("spec.addresses"), addresses, "is required: a list of CIDRs and ranges")
    written = []
    for i, text in enumerate(addresses):
        where = doc.path(f"spec.addresses[{i}]")
        if isinstance(text, str) and "/" in text and "-" not in text:
            # MetalLB takes a CIDR with host bits set as its network (net.ParseCIDR); we spell the network
            try:
                net = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise InputError(where, text, "is not a valid CIDR") from None
            if ipaddress.ip_address(text.strip().split("/")[0]) != net.network_address:
                notes.append(
                    doc.not_carried(
                        f"spec.addresses[{i}]",
                        f"{text} has host bits set; MetalLB uses its network, written as {net}",
                    )
                )
                written.append(str(net))
                continue
        parse_range(text, where)  # malformed is bad input, not something to carry or not
        written.append(text.strip())
    pool: dict[str, Any] = {"name": doc.name, "addresses": written}
    if spec.get("autoAssign") is not None:
        pool["auto_assign"] = spec["autoAssign"]
    if spec.get("avoidBuggyIPs") is not None:
        pool["avoid_buggy_ips"] = spec["avoidBuggyIPs"]
    allocation = spec.get("serviceAllocation")
    if allocation is not None:
        at = doc.path("spec.serviceAllocation")
        if not isinstance(allocation, Mapping):
            raise InputError(at, allocation, "must be a mapping")
        refuse_unknown_keys(allocation, SERVICE_ALLOCATION_KEYS, at)
        ours: dict[str, Any] = {}
        if allocation.get("priority") is not None:
            ours["priority"] = allocation["priority"]
        namespaces = _strings(allocation.get("namespaces"), f"{at}.namespaces")
        if namespaces:
            ours["namespaces"] = namespaces
        selectors = _selectors(allocation.get("serviceSelectors"), f"{at}.serviceSelectors")
        if selectors and all(selectors):  # an empty selector matches every service: no restriction
            ours["service_selectors"] = selectors
        if _selectors(allocation.get("namespaceSelectors"), f"{at}.namespaceSelectors"):
            consequence = (
                f"the pool serves only namespaces {', '.join(namespaces)}; add the namespaces those labels select"
                if namespaces
                else "the pool now serves every namespace; list the namespaces those labels select in "
                "service_allocation.namespaces"
            )
            notes.append(
                doc.not_carried(
                    "spec.serviceAllocation.namespaceSelectors",
                    f"we have no namespace labels (services carry a namespace name only): {consequence}",
                )
            )
        if ours:
            pool["service_allocation"] = ours
    return pool, notes


def _peer(
    doc: Document, profiles: Mapping[str, Document], asn: int | None
) -> tuple[dict[str, Any] | None, int | None, list[NotCarried]]:
    """``(peer or None when it cannot be carried, its myASN, notes)``."""
    spec, notes = doc.spec, []
    my_asn = integer(spec.get("myASN"), doc.path("spec.myASN"), 1, 0xFFFFFFFF)
    if spec.get("interface") and not spec.get("peerAddress"):
        return (
            None,
            my_asn,
            [
                doc.not_carried(
                    "spec.interface",
                    "unnumbered BGP (a peer by interface) is not supported: the peer is left out; "
                    "give the router's address as peerAddress",
                )
            ],
        )
    given = spec.get("peerAddress")
    address = given.strip() if isinstance(given, str) else ""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise InputError(doc.path("spec.peerAddress"), given, "is required: the router's IP address") from None
    if asn is not None and my_asn != asn:
        return (
            None,
            my_asn,
            [
                doc.not_carried(
                    "spec.myASN",
                    f"lb_bgp_asn is one AS number ({asn}, from the first BGPPeer); this peer's myASN {my_asn} "
                    "differs: the peer is left out (set lb_bgp_asn per host in host_vars and add it to lb_bgp_peers)",
                )
            ],
        )
    peer: dict[str, Any] = {"name": doc.name, "address": address}
    if spec.get("peerASN"):
        peer["asn"] = integer(spec["peerASN"], doc.path("spec.peerASN"), 1, 0xFFFFFFFF)
    elif spec.get("dynamicASN") == "internal":
        peer["asn"] = my_asn  # iBGP: the router's AS is ours
    elif spec.get("dynamicASN") == "external":
        return (
            None,
            my_asn,
            [
                doc.not_carried(
                    "spec.dynamicASN",
                    "external: we need the router's AS number to open the session; the peer is left out (set peerASN)",
                )
            ],
        )
    else:
        raise InputError(doc.path("spec.peerASN"), spec.get("peerASN"), "is required (or dynamicASN)")
    if spec.get("peerPort"):
        peer["port"] = integer(spec["peerPort"], doc.path("spec.peerPort"), 1, 65535)
    if spec.get("sourceAddress"):
        peer["source_address"] = spec["sourceAddress"]
    notes += _timers(doc, peer)
    if spec.get("connectTime") is not None:
        connect = seconds(spec["connectTime"], doc.path("spec.connectTime"))
        if 0.1 <= connect <= MAX_CONNECT_RETRY_S:
            # MetalLB waits this long between attempts; our back-off doubles up to connect_retry_max
            peer["connect_retry_time"] = peer["connect_retry_max"] = (
                int(connect) if connect == int(connect) else connect
            )
        else:
            notes.append(doc.not_carried("spec.connectTime", f"{connect:g}s is outside our 0.1-{MAX_CONNECT_RETRY_S}s"))
    if spec.get("password"):
        if problem := password_problem(spec["password"]):
            notes.append(doc.not_carried("spec.password", f"the password {problem}; the peer has none"))
        else:
            peer["password"] = spec["password"]
    if spec.get("passwordSecret"):
        notes.append(
            doc.not_carried(
                "spec.passwordSecret",
                "a reference to a Kubernetes Secret: the inventory needs the password itself; put it in a vault "
                f"(ansible-vault encrypt_string --name vault_lb_bgp_password_{doc.name.replace('-', '_')}) "
                "and set this peer's password to that variable",
            )
        )
    if spec.get("bfdProfile"):
        name = spec["bfdProfile"]
        profile = profiles.get(name)
        if profile is None:
            raise InputError(doc.path("spec.bfdProfile"), name, "is not a BFDProfile of the input")
        peer["bfd"] = _bfd(profile)
    if boolean(spec.get("ebgpMultiHop"), doc.path("spec.ebgpMultiHop"), False):
        peer["multihop"] = True
    if boolean(spec.get("enableGracefulRestart"), doc.path("spec.enableGracefulRestart"), False):
        peer["graceful_restart"] = True
    family = f"ipv{ipaddress.ip_address(peer['address']).version}"
    if boolean(spec.get("dualStackAddressFamily"), doc.path("spec.dualStackAddressFamily"), False):
        peer["address_families"] = ["ipv4", "ipv6"]
        notes.append(
            doc.not_carried(
                "spec.dualStackAddressFamily",
                f"carried as address_families [ipv4, ipv6]; routes of the other family over this {family} session "
                f"need a next hop per node: set next_hop_{'ipv6' if family == 'ipv4' else 'ipv4'} in host_vars",
            )
        )
    else:
        # MetalLB's default since disableMP's deprecation: IPv4 over IPv4 sessions, IPv6 over IPv6
        peer["address_families"] = [family]
    boolean(spec.get("disableMP"), doc.path("spec.disableMP"), False)  # that default already
    if spec.get("localASN"):
        notes.append(doc.not_carried("spec.localASN", "no local-AS override: the router sees lb_bgp_asn"))
    if spec.get("routerID"):
        notes.append(
            doc.not_carried("spec.routerID", "the BGP router ID is per host: set lb_bgp_router_id in host_vars")
        )
    if spec.get("vrf"):
        notes.append(
            doc.not_carried("spec.vrf", "sessions in a Linux VRF are not supported: the session uses the main table")
        )
    selectors = _selectors(spec.get("nodeSelectors"), doc.path("spec.nodeSelectors"))
    notes += _nodes(doc, selectors, peer, "the peer is used from every node")
    return peer, my_asn, notes


def _clashing(carried: Sequence[Mapping[str, Any]], peer: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(key, name)`` when ``peer`` names a peer already carried on a node both are for, else None."""
    for j, key, i in peer_clashes([*carried, peer], selected=True):
        if j == len(carried):
            return key, str(carried[i]["name"])
    return None


def _timers(doc: Document, peer: dict[str, Any]) -> list[NotCarried]:
    """hold_time and keepalive_time by MetalLB's rule (parseTimers): one given, the other follows (x3, /3)."""
    spec = doc.spec
    hold = seconds(spec["holdTime"], doc.path("spec.holdTime")) if spec.get("holdTime") is not None else None
    keep = (
        seconds(spec["keepaliveTime"], doc.path("spec.keepaliveTime"))
        if spec.get("keepaliveTime") is not None
        else None
    )
    if hold is None and keep is None:
        return []
    if hold is None:
        hold = (keep or 0) * 3
    hold_s = int(hold)
    if 0 < hold_s < 3 or hold_s > 65535:
        raise InputError(doc.path("spec.holdTime"), spec.get("holdTime"), "must be 0 or from 3s to 65535s")
    peer["hold_time"] = hold_s
    if keep is None or not hold_s:
        return []
    if keep > hold:
        raise InputError(doc.path("spec.keepaliveTime"), spec["keepaliveTime"], "must not exceed holdTime")
    if int(keep) < 1:
        return [
            doc.not_carried(
                "spec.keepaliveTime",
                f"{spec['keepaliveTime']}: our keepalive_time is at least 1s; the default, hold_time / 3, is used",
            )
        ]
    peer["keepalive_time"] = int(keep)
    return []


def _bfd_field(profile: Document, key: str, low: int, high: int) -> int:
    return integer(profile.spec.get(key), profile.path(f"spec.{key}"), low, high, BFD_DEFAULTS[key])


def _bfd(profile: Document) -> dict[str, Any]:
    return {
        "enabled": True,
        "min_rx_ms": _bfd_field(profile, "receiveInterval", 10, 60000),
        "min_tx_ms": _bfd_field(profile, "transmitInterval", 10, 60000),
        "multiplier": _bfd_field(profile, "detectMultiplier", 2, 255),
    }


def _bfd_notes(profile: Document, used: bool) -> list[NotCarried]:
    spec, notes = profile.spec, []
    if not used:
        notes.append(profile.not_carried("", "no BGPPeer refers to this profile"))
    if boolean(spec.get("echoMode"), profile.path("spec.echoMode"), False):
        notes.append(profile.not_carried("spec.echoMode", "BFD echo is not supported: asynchronous mode only"))
    if spec.get("echoInterval") is not None:
        notes.append(profile.not_carried("spec.echoInterval", "BFD echo is not supported"))
    if boolean(spec.get("passiveMode"), profile.path("spec.passiveMode"), False):
        notes.append(profile.not_carried("spec.passiveMode", "our BFD always sends first (active)"))
    if spec.get("minimumTtl") is not None:
        notes.append(
            profile.not_carried("spec.minimumTtl", "multi-hop BFD is not supported: single hop checks TTL 255")
        )
    return notes


def _nodes(doc: Document, selectors: list[dict[str, Any]], out: dict[str, Any], everyone: str) -> list[NotCarried]:
    """``nodes`` from hostname selectors into ``out``, else the one note saying what it means."""
    if not selectors or not all(selectors):  # none, or an empty selector: every node
        return []
    for i, selector in enumerate(selectors):
        _parsed_selector(selector, doc.path(f"spec.nodeSelectors[{i}]"))
    names = _node_names(selectors)
    if names is not None:
        out["nodes"] = names
        return []
    return [
        doc.not_carried(
            "spec.nodeSelectors",
            f"selects nodes by labels we do not have (only {HOSTNAME_LABEL} maps to node names): {everyone}; "
            "list the nodes (lb_node_name or inventory names) in nodes",
        )
    ]


def _advertisement(
    doc: Document,
    mode: str,
    *,
    pools: Mapping[str, Document],
    carried_pools: set[str],
    peers: Mapping[str, Document],
    carried_peers: set[str],
    aliases: Mapping[str, str],
) -> tuple[dict[str, Any] | None, list[NotCarried]]:
    spec, notes = doc.spec, []
    ad: dict[str, Any] = {"name": doc.name}
    selected: list[str] = []
    for i, name in enumerate(_strings(spec.get("ipAddressPools"), doc.path("spec.ipAddressPools"))):
        if name not in pools:
            raise InputError(doc.path(f"spec.ipAddressPools[{i}]"), name, "is not an IPAddressPool of the input")
        if name not in carried_pools:
            notes.append(doc.not_carried(f"spec.ipAddressPools[{i}]", f"pool {name} is not carried (see its entry)"))
        elif name not in selected:
            selected.append(name)
    pool_selectors = _selectors(spec.get("ipAddressPoolSelectors"), doc.path("spec.ipAddressPoolSelectors"))
    for i, selector in enumerate(pool_selectors):
        parsed = _parsed_selector(selector, doc.path(f"spec.ipAddressPoolSelectors[{i}]"))
        for name, pool in pools.items():
            matches = parsed is None or parsed.matches(pool.labels)
            if matches and name in carried_pools and name not in selected:
                selected.append(name)
    if spec.get("ipAddressPools") or pool_selectors:
        if not selected:
            # an advertisement without pools would announce every pool: leave it out instead
            return None, [
                *notes,
                doc.not_carried(
                    "spec.ipAddressPoolSelectors" if pool_selectors else "spec.ipAddressPools",
                    "selects no pool that is carried: the advertisement is left out",
                ),
            ]
        ad["pools"] = selected
    notes += _nodes(
        doc,
        _selectors(spec.get("nodeSelectors"), doc.path("spec.nodeSelectors")),
        ad,
        "the pools are announced from every node",
    )
    if _selectors(spec.get("serviceSelectors"), doc.path("spec.serviceSelectors")):
        notes.append(
            doc.not_carried(
                "spec.serviceSelectors",
                "advertisements apply to whole pools: put those services in a pool of their own",
            )
        )
    if mode == "l2":
        interfaces = _strings(spec.get("interfaces"), doc.path("spec.interfaces"))
        if interfaces:
            ad["interfaces"] = interfaces
        if spec.get("preferredNodeSelectors"):
            notes.append(
                doc.not_carried(
                    "spec.preferredNodeSelectors",
                    "no weighted node preference: every candidate node ranks by the hash of node and IP",
                )
            )
        return ad, notes
    wanted_peers = _strings(spec.get("peers"), doc.path("spec.peers"))
    kept_peers = []
    for i, name in enumerate(wanted_peers):
        if name not in peers:
            raise InputError(doc.path(f"spec.peers[{i}]"), name, "is not a BGPPeer of the input")
        if name in carried_peers:
            kept_peers.append(name)
        else:
            notes.append(doc.not_carried(f"spec.peers[{i}]", f"peer {name} is not carried (see its entry)"))
    if wanted_peers and not kept_peers:
        # without peers it would go to every peer: leave it out instead
        return None, [*notes, doc.not_carried("spec.peers", "names no peer that is carried: left out")]
    if kept_peers:
        ad["peers"] = kept_peers
    for key, ours in (("aggregationLength", "aggregation_length"), ("aggregationLengthV6", "aggregation_length_v6")):
        if spec.get(key) is not None:
            ad[ours] = spec[key]
    if spec.get("localPref"):  # 0 is MetalLB's "unset"
        ad["local_pref"] = spec["localPref"]
    for i, value in enumerate(_strings(spec.get("communities"), doc.path("spec.communities"))):
        where = doc.path(f"spec.communities[{i}]")
        if value in aliases:
            key, text = _community(aliases[value], where)
        else:
            try:
                key, text = _community(value, where)
            except InputError:
                raise InputError(
                    where, value, "is neither a community (ASN:VALUE or large:G:L1:L2) nor an alias of a Community"
                ) from None
        if text not in ad.setdefault(key, []):
            ad[key].append(text)
    return ad, notes


# -- the whole translation ---------------------------------------------------------------------


def translate(documents: Iterable[tuple[str, object]]) -> Migration:
    """The ``lb_*`` variables for MetalLB's objects, and every field not carried over.

    ``documents`` are ``(source, object)`` pairs, ``source`` naming where the
    object was read (it prefixes every error). Raises InputError on input
    MetalLB would refuse.
    """
    docs, notes = read_documents(documents)
    by_kind: dict[str, list[Document]] = {kind: [] for kind in VERSIONS}
    for doc in docs:
        if any(other.name == doc.name for other in by_kind[doc.kind]):
            raise InputError(doc.path("metadata.name"), doc.name, f"another {doc.kind} has this name")
        by_kind[doc.kind].append(doc)
    aliases = _community_aliases(by_kind["Community"])
    profiles = {doc.name: doc for doc in by_kind["BFDProfile"]}

    pools: list[dict[str, Any]] = []
    parsed: list[Pool] = []
    for doc in by_kind["IPAddressPool"]:
        pool, pool_notes = _pool(doc)
        notes += pool_notes
        try:
            checked = parse_pool(pool, "pool")
        except InputError as exc:
            notes.append(_refused(doc, exc, "pool."))
            continue
        overlap = find_overlap(checked, parsed)
        if overlap is not None:
            mine, other, theirs = overlap
            notes.append(
                doc.not_carried(
                    "spec.addresses", f"refused: {overlap_message(doc.name, mine.text, other.name, theirs.text)}"
                )
            )
            continue
        pools.append(pool)
        parsed.append(checked)

    peers: list[dict[str, Any]] = []
    bgp_asn: int | None = None
    used_profiles: set[str] = set()
    for doc in by_kind["BGPPeer"]:
        peer, my_asn, peer_notes = _peer(doc, profiles, bgp_asn)
        notes += peer_notes
        if peer is not None and (clash := _clashing(peers, peer)):
            key, holder = clash
            notes.append(
                doc.not_carried(
                    "spec.peerAddress" if key in peer_keys({"address": peer["address"]}) else "metadata.name",
                    f"refused: {key!r} also names BGPPeer {holder!r}, and some node would use both "
                    "(a name or an address is one peer on a node; only kubernetes.io/hostname selectors keep "
                    "two racks apart): the peer is left out",
                )
            )
            peer = None
        if peer is not None:
            bgp_asn = my_asn if bgp_asn is None else bgp_asn
            peers.append(peer)
            if doc.spec.get("bfdProfile"):
                used_profiles.add(doc.spec["bfdProfile"])
    for doc in by_kind["BFDProfile"]:
        notes += _bfd_notes(doc, doc.name in used_profiles)

    pool_docs = {doc.name: doc for doc in by_kind["IPAddressPool"]}
    peer_docs = {doc.name: doc for doc in by_kind["BGPPeer"]}
    carried_pools = {p["name"] for p in pools}
    carried_peers = {p["name"] for p in peers}
    advertisements: dict[str, list[dict[str, Any]]] = {"l2": [], "bgp": []}
    for mode, kind in (("l2", "L2Advertisement"), ("bgp", "BGPAdvertisement")):
        for doc in by_kind[kind]:
            ad, ad_notes = _advertisement(
                doc,
                mode,
                pools=pool_docs,
                carried_pools=carried_pools,
                peers=peer_docs,
                carried_peers=carried_peers,
                aliases=aliases,
            )
            notes += ad_notes
            if ad is None:
                continue
            try:
                parse_advertisement(ad, mode, len(advertisements[mode]))
            except InputError as exc:
                notes.append(_refused(doc, exc, f"{mode}_advertisements[{len(advertisements[mode])}]."))
                continue
            advertisements[mode].append(ad)

    inventory: dict[str, Any] = {
        "lb_pools": pools,
        "lb_l2_advertisements": advertisements["l2"],
        "lb_bgp_advertisements": advertisements["bgp"],
        "lb_bgp_peers": peers,
    }
    if bgp_asn is not None:
        inventory["lb_bgp_asn"] = bgp_asn
    problems = data_model_errors(peers, advertisements["l2"], advertisements["bgp"], pools)
    if problems:  # the checks above should have caught each of these; never hand out what site.yml refuses
        raise InputError("lb_*", None, "; ".join(problems))
    return Migration(inventory, notes)


def _refused(doc: Document, exc: InputError, prefix: str) -> NotCarried:
    """An object our rules refuse, with the field in MetalLB's spelling."""
    ours = exc.field[len(prefix) :] if exc.field.startswith(prefix) else exc.field
    return doc.not_carried(_metallb_field(ours), f"refused by baremetal.lb's rules: {exc.message} (got {exc.value!r})")


def group_vars_text(migration: Migration, sources: Sequence[str]) -> str:
    """The inventory as a group_vars YAML file, with what was not carried as comments at the top.

    The same input gives the same text (no timestamps), so writing it is idempotent.
    Needs PyYAML (``manifest.HAS_YAML``), as Ansible itself does.
    """
    lines = [
        "---",
        "# lb_* variables from MetalLB's configuration: written by baremetal.lb.metallb_import, which",
        "# overwrites this file; see docs/kubernetes.md, 'Moving from MetalLB'.",
        *(f"# from: {source}" for source in sources),
    ]
    if migration.not_carried:
        lines.append("# Not carried over (fix by hand where it matters):")
        for note in migration.not_carried:
            where = f"{note.kind}/{note.name}" + (f" {note.field}" if note.field else "")
            lines.append(f"#   {where}: {note.reason}")
    else:
        lines.append("# Every field was carried over.")
    return "\n".join(lines) + "\n" + plain_yaml(migration.inventory)
