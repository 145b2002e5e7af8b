"""The bridge's background loops: each runs until shutdown cancels it, and survives failures.

Failures are logged and retried on the next pass: a homeserver or LiveKit that is down must
never stop the loop that will notice it came back.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError

from bridge.chat.mirror import ChatMirror
from bridge.livekit import LiveKitAdapter
from bridge.lobby.desk import LobbyDesk
from bridge.meetings.lifecycle import MeetingLifecycle
from bridge.ports import LiveKitError
from bridge.retention import Retention
from bridge.status.publisher import StatusPublisher

log = logging.getLogger(__name__)


async def set_up_bot(bot: IntentAPI, displayname: str) -> None:
    """Register the bot and set its name; retried in the background while the homeserver is down."""
    delay = 1.0
    while True:
        try:
            await bot.ensure_registered()
            await bot.set_displayname(displayname)
            return
        except (MatrixError, aiohttp.ClientError, TimeoutError) as err:
            log.warning(
                "Homeserver not ready for the bot's profile (%r); retrying in %.0f s", err, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)


async def keep_in_step(
    chat: ChatMirror, lifecycle: MeetingLifecycle, status: StatusPublisher, interval_s: float
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
            await chat.ensure_all()
        except Exception:
            log.exception("Status or chat catch-up failed")
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
        log.warning(
            "LiveKit at %s is not usable (%s): /visio will answer with an error until it is",
            url,
            err,
        )
    else:
        log.info("LiveKit at %s answers", url)
