"""What this node tells the cluster it announces, and the calls that bring the cluster's record there.

Pure: from the controllers' decisions (``l2`` rows, ``bgp`` decisions) and the
desired state, :func:`wanted_reports` says, per Kubernetes Service
(``namespace/name``), which of its addresses this node announces now, by
which mode and why; :func:`report_calls` turns the difference between what
is written and what is wanted into the ``sources.announcing`` reporter's
calls, in an order that keeps each Service's record right at every step.
Only services a cluster source gave (``DesiredServices.cluster_services``)
are reported: the config file's services have no Service to write to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ..desired import DesiredServices
from .bgp import BgpDecision
from .l2 import L2Announcement, record_reason

# Why a BGP node advertises: the policy's rule, without the session count (that is /status's business),
# so that a peer going up or down does not rewrite every Service's record.
BGP_REASONS = {
    "Local": "Local: serving endpoint on this node",
    "Cluster": "Cluster: every eligible node announces",
}

# Service key -> address (text) -> (mode, reason)
Reports = Mapping[str, Mapping[str, tuple[str, str]]]


@dataclass(frozen=True)
class ReportCall:
    """One call of the reporter: ``announce`` (``ip``, ``mode``, ``reason`` set), ``withdraw`` (``ip`` set)
    or ``forget`` (the Service left the desired state: its record is dropped)."""

    kind: Literal["announce", "withdraw", "forget"]
    key: str
    ip: str = ""
    mode: str = ""
    reason: str = ""


def wanted_reports(
    desired: DesiredServices, l2_rows: Iterable[L2Announcement], bgp: Iterable[BgpDecision]
) -> dict[str, dict[str, tuple[str, str]]]:
    """Per cluster Service in ``desired``, the addresses this node announces: L2 where it is the elected
    announcer and carried the take out, BGP where it hands the route to its BGP speaker. The reasons are
    the policies' (``l2.RECORD_REASONS``, ``BGP_REASONS``), which do not change with the other nodes.

    Every cluster Service of ``desired`` has an entry, empty when this node announces none of its
    addresses: the entry says the Service is still wanted (its stale addresses are withdrawn, not forgotten).
    """
    out: dict[str, dict[str, tuple[str, str]]] = {key: {} for key in desired.cluster_services.values()}
    by_name = {s.name: s for s in desired.services}
    for row in l2_rows:
        if not row.announcing:
            continue
        # the policy's reason, not the row's (that one names the candidates: /status's business)
        reason = record_reason(by_name[n] for n in row.services if n in by_name)
        for name in row.services:
            key = desired.cluster_services.get(name)
            if key is not None:
                out[key][str(row.address)] = ("l2", reason)
    for d in bgp:
        key = desired.cluster_services.get(d.service)
        if key is not None and d.advertise:
            out[key][str(d.address)] = ("bgp", BGP_REASONS.get(d.policy, d.policy))
    return out


def report_calls(written: Reports, wanted: Reports) -> list[ReportCall]:
    """The calls that turn ``written`` (what the cluster holds from this node) into ``wanted``.

    Per Service, in key order: withdrawals first (an address moving between modes is never shown twice),
    then announcements of new or changed addresses (mode or reason), in address order; a Service no
    longer wanted has what it holds withdrawn (it may still exist, just no longer be ours) and is then
    forgotten.
    """
    calls: list[ReportCall] = []
    for key in sorted(set(written) | set(wanted)):
        have = written.get(key, {})
        if key not in wanted:
            calls.extend(ReportCall("withdraw", key, ip) for ip in sorted(have))
            calls.append(ReportCall("forget", key))
            continue
        want = wanted[key]
        calls.extend(ReportCall("withdraw", key, ip) for ip in sorted(have) if ip not in want)
        calls.extend(
            ReportCall("announce", key, ip, mode, reason)
            for ip, (mode, reason) in sorted(want.items())
            if have.get(ip) != (mode, reason)
        )
    return calls


def apply_call(written: dict[str, dict[str, tuple[str, str]]], call: ReportCall) -> None:
    """Record in ``written`` that ``call`` succeeded."""
    if call.kind == "forget":
        written.pop(call.key, None)
    elif call.kind == "withdraw":
        written.get(call.key, {}).pop(call.ip, None)
    else:
        written.setdefault(call.key, {})[call.ip] = (call.mode, call.reason)
