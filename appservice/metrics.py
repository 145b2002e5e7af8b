"""Prometheus metrics, measured at the edge: `bridge/` knows nothing of them.

Counters and histograms are fed by thin wrappers that `wiring` puts around what the bridge
already has (the commands, the inbox's event handler, the LiveKit and Matrix ports) and by
`app.add_routes` around the transaction and webhook routes. Gauges that describe stored state
(live meetings, inbox depth and age, jobs) are read from the database at each scrape.

Each bridge has its own registry, so tests (and two bridges in one process) never share counts.
The listener (`metrics.enabled`, loopback by default) is separate from the public one: put it
behind nothing, scrape it from the host.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from bridge.commands import Command, CommandContext, VisioCommands
from bridge.ports import BotLacksPower, Database, LiveKitError

log = logging.getLogger(__name__)

T = TypeVar("T")
EventHandler = Callable[[Mapping[str, Any]], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Webhooks and transactions are answered in milliseconds; an inbox event may call LiveKit and
# the homeserver several times.
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_EVENT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_STATES = ("queued", "running", "done", "failed")


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "visio_bridge_commands", "!visio commands handled, by action", ["action"], registry=r
        )
        self.meetings_live = Gauge(
            "visio_bridge_meetings_live", "Meetings open now (requested or live)", registry=r
        )
        self.webhook_seconds = Histogram(
            "visio_bridge_webhook_seconds",
            "Time to answer a LiveKit webhook, by HTTP status",
            ["status"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.transaction_seconds = Histogram(
            "visio_bridge_transaction_seconds",
            "Time to store and acknowledge a homeserver transaction, by HTTP status",
            ["status"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.event_seconds = Histogram(
            "visio_bridge_inbox_event_seconds",
            "Time to handle one inbox event, by outcome (ok or error: retried later)",
            ["outcome"],
            buckets=_EVENT_BUCKETS,
            registry=r,
        )
        self.inbox_pending = Gauge(
            "visio_bridge_inbox_pending", "Matrix events stored, not handled yet", registry=r
        )
        self.inbox_oldest_age = Gauge(
            "visio_bridge_inbox_oldest_pending_age_seconds",
            "Age of the oldest event not handled yet (0 when none)",
            registry=r,
        )
        self.jobs = Gauge(
            "visio_bridge_jobs", "Background jobs (transcripts), by kind and state",
            ["kind", "state"], registry=r,
        )  # fmt: skip
        self.livekit_errors = Counter(
            "visio_bridge_livekit_errors",
            "Failed LiveKit server calls, by operation and reason (unreachable or error)",
            ["operation", "reason"],
            registry=r,
        )
        self.homeserver_errors = Counter(
            "visio_bridge_homeserver_errors",
            "Failed homeserver calls, by operation and reason (unreachable or error)",
            ["operation", "reason"],
            registry=r,
        )

    async def refresh(self, db: Database, now_ms: int) -> None:
        """Read the gauges that describe stored state; called at each scrape."""
        self.meetings_live.set(
            await db.fetchval("SELECT COUNT(*) FROM meetings WHERE state IN ('requested', 'live')")
        )
        row = await db.fetchrow(
            "SELECT COUNT(*) AS pending, MIN(received_at) AS oldest FROM inbox "
            "WHERE state='pending'"
        )
        pending = int(row["pending"]) if row is not None else 0
        oldest = row["oldest"] if row is not None else None
        self.inbox_pending.set(pending)
        self.inbox_oldest_age.set(max(0.0, (now_ms - oldest) / 1000) if oldest else 0.0)
        rows = await db.fetch("SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state")
        self.jobs.clear()
        for job in rows:
            self.jobs.labels(job["kind"], job["state"]).set(job["n"])

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- wrappers ---------------------------------------------------------------------------

    def count_commands(self, commands: VisioCommands) -> VisioCommands:
        return cast(VisioCommands, _CountedCommands(commands, self.commands))

    def time_events(self, handler: EventHandler) -> EventHandler:
        """The inbox's handler, timed, with the event's room and id in its log lines."""
        from appservice.logs import log_context

        async def handle(event: Mapping[str, Any]) -> None:
            room, event_id = event.get("room_id"), event.get("event_id")
            started = time.perf_counter()
            outcome = "error"
            try:
                with log_context(
                    room=room if isinstance(room, str) else None,
                    event=event_id if isinstance(event_id, str) else None,
                ):
                    await handler(event)
                outcome = "ok"
            finally:
                self.event_seconds.labels(outcome).observe(time.perf_counter() - started)

        return handle

    def time_route(self, histogram: Histogram, handler: Handler) -> Handler:
        async def timed(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as err:
                status = err.status
                raise
            finally:
                histogram.labels(str(status)).observe(time.perf_counter() - started)

        return timed

    def count_livekit_errors(self, livekit: T) -> T:
        def reason(err: Exception) -> str | None:
            if isinstance(err, LiveKitError):
                return "unreachable" if err.unreachable else "error"
            return None

        return cast(T, _ErrorCounting(livekit, self.livekit_errors, reason))

    def count_homeserver_errors(self, matrix: T) -> T:
        from bridge.ports import MatrixUnavailable

        def reason(err: Exception) -> str | None:
            if isinstance(err, MatrixUnavailable):
                return "unreachable"
            if isinstance(err, BotLacksPower):
                return None  # the room's settings, not the homeserver
            return "error"

        return cast(T, _ErrorCounting(matrix, self.homeserver_errors, reason))


class _CountedCommands:
    def __init__(self, commands: VisioCommands, counter: Counter) -> None:
        self._commands = commands
        self._counter = counter

    async def run(self, ctx: CommandContext, command: Command) -> None:
        self._counter.labels(str(command.action.value)).inc()
        await self._commands.run(ctx, command)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._commands, name)


class _ErrorCounting:
    """Passes every call on to `target`; counts the exceptions `reason` names, and re-raises."""

    def __init__(
        self, target: object, counter: Counter, reason: Callable[[Exception], str | None]
    ) -> None:
        self._target = target
        self._counter = counter
        self._reason = reason

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return await attribute(*args, **kwargs)
            except Exception as err:
                if (why := self._reason(err)) is not None:
                    self._counter.labels(name, why).inc()
                raise

        return counted


def metrics_app(metrics: BridgeMetrics, db: Database, now_ms: Callable[[], int]) -> web.Application:
    """The metrics listener's application: `GET /metrics` only."""

    async def serve(request: web.Request) -> web.Response:
        try:
            await metrics.refresh(db, now_ms())
        except Exception as err:  # the counters are still worth serving
            log.warning("Could not read the database for /metrics: %r", err)
        response = web.Response(body=metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app


@contextlib.asynccontextmanager
async def serve_metrics(app: web.Application, hostname: str, port: int) -> AsyncIterator[None]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, hostname, port).start()
        log.info("Prometheus metrics on http://%s:%d/metrics", hostname, port)
        yield
    finally:
        await runner.cleanup()
