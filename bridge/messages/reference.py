"""Reference numbers that tie a message shown to a user to the log line with the cause."""

from __future__ import annotations

import secrets

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: people read these aloud


def new_reference() -> str:
    return "VB-" + "".join(secrets.choice(_ALPHABET) for _ in range(6))
