# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors raised by the control-plane core.

Every input error names the offending field by its path in the task's
arguments (for example ``services[3].ports[0].protocol``) and the value found,
so that a user can find the line to fix without reading a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A value given by the user is invalid."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: {message} (got {value!r})")


class AllocationError(Exception):
    """A service cannot get (or keep) the addresses it asks for.

    The message is meant for the operator: it says which rule refused and,
    where another service is involved, which one.
    """


class LedgerError(Exception):
    """The ledger cannot be opened or used."""
