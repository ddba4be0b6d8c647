"""Errors shared across the speaker."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid.

    ``field`` is the dotted path of the offending value in the config file
    (for example ``services[2].addresses[0]``), so the operator can find it.
    """

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: {message} (got {value!r})")
