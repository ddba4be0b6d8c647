# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Limits both sides enforce: the playbook before anything is touched, the speaker when it loads its config.

Part of the core (``lbspeaker.core`` in the speaker's wheel); names are
checked by :mod:`.names`.
"""

from __future__ import annotations

# The membership heartbeat's HMAC key: at least 256 bits.
MIN_SECRET_BYTES = 32
# TCP-MD5 (RFC 2385) keys, as Linux takes them (TCP_MD5SIG_MAXKEYLEN).
BGP_PASSWORD_BYTES = (1, 80)


def secret_problem(secret: bytes) -> str | None:
    """Why ``secret`` cannot be the membership secret, or None."""
    if len(secret) < MIN_SECRET_BYTES:
        return f"must be at least {MIN_SECRET_BYTES} bytes (got {len(secret)})"
    return None


def password_problem(password: object) -> str | None:
    """Why ``password`` cannot be a BGP (TCP-MD5) password, or None. Never shows the password."""
    low, high = BGP_PASSWORD_BYTES
    if not isinstance(password, str) or not low <= len(password.encode()) <= high:
        return f"must be a string of {low} to {high} bytes (TCP-MD5)"
    return None
