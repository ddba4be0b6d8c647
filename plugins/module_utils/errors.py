# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors raised by the control-plane core.

Every input error names the offending field by its path in the task's
arguments (for example ``services[3].ports[0].protocol``) and the value found,
so that a user can find the line to fix without reading a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any


class InputError(ValueError):
    """A value given by the user is invalid."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: {message} (got {value!r})")


def refuse_unknown_keys(data: Mapping[Any, object], known: Collection[str], field: str) -> None:
    """Raise InputError for the first key of ``data`` (a user's mapping) not in ``known``.

    A misspelt option must not pass silently as if it had been left out: the
    error names the key by its path, suggests the closest known key and lists
    them all.
    """
    if isinstance(known, frozenset | set) and data.keys() <= known:  # the common case, in C
        return
    unknown = sorted((key for key in data if key not in known), key=str)
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InputError(
        f"{field}.{key}" if field else str(key),
        data[key],
        f"unknown key {key!r}{hint}; known keys: {', '.join(sorted(known))}",
    )


# Why an allocation failed, in words a metric label can carry (the message says the rest):
# pool_exhausted: the pools that may serve the service have no free address of a family it needs;
# no_pool: no pool exists that could serve it (none defined, or its address_pool is unknown);
# not_allowed: a pool's rules refuse it (service_allocation, auto_assign, families, a requested
# address outside its pool or split across pools, avoid_buggy_ips);
# sharing_conflict: a requested address is held by a service it may not share with.
ALLOCATION_FAILURE_REASONS = ("pool_exhausted", "no_pool", "not_allowed", "sharing_conflict")


class AllocationError(Exception):
    """A service cannot get (or keep) the addresses it asks for.

    The message is meant for the operator: it says which rule refused and,
    where another service is involved, which one. ``reason`` is one of
    ``ALLOCATION_FAILURE_REASONS``, for counting; ``holder``, for a
    sharing conflict, is the key of the service that holds the address.
    """

    def __init__(self, message: str, reason: str, holder: str | None = None) -> None:
        if reason not in ALLOCATION_FAILURE_REASONS:
            raise ValueError(f"allocation failure reason must be one of {ALLOCATION_FAILURE_REASONS}, got {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.holder = holder


class LedgerError(Exception):
    """The ledger cannot be opened or used."""
