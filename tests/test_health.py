"""`/health` (alive) and `/ready` (database, homeserver and LiveKit answer, or why not)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fast import FastBridge
from livekit_double import LiveKitDouble

from appservice.http.health import HomeserverProbe, NotReady, Readiness
from appservice.local.ports import free_port


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


@pytest.fixture
async def homeserver() -> AsyncIterator[str]:
    """A loopback stand-in for the homeserver's unauthenticated /versions."""

    async def versions(request: web.Request) -> web.Response:
        return web.json_response({"versions": ["v1.11"]})

    app = web.Application()
    app.router.add_get("/_matrix/client/versions", versions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_health_says_alive_with_the_inbox_count(fast: FastBridge) -> None:
    status, body = await get(f"{fast.base_url}/health")
    assert status == 200
    assert body == {"status": "ok", "inbox_pending": 0}


async def test_ready_when_everything_answers(
    tmp_path: Path, livekit: LiveKitDouble, homeserver: str
) -> None:
    overrides = {"homeserver": {"address": homeserver}}
    async with FastBridge(tmp_path, livekit, config_overrides=overrides) as bridge:
        status, body = await get(f"{bridge.base_url}/ready")
    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "homeserver": "ok", "livekit": "ok"},
    }


async def test_not_ready_when_the_homeserver_is_down(fast: FastBridge) -> None:
    # The fast tier's homeserver address is port 1 on loopback: nothing listens there.
    status, body = await get(f"{fast.base_url}/ready")
    assert status == 503
    assert body["status"] == "not ready"
    checks = body["checks"]
    assert checks["database"] == "ok"
    assert checks["livekit"] == "ok"
    assert checks["homeserver"].startswith("http://127.0.0.1:1/_matrix/client/versions unreachable")


async def test_not_ready_when_livekit_refuses_the_bridge(
    tmp_path: Path, livekit: LiveKitDouble, homeserver: str
) -> None:
    overrides = {"homeserver": {"address": homeserver}}
    async with FastBridge(tmp_path, livekit, config_overrides=overrides) as bridge:
        livekit.fail_next("ListRooms", status=401, code="unauthenticated", msg="bad key")
        status, body = await get(f"{bridge.base_url}/ready")
    assert status == 503
    assert body["checks"]["homeserver"] == "ok"
    assert body["checks"]["livekit"].startswith("LiveKit refused the call")


async def test_a_server_that_is_not_a_homeserver_is_named(tmp_path: Path) -> None:
    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502)

    app = web.Application()
    app.router.add_get("/_matrix/client/versions", bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    probe = HomeserverProbe(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(NotReady, match="answered HTTP 502"):
            await probe()
    finally:
        await probe.close()
        await runner.cleanup()


async def test_each_check_is_bounded_and_a_failure_never_escapes() -> None:
    async def hangs() -> None:
        await asyncio.sleep(60)

    async def breaks() -> None:
        raise RuntimeError("database is locked")

    async def fine() -> None:
        return None

    readiness = Readiness({"database": breaks, "homeserver": hangs, "livekit": fine}, 0.05)
    assert await readiness.reasons() == {
        "database": "check failed: RuntimeError",
        "homeserver": "no answer within 0.05 s",
        "livekit": "ok",
    }
