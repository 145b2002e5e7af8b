"""`visio-bridge call-worker`: the bridge's participant in calls, as a process of its own.

Hearing every participant's audio and writing it to files costs CPU and bandwidth in
proportion to the calls, so one machine must not be the limit: call-workers on other machines
share the bridge's PostgreSQL database and recordings folder, and each live call is held by
exactly one process at a time through a lease (`bridge/calls/leases.py`). A worker that dies
stops renewing; another takes its calls over within `calls.lease_seconds` and a third, and the
transcript says where audio is missing. The chat a worker hears goes into the database's
outbox, which the bridge posts; the bridge itself holds calls too unless `calls.in_process` is
false.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import cast

import aiohttp
from mautrix.appservice import AppServiceAPI
from mautrix.types import UserID
from mautrix.util.logging import TraceLogger

from appservice.call_agents import build_call_agents, hold_calls
from appservice.matrix_adapter import MatrixAdapter
from appservice.settings import Settings, room_policy
from appservice.wiring import open_database, open_livekit
from bridge.calls.participant import LiveKitCallParticipant
from bridge.chat.messages import ChatStore
from bridge.chat.mirror import ChatMirror
from bridge.clock import SystemClock
from bridge.join.tokens import JoinSettings
from bridge.meetings.service import MeetingService
from bridge.meetings.store import MeetingStore
from bridge.room_settings.service import RoomSettings
from bridge.room_settings.store import RoomConfigStore

log = logging.getLogger(__name__)


async def run_call_worker(settings: Settings) -> int:
    if settings.database_url.startswith("sqlite:"):
        log.error(
            "A call-worker needs the bridge's PostgreSQL database: with SQLite, the bridge holds "
            "every call itself (calls.in_process)"
        )
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        db = open_database(settings)
        await db.start()
        stack.push_async_callback(db.stop)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        stack.push_async_callback(session.close)
        api = AppServiceAPI(
            base_url=settings.homeserver.address,
            bot_mxid=UserID(settings.bot_mxid),
            token=settings.appservice.as_token,
            client_session=session,
            log=cast(TraceLogger, logging.getLogger("mau.as")),
        )
        # Read-only here: room settings the database has not cached come from the room state.
        matrix = MatrixAdapter(api.bot_intent())
        livekit = await open_livekit(settings, stack)
        clock = SystemClock()
        meetings = MeetingStore(db)
        room_settings = RoomSettings(RoomConfigStore(db), matrix, room_policy(settings), clock)
        # Only its `on_call_message` runs here (into the outbox); the bridge posts the outbox.
        chat = ChatMirror(
            meetings,
            ChatStore(db),
            livekit,
            matrix,
            room_settings,
            clock,
            ghost_prefix=settings.appservice.user_prefix,
            server_name=settings.homeserver.domain,
        )
        agents = build_call_agents(
            settings,
            db,
            clock,
            meetings,
            MeetingService(meetings, livekit, clock),
            room_settings,
            JoinSettings(
                livekit_url=settings.livekit.url,
                api_key=settings.livekit.api_key,
                api_secret=settings.livekit.api_secret,
                frontend_url=settings.livekit.frontend_url,
                token_ttl_s=settings.livekit.token_ttl,
            ),
            LiveKitCallParticipant(),
            chat.on_call_message,
        )
        task = asyncio.create_task(hold_calls(agents))
        log.info("Call worker %s running", agents.holder.owner)
        await stop.wait()
        task.cancel()  # leaves every call and hands the leases over at once
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return 0
