"""`visio-bridge transcribe-worker`: a transcription worker as its own process.

It shares only the database (the job queue) and the recordings' storage with the bridge, so it
can run on another machine, with a GPU when there is one. It posts transcripts through the
appservice API with the bridge's registration, like the bridge itself.
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

from bridge.clock import SystemClock
from bridge.jobs import JobQueue
from bridge.meetings import MeetingStore
from bridge.participants import ParticipantStore
from bridge.room_config_store import RoomConfigStore

from .app import _bundled_transcriber, open_database
from .matrix import MatrixPort
from .room_settings import RoomSettings, policy_from
from .settings import Settings
from .transcripts import TranscriptPublisher, TranscriptWorker

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> int:
    transcriber = _bundled_transcriber(settings)
    if transcriber is None:
        log.error("Install the transcription extra (see README) to run a transcribe-worker")
        return 1
    db = open_database(settings)
    await db.start()
    session = aiohttp.ClientSession()
    api = AppServiceAPI(
        base_url=settings.homeserver.address,
        bot_mxid=UserID(settings.bot_mxid),
        token=settings.appservice.as_token,
        client_session=session,
        log=cast(TraceLogger, logging.getLogger("mau.as")),
    )
    matrix = MatrixPort(api.bot_intent())
    clock = SystemClock()
    meetings = MeetingStore(db)
    policy = policy_from(settings)
    worker = TranscriptWorker(
        JobQueue(db, clock),
        meetings,
        ParticipantStore(db),
        transcriber,
        TranscriptPublisher(matrix, meetings),
        RoomSettings(RoomConfigStore(db), matrix, policy, clock),
        clock,
        keep_recordings=settings.transcription.keep_recordings,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(worker.run())
    log.info("Transcription worker running")
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await session.close()
    await db.stop()
    return 0
