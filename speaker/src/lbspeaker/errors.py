"""Errors shared across the speaker.

The speaker's configuration errors are the core's :class:`InputError`: the
same type, fields and message form on both sides (``services[2].ports[0].port:
must be ... (got ...)``), whether the core's parsers or the speaker's own
raise them.
"""

from __future__ import annotations

from .core.errors import InputError as ConfigError

__all__ = ["ConfigError"]
