# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The field readers: one rule, and one wording, for each kind of value a user writes.

Every parser of user input (the modules' options, the inventory, the speaker's
and the controller's configuration files) reads its integers, booleans,
strings, mappings and lists through these, so that a bad value is refused with
the same words wherever it is written::

    membership.port: must be an integer from 1 to 65535 (got 'x')
    bgp.peers[0].multihop: must be true or false (got 'yes')
    lease.name: must be a non-empty string (got '')
    status: must be a mapping (got [])
    bgp.peers: must be a list (got 'tor')
    bgp.asn: is required (got None)

``None`` (a key left out, or written with no value in YAML) is "not given":
the reader returns ``default`` when there is one, and otherwise refuses with
"is required". Unknown keys in a mapping are refused by
:func:`~.errors.refuse_unknown_keys`, with its did-you-mean hint.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar, cast

from .errors import InputError, refuse_unknown_keys

REQUIRED = "is required"

T = TypeVar("T")


def _read(value: object, field: str, default: T | None, good: Callable[[Any], bool], message: str) -> T:
    """``value`` if it is ``good``; None is ``default``, or refused as required when there is none."""
    if value is None:
        if default is None:
            raise InputError(field, value, REQUIRED)
        return default
    if not good(value):
        raise InputError(field, value, message)
    return cast(T, value)


def integer(value: object, field: str, low: int, high: int, default: int | None = None) -> int:
    """A whole number from ``low`` to ``high`` (a boolean is not one)."""
    return _read(
        value,
        field,
        default,
        lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
        f"must be an integer from {low} to {high}",
    )


def boolean(value: object, field: str, default: bool | None = None) -> bool:
    """``true`` or ``false``, nothing that merely looks like one (``"yes"``, ``1``)."""
    return _read(value, field, default, lambda v: isinstance(v, bool), "must be true or false")


def text(value: object, field: str, default: str | None = None) -> str:
    """A string that is not empty or only spaces, returned as written."""
    return _read(value, field, default, lambda v: isinstance(v, str) and bool(v.strip()), "must be a non-empty string")


def mapping(
    value: object, field: str, known: Collection[str] | None = None, default: Mapping[str, Any] | None = None
) -> Mapping[str, Any]:
    """A mapping, whose keys must all be in ``known`` when that is given."""
    if value is None and default is not None:
        return default
    if not isinstance(value, Mapping):
        raise InputError(field, value, "must be a mapping")
    if known is not None:
        refuse_unknown_keys(value, known, field)
    return value


def sequence(value: object, field: str) -> list[Any]:
    """A list (a YAML sequence); ``None`` is the empty list."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InputError(field, value, "must be a list")
    return list(value)
