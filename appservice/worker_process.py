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

from appservice.matrix_adapter import MatrixAdapter
from appservice.settings import Settings, room_policy
from appservice.wiring import bundled_transcriber, open_database
from bridge.calls.coverage import RecordingCoverage
from bridge.calls.leases import CallLeases
from bridge.clock import SystemClock
from bridge.jobs import JobQueue
from bridge.meetings.participants import ParticipantStore
from bridge.meetings.store import MeetingStore
from bridge.recording.tracks import TrackStore
from bridge.room_settings.service import RoomSettings
from bridge.room_settings.store import RoomConfigStore
from bridge.transcription.worker import TranscriptPublisher, TranscriptWorker

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> int:
    transcriber = bundled_transcriber(settings)
    if transcriber is None:
        log.error(
            "Transcription is not installed (.ci/install-transcription.sh installs it): "
            "the transcribe-worker cannot run"
        )
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
    matrix = MatrixAdapter(api.bot_intent())
    clock = SystemClock()
    meetings = MeetingStore(db)
    policy = room_policy(settings)
    worker = TranscriptWorker(
        JobQueue(db, clock),
        meetings,
        ParticipantStore(db),
        transcriber,
        TranscriptPublisher(matrix, meetings),
        RoomSettings(RoomConfigStore(db), matrix, policy, clock),
        clock,
        tracks=TrackStore(db),
        missing_audio=RecordingCoverage(CallLeases(db, clock)).missing,
        keep_recordings=settings.transcription.keep_recordings,
        recordings_dir=settings.transcription.recordings_dir,
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
