"""The bridge's background loops: each runs until shutdown cancels it, and survives failures.

Failures are logged and retried on the next pass: a homeserver or LiveKit that is down must
never stop the loop that will notice it came back.
"""

from __future__ import annotations

import asyncio
import errno
import logging

import aiohttp
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixError

from bridge.calls.agent import CallAgent
from bridge.livekit import LiveKitAdapter
from bridge.lobby.desk import LobbyDesk
from bridge.meetings.lifecycle import MeetingLifecycle
from bridge.ports import LiveKitError
from bridge.retention import Retention
from bridge.status.publisher import StatusPublisher

log = logging.getLogger(__name__)


def why_unreachable(err: BaseException) -> str:
    """A plain reason for a server that did not answer, from the library's exception chain
    (`ClientConnectorError(ConnectionKey(host=…, …), …)` says little to an operator)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectorDNSError):
            return f"the name {seen.host} is not known"
        if isinstance(seen, aiohttp.ClientConnectorError):
            if seen.os_error.errno == errno.ECONNREFUSED or isinstance(
                seen.os_error, ConnectionRefusedError
            ):
                return "connection refused"
            return f"cannot connect to {seen.host}:{seen.port}: {seen.os_error.strerror or seen}"
        if isinstance(seen, TimeoutError | asyncio.TimeoutError):
            return "no answer in time"
        seen = seen.__cause__ or seen.__context__
    return str(err) or type(err).__name__


async def set_up_bot(bot: IntentAPI, displayname: str, address: str = "") -> None:
    """Register the bot and set its name; retried in the background while the homeserver is down."""
    where = address or str(bot.api.base_url)
    delay = 1.0
    while True:
        try:
            await bot.ensure_registered()
            await bot.set_displayname(displayname)
            return
        except (aiohttp.ClientError, TimeoutError, MatrixConnectionError) as err:
            log.warning(
                "The homeserver at %s does not answer (%s); setting up the bot again in %.0f s",
                where,
                why_unreachable(err),
                delay,
            )
        except MatrixError as err:
            log.warning(
                "The homeserver at %s refused to set up the bot (%s); trying again in %.0f s",
                where,
                err,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60)


async def keep_in_step(
    agent: CallAgent | None,
    lifecycle: MeetingLifecycle,
    status: StatusPublisher,
    interval_s: float,
) -> None:
    """Reconcile with LiveKit and catch up status messages: at start-up, then periodically."""
    while True:
        try:
            report = await lifecycle.reconcile()
            if report.ended or report.repaired_participants:
                log.info(
                    "Reconciled %d live meeting(s) with LiveKit: %d ended, %d presence fixes",
                    report.checked,
                    report.ended,
                    report.repaired_participants,
                )
        except LiveKitError as err:
            log.warning("Reconcile skipped, LiveKit unavailable: %s", err)
        except Exception:
            log.exception("Reconcile pass failed")
        try:
            await status.catch_up()
            if agent is not None:
                await agent.ensure_all()
        except Exception:
            log.exception("Status or call participant catch-up failed")
        await asyncio.sleep(interval_s)


async def expire_lobby(desk: LobbyDesk, interval_s: float = 2.0) -> None:
    """Close lobby requests nobody answered, so their room notice says so promptly."""
    while True:
        try:
            await desk.expire()
        except Exception as err:
            log.warning("Lobby expiry pass failed: %r", err)
        await asyncio.sleep(interval_s)


async def purge_regularly(retention: Retention, interval_s: float) -> None:
    """Delete what is past its retention (bridge/retention.py): at start-up, then periodically."""
    while True:
        try:
            await retention.purge()
        except Exception:
            log.exception("Retention purge failed")
        await asyncio.sleep(interval_s)


async def probe_livekit(adapter: LiveKitAdapter, url: str) -> None:
    try:
        await adapter.list_rooms()
    except LiveKitError as err:
        if err.unreachable:
            log.warning(
                "LiveKit at %s does not answer (%s): /visio answers with an error until it does",
                url,
                why_unreachable(err),
            )
        else:
            log.warning(
                "LiveKit at %s refused the bridge's request (%s): check livekit.api_key and "
                "livekit.api_secret",
                url,
                err.code or err,
            )
    else:
        log.info("LiveKit at %s answers", url)
