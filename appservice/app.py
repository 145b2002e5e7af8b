"""The aiohttp application: the bridge's routes over the objects `wiring` builds at start-up.

Start-up and shutdown are one `cleanup_ctx` step around `start_bridge`, whose exit stack
undoes, in reverse, whatever was opened, even after a failure half-way. `BridgeServer` runs the
app on a TCP port; the CLI, the demo and the tests all use it, so they exercise the same wiring.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from appservice.http import call_page
from appservice.http.health import ready_response
from appservice.openapi import openapi_document
from appservice.settings import Settings
from appservice.wiring import Bridge, Options, start_bridge

log = logging.getLogger(__name__)

# The one thing start-up puts on the app: the running bridge, read by routes and tests.
BRIDGE = web.AppKey("bridge", Bridge)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(settings: Settings, options: Options | None = None) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def bridge(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app[BRIDGE] = await start_bridge(settings, options or Options(), stack)
            yield

    app.cleanup_ctx.append(bridge)
    app[call_page.BRANDING] = settings.call_page
    add_routes(app)
    return app


def add_routes(app: web.Application) -> None:
    """The bridge's HTTP API, served by the `Bridge` that start-up puts on `app[BRIDGE]`."""
    # Handlers are looked up per request: the objects exist only once start-up has run.
    routes = app.router
    routes.add_put(
        "/_matrix/app/v1/transactions/{txn_id}",
        _late(
            lambda bridge: bridge.metrics.time_route(
                bridge.metrics.transaction_seconds, bridge.transactions.put_transaction
            )
        ),
    )
    routes.add_post("/_matrix/app/v1/ping", _late(lambda bridge: bridge.transactions.ping))
    routes.add_get(
        "/_matrix/app/v1/users/{user_id}", _late(lambda bridge: bridge.transactions.query_user)
    )
    routes.add_get(
        "/_matrix/app/v1/rooms/{alias}", _late(lambda bridge: bridge.transactions.query_room)
    )
    routes.add_get("/m/{slug}", _late(lambda bridge: bridge.join_page.show))
    routes.add_post("/m/{slug}", _late(lambda bridge: bridge.join_page.join))
    routes.add_post(
        "/livekit/webhook",
        _late(
            lambda bridge: bridge.metrics.time_route(
                bridge.metrics.webhook_seconds, bridge.webhooks.receive
            )
        ),
    )
    routes.add_post("/api/token", _late(lambda bridge: bridge.token_api.issue))
    routes.add_get(
        "/widget/{slug}",
        _late(_widget),
    )
    # The built-in call page's script, stylesheet, fonts and artwork (callpage/, built).
    routes.add_get(call_page.ASSETS_PREFIX + "{name}", call_page.ASSETS.serve)
    routes.add_get("/api/lobby/{request_id}", _late(lambda bridge: bridge.join_page.lobby_status))
    routes.add_get("/health", _health)
    routes.add_get("/ready", _ready)
    routes.add_get("/api/openapi.json", _openapi)


def _widget(bridge: Bridge) -> Handler:
    """The widget page, told whether the built-in call page is the front end."""
    return functools.partial(bridge.widget_page.show, join_page=bridge.join_page)


def _late(pick: Callable[[Bridge], Handler]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await pick(request.app[BRIDGE])(request)

    return handler


async def _health(request: web.Request) -> web.Response:
    """Alive: the process answers. The inbox count is informative; a database that does not
    answer is /ready's business, so it shows as null here rather than failing the probe."""
    try:
        pending: int | None = await request.app[BRIDGE].inbox.pending_count()
    except Exception as err:
        log.warning("/health could not count the inbox: %r", err)
        pending = None
    return web.json_response({"status": "ok", "inbox_pending": pending})


async def _ready(request: web.Request) -> web.Response:
    """Ready: database, homeserver and LiveKit answer (503 with each reason when not)."""
    return await ready_response(request.app[BRIDGE].readiness)


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


class BridgeServer:
    """The bridge on a TCP port: start, stop, and access to the running app for tests."""

    def __init__(self, settings: Settings, options: Options | None = None) -> None:
        self.settings = settings
        self.app = build_app(settings, options)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.settings.appservice.hostname, self.settings.appservice.port
        )
        await site.start()
        log.info(
            "visio-bridge listening on %s:%d as %s",
            self.settings.appservice.hostname,
            self.settings.appservice.port,
            self.settings.bot_mxid,
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BridgeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
