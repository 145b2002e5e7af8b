"""Shared fixtures: databases (PostgreSQL and SQLite), LiveKit, the fast tier and a full stack.

`fast` is the inner loop: every feature wired as in production over a recording Matrix fake
(`tests/fast.py`), no homeserver, nothing that sleeps. The full stack is real Synapse (started
per test, ~2 s) with the bridge registered, the bridge itself on a TCP port, and LiveKit;
matrix-nio plays the human user. `live_stack` runs the real livekit-server (with webhooks to
the bridge and the bridge's real rtc participant); `stack` keeps the double, for what the
server cannot do here (egress, injected faults).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import network_audit
from fast import FastBridge
from harness import DatabaseTarget, Stack
from live_calls import running_live_stack
from livekit_double import LiveKitDouble

network_audit.install()


@pytest.fixture(autouse=True)
def nothing_leaves_this_machine() -> Iterator[None]:
    """Fail the test during which anything looked up or connected beyond this machine."""
    network_audit.reached.clear()
    yield
    assert network_audit.reached == [], "reached beyond this machine"


POSTGRES_DSN = os.environ.get("VISIO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseTarget]:
    """A fresh, empty database: a SQLite file, or a throwaway schema on the local PostgreSQL."""
    if request.param == "sqlite":
        yield DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {})
        return
    async with _postgres_schema() as target:
        yield target


@pytest.fixture
async def postgres() -> AsyncIterator[DatabaseTarget]:
    """A throwaway schema on the local PostgreSQL, for what only PostgreSQL does (call-workers)."""
    async with _postgres_schema() as target:
        yield target


@contextlib.asynccontextmanager
async def _postgres_schema() -> AsyncIterator[DatabaseTarget]:
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
async def fast(
    request: pytest.FixtureRequest, tmp_path: Path, livekit: LiveKitDouble
) -> AsyncIterator[FastBridge]:
    """The bridge's features over the Matrix fake, SQLite and the LiveKit double (no homeserver).

    An indirect parameter adds bridge config overrides."""
    async with FastBridge(
        tmp_path, livekit, config_overrides=getattr(request, "param", None)
    ) as bridge:
        yield bridge


@pytest.fixture
async def stack(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[Stack]:
    async with Stack(tmp_path, livekit) as running:
        yield running


@pytest.fixture
async def live_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """`running_live_stack`; an indirect parameter adds bridge config overrides."""
    async with running_live_stack(tmp_path, getattr(request, "param", None)) as running:
        yield running
