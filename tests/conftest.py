"""Shared fixtures: databases (PostgreSQL and SQLite), LiveKit, and a full stack.

The full stack is real Synapse (started per test, ~2 s) with the bridge registered, the bridge
itself on a TCP port, and LiveKit; matrix-nio plays the human user. `live_stack` runs the real
livekit-server (with webhooks to the bridge and the bridge's real rtc participant); `stack`
keeps the double, for what the server cannot do here (egress, injected faults).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from call_people import leave_everyone
from harness import DatabaseTarget, Stack, free_port
from livekit_double import LiveKitDouble

from appservice.locallivekit import LocalLiveKit, find_livekit_server

POSTGRES_DSN = os.environ.get("VISIO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseTarget]:
    """A fresh, empty database: a SQLite file, or a throwaway schema on the local PostgreSQL."""
    if request.param == "sqlite":
        yield DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {})
        return
    schema = f"visio_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield DatabaseTarget(POSTGRES_DSN, {"server_settings": {"search_path": schema}})
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def livekit() -> AsyncIterator[LiveKitDouble]:
    async with LiveKitDouble() as double:
        yield double


@pytest.fixture
async def stack(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[Stack]:
    async with Stack(tmp_path, livekit) as running:
        yield running


def require_livekit_server() -> None:
    """Skip without livekit-server, except in CI, where a missing server is a failure."""
    if find_livekit_server() is None:
        reason = "livekit-server is not built: bash .ci/install-livekit.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
async def livekit_server(tmp_path: Path) -> AsyncIterator[LocalLiveKit]:
    """A real livekit-server on loopback, with webhooks to the bridge port it is handed."""
    require_livekit_server()
    async with LocalLiveKit(tmp_path / "livekit") as server:
        yield server


@pytest.fixture
async def live_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """Synapse + bridge + the real livekit-server, whose webhooks reach the bridge.

    Rooms close one second after the last person leaves (not 20), so that tests see the end
    of a call quickly; an indirect parameter adds bridge config overrides.
    """
    require_livekit_server()
    overrides = {"livekit": {"room": {"departure_timeout": 1}}}
    for key, value in getattr(request, "param", {}).items():
        overrides[key] = {**overrides.get(key, {}), **value}
    bridge_port = free_port()
    server = LocalLiveKit(
        tmp_path / "livekit",
        webhook_urls=[f"http://127.0.0.1:{bridge_port}/livekit/webhook"],
    )
    stack = Stack(tmp_path, server, bridge_port=bridge_port, config_overrides=overrides)
    async with server, stack as running:
        try:
            yield running
        finally:
            await leave_everyone()
