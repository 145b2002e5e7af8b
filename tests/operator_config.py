"""An operator's config that passes every check, and a clean environment to read it in.

Shared by the tests of the command line and of `check-config`. Importing `clean_environment`
into a test module makes it apply there (it is an autouse fixture).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

CONFIG: dict[str, Any] = {
    "homeserver": {"address": "https://matrix.ministere.test", "domain": "ministere.test"},
    "appservice": {"address": "http://bridge.internal:29340"},
    "public_url": "https://visio.ministere.test",
    "livekit": {
        "url": "wss://livekit.ministere.test",
        "api_key": "APIkey",
        "api_secret": "a-long-random-secret-of-40-characters-xx",
        "frontend_url": "https://visio.ministere.test/call?url={livekit_url}&token={token}",
    },
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads VISIO_BRIDGE_* variables; the shell running the tests must not leak in."""
    for name in list(os.environ):
        if name.startswith("VISIO_BRIDGE_"):
            monkeypatch.delenv(name)
