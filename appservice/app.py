"""The one place where visio-bridge is built and wired: database, Matrix, LiveKit, HTTP, workers.

Start-up and shutdown are aiohttp `cleanup_ctx` steps, run in order and undone in reverse, so
a failure half-way closes what was opened. `BridgeServer` runs the app on a TCP port; the CLI,
the demo and the tests all use it, so they exercise the same wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from livekit import api as livekit_api
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixError
from mautrix.types import UserID
from mautrix.util.async_db import Database
from mautrix.util.logging import TraceLogger

from bridge.call_participant import LiveKitCallChat
from bridge.chat import CallChat, ChatStore
from bridge.clock import Clock, SystemClock
from bridge.ids import RoomID
from bridge.inbox import InboxStore
from bridge.jobs import JobQueue
from bridge.join import JoinSettings
from bridge.lifecycle import MeetingLifecycle, ObserverGroup
from bridge.livekit import LiveKitAdapter, LiveKitError, RoomOptions
from bridge.lobby import Lobby
from bridge.meeting_service import MeetingService
from bridge.meetings import Meeting, MeetingStore
from bridge.member_join import MemberJoin
from bridge.openid import OpenIDVerifier
from bridge.participants import ParticipantStore
from bridge.rate_limit import RateLimiter
from bridge.recording import Recordings
from bridge.room_config_store import RoomConfigStore
from bridge.webhooks import WebhookVerifier
from migrations import OWNER_NAME, upgrade_table

from .as_api import AppserviceAPI
from .chat_mirror import ChatMirror
from .dispatch import EventDispatcher
from .encryption import EndToBridgeEncryption
from .inbox_processor import InboxProcessor
from .join_page import JoinPage
from .lobby_desk import LobbyDesk
from .matrix import MatrixPort
from .recording_keeper import RecordingKeeper
from .room_settings import RoomSettings, policy_from
from .settings import Settings
from .status_publisher import StatusPublisher
from .token_api import TokenAPI
from .transcripts import Transcriber, TranscriptPublisher, TranscriptWorker
from .visio_commands import VisioCommands
from .webhook_api import WebhookAPI
from .widget_page import WidgetPage
from .widgets import WidgetKeeper

log = logging.getLogger(__name__)

# Typed keys for what start-up puts on the app (aiohttp's AppKey), read by routes and tests.
DB = web.AppKey("db", Database)
MATRIX = web.AppKey("matrix", MatrixPort)
LIVEKIT = web.AppKey("livekit", LiveKitAdapter)
INBOX = web.AppKey("inbox", InboxStore)
PROCESSOR = web.AppKey("processor", InboxProcessor)
MEETINGS = web.AppKey("meetings", MeetingService)
AS_API = web.AppKey("as_api", AppserviceAPI)
JOIN_PAGE = web.AppKey("join_page", JoinPage)
WEBHOOKS = web.AppKey("webhooks", WebhookAPI)
STATUS = web.AppKey("status", StatusPublisher)
LIFECYCLE = web.AppKey("lifecycle", MeetingLifecycle)
TOKEN_API = web.AppKey("token_api", TokenAPI)
WIDGET_PAGE = web.AppKey("widget_page", WidgetPage)
CHAT = web.AppKey("chat", ChatMirror)
CRYPTO = web.AppKey("crypto", EndToBridgeEncryption)
TRANSCRIPTS = web.AppKey("transcripts", TranscriptWorker)


class _StateStore(MemoryStateStore, ASStateStore):
    """mautrix's in-memory state store; the bridge fetches what it needs fresh anyway."""

    def __init__(self) -> None:
        # Both bases keep their own dicts and neither calls super().__init__().
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


@dataclass
class Options:
    """Knobs that tests and benchmarks turn; production uses the defaults."""

    clock: Clock | None = None
    process_inbox: bool = True
    retry_base_delay_ms: int = 1000
    status_coalesce_s: float = 1.0
    reconcile_interval_s: float | None = None  # None: the config's livekit.reconcile_interval
    call_chat: CallChat | None = None  # None: the real livekit.rtc participant
    max_attempts: int = 8  # per inbox event, before giving up
    retry_max_delay_ms: int = 5 * 60_000
    transcriber: Transcriber | None = None  # None: the bundled models, when installed
    job_poll_s: float = 2.0


def open_database(settings: Settings) -> Database:
    return Database.create(
        settings.database_url,
        upgrade_table=upgrade_table,
        db_args=dict(settings.database_args),
        owner_name=OWNER_NAME,
        # Refuse to run inside a homeserver's database by mistake (mautrix checks for Synapse's).
        ignore_foreign_tables=False,
    )


def build_app(settings: Settings, options: Options | None = None) -> web.Application:
    options = options or Options()
    clock = options.clock or SystemClock()
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def database(app: web.Application) -> AsyncIterator[None]:
        db = open_database(settings)
        await db.start()
        app[DB] = db
        yield
        await db.stop()

    async def matrix(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        state_store = _StateStore()
        as_api = AppServiceAPI(
            base_url=settings.homeserver.address,
            bot_mxid=UserID(settings.bot_mxid),
            token=settings.appservice.as_token,
            state_store=state_store,
            client_session=session,
            log=cast(TraceLogger, logging.getLogger("mau.as")),
        )
        bot: IntentAPI = as_api.bot_intent()
        app[MATRIX] = MatrixPort(bot, ghosts=as_api.intent)
        start_profile = asyncio.create_task(_set_up_bot(bot, settings.appservice.bot_displayname))
        yield
        start_profile.cancel()
        await session.close()

    async def encryption(app: web.Application) -> AsyncIterator[None]:
        if not settings.encryption.enabled:
            yield
            return
        crypto = EndToBridgeEncryption(
            homeserver_address=settings.homeserver.address,
            bot=app[MATRIX].bot_intent,
            as_token=settings.appservice.as_token,
            database_url=settings.database_url,
            database_args=settings.database_args,
            msc4190=settings.encryption.msc4190,
        )
        await crypto.start()
        app[CRYPTO] = crypto
        app[MATRIX].use_encryption(crypto)
        yield
        await crypto.stop()

    async def livekit(app: web.Application) -> AsyncIterator[None]:
        client = livekit_api.LiveKitAPI(
            settings.livekit.api_url,
            settings.livekit.api_key,
            settings.livekit.api_secret,
            timeout=aiohttp.ClientTimeout(total=10),
        )
        adapter = LiveKitAdapter(
            client,
            RoomOptions(
                empty_timeout=settings.livekit.empty_timeout,
                departure_timeout=settings.livekit.departure_timeout,
                max_participants=settings.livekit.max_participants,
            ),
        )
        app[LIVEKIT] = adapter
        probe = asyncio.create_task(_probe_livekit(adapter, settings.livekit.api_url))
        yield
        probe.cancel()
        await client.aclose()

    async def domain(app: web.Application) -> AsyncIterator[None]:
        db = app[DB]
        meeting_store = MeetingStore(db)
        participant_store = ParticipantStore(db)
        meetings = MeetingService(meeting_store, app[LIVEKIT], clock)
        public_url = settings.public_url.rstrip("/")

        room_settings = RoomSettings(
            RoomConfigStore(db),
            app[MATRIX],
            policy_from(settings),
            clock,
        )

        async def language_of(meeting: Meeting) -> str:
            return await room_settings.language(meeting.room_id)

        status = StatusPublisher(
            meeting_store,
            participant_store,
            app[MATRIX],
            language_of=language_of,
            link_for=lambda meeting: f"{public_url}/m/{meeting.slug}",
            timezone=ZoneInfo(settings.meetings.timezone),
            coalesce_s=options.status_coalesce_s,
        )
        widgets = WidgetKeeper(meeting_store, app[MATRIX], room_settings, settings.public_url)
        join_settings = JoinSettings(
            livekit_url=settings.livekit.url,
            api_key=settings.livekit.api_key,
            api_secret=settings.livekit.api_secret,
            frontend_url=settings.livekit.frontend_url,
            token_ttl_s=settings.livekit.token_ttl,
        )
        chat_mirror = ChatMirror(
            meeting_store,
            meetings,
            ChatStore(db),
            app[LIVEKIT],
            options.call_chat or LiveKitCallChat(),
            app[MATRIX],
            room_settings,
            join_settings,
            clock,
            rtc_url=settings.livekit.rtc_url,
            ghost_prefix=settings.appservice.user_prefix,
            server_name=settings.homeserver.domain,
            retry_base_ms=options.retry_base_delay_ms,
        )
        app[CHAT] = chat_mirror
        jobs = JobQueue(db, clock)
        recordings = Recordings(
            meeting_store,
            jobs,
            app[LIVEKIT],
            recordings_dir=settings.transcription.recordings_dir,
        )
        recording_keeper = RecordingKeeper(meeting_store, recordings, app[MATRIX], room_settings)
        observers = ObserverGroup(status, widgets, chat_mirror, recording_keeper)

        async def settings_changed(room_id: str) -> None:
            meeting = await meeting_store.open_in_room(RoomID(room_id))
            if meeting is not None:
                observers.meeting_changed(meeting.id)

        room_settings.notify_changes_to(settings_changed)
        lifecycle = MeetingLifecycle(
            db, meeting_store, participant_store, app[LIVEKIT], clock, observers, recordings
        )
        commands = VisioCommands(
            meetings,
            app[MATRIX],
            public_url=settings.public_url,
            settings=room_settings,
            clock=clock,
            status=observers,
            recording=recording_keeper,
        )
        dispatcher = EventDispatcher(settings, app[MATRIX], commands, room_settings)
        inbox = InboxStore(db)
        processor = InboxProcessor(
            inbox,
            dispatcher.handle,
            clock,
            base_delay_ms=options.retry_base_delay_ms,
            max_delay_ms=options.retry_max_delay_ms,
            max_attempts=options.max_attempts,
            on_give_up=dispatcher.gave_up,
        )
        crypto = app[CRYPTO] if CRYPTO in app else None
        if crypto is not None:
            dispatcher.use_encryption(crypto)
        app[INBOX] = inbox
        app[PROCESSOR] = processor
        app[MEETINGS] = meetings
        app[AS_API] = AppserviceAPI(
            settings.appservice.hs_token,
            inbox,
            clock,
            processor.wake,
            dispatcher.is_own_user,
            crypto.handle_transaction_extras if crypto is not None else None,
        )
        openid_session = aiohttp.ClientSession()

        async def moderator_level(room_id: RoomID) -> int:
            return (await room_settings.effective(room_id)).end_power_level

        member_join = MemberJoin(
            meetings,
            OpenIDVerifier(
                openid_session, {settings.homeserver.domain: settings.homeserver.address}
            ),
            app[MATRIX],
            join_settings,
            moderator_level,
        )
        app[TOKEN_API] = TokenAPI(
            member_join,
            per_address=RateLimiter(clock, per_minute=30, burst=10),
            per_meeting=RateLimiter(clock, per_minute=300, burst=60),
        )
        lobby = Lobby(db, clock, timeout_ms=settings.meetings.lobby_timeout * 1000)
        desk = LobbyDesk(lobby, meeting_store, app[MATRIX], room_settings, join_settings)
        app[WIDGET_PAGE] = WidgetPage(settings.meetings.default_language)
        app[JOIN_PAGE] = JoinPage(
            meetings,
            app[MATRIX],
            join_settings,
            settings.meetings.default_language,
            room_settings,
            lobby,
            desk,
            RateLimiter(clock, per_minute=30, burst=10),
            clock,
        )
        app[WEBHOOKS] = WebhookAPI(
            WebhookVerifier(settings.livekit.api_key, settings.livekit.api_secret), lifecycle
        )
        app[STATUS] = status
        app[LIFECYCLE] = lifecycle
        dispatcher.subscribe("m.reaction", desk.on_reaction)
        dispatcher.subscribe("m.room.message", chat_mirror.on_room_message)
        dispatcher.subscribe("m.room.redaction", chat_mirror.on_redaction)
        workers = [
            asyncio.create_task(_expire_lobby(desk)),
            asyncio.create_task(chat_mirror.run_outbox()),
            asyncio.create_task(
                _keep_in_step(
                    chat_mirror,
                    lifecycle,
                    status,
                    options.reconcile_interval_s or settings.livekit.reconcile_interval,
                )
            ),
        ]
        transcriber = options.transcriber or (
            _bundled_transcriber(settings) if settings.transcription.in_process else None
        )
        if transcriber is not None:
            transcript_worker = TranscriptWorker(
                jobs,
                meeting_store,
                participant_store,
                transcriber,
                TranscriptPublisher(app[MATRIX], meeting_store),
                room_settings,
                clock,
                keep_recordings=settings.transcription.keep_recordings,
                retry_base_ms=options.retry_base_delay_ms,
            )
            app[TRANSCRIPTS] = transcript_worker
            workers.append(asyncio.create_task(transcript_worker.run(poll_s=options.job_poll_s)))
        inbox_worker = asyncio.create_task(processor.run()) if options.process_inbox else None
        yield
        if inbox_worker is not None:
            processor.stop()
            try:
                await asyncio.wait_for(inbox_worker, timeout=10)
            except TimeoutError:
                log.warning("Inbox processing did not finish in time; it resumes at next start")
        for worker in workers:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await status.close()
        await widgets.close()
        await chat_mirror.close()
        await recording_keeper.close()
        await openid_session.close()

    app.cleanup_ctx.extend([database, matrix, encryption, livekit, domain])

    # Routes resolve their handler objects lazily: those exist only once start-up has run.
    app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", _late(AS_API, "put_transaction"))
    app.router.add_post("/_matrix/app/v1/ping", _late(AS_API, "ping"))
    app.router.add_get("/_matrix/app/v1/users/{user_id}", _late(AS_API, "query_user"))
    app.router.add_get("/_matrix/app/v1/rooms/{alias}", _late(AS_API, "query_room"))
    app.router.add_get("/m/{slug}", _late(JOIN_PAGE, "show"))
    app.router.add_post("/m/{slug}", _late(JOIN_PAGE, "join"))
    app.router.add_post("/livekit/webhook", _late(WEBHOOKS, "receive"))
    app.router.add_post("/api/token", _late(TOKEN_API, "issue"))
    app.router.add_get("/widget/{slug}", _late(WIDGET_PAGE, "show"))
    app.router.add_get("/api/lobby/{request_id}", _late(JOIN_PAGE, "lobby_status"))
    app.router.add_get("/health", _health)
    return app


def _late(component: web.AppKey[Any], method: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        target = getattr(request.app[component], method)
        response: web.StreamResponse = await target(request)
        return response

    return handler


async def _health(request: web.Request) -> web.Response:
    pending = await request.app[INBOX].pending_count()
    return web.json_response({"status": "ok", "inbox_pending": pending})


async def _set_up_bot(bot: IntentAPI, displayname: str) -> None:
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


async def _keep_in_step(
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


def _bundled_transcriber(settings: Settings) -> Transcriber | None:
    """The models of the `transcription` extra, or None (with a warning) when not installed."""
    from bridge.transcription.bundled import load_transcriber

    try:
        return load_transcriber(
            pipeline_dir=settings.transcription.pipeline_dir or None,
            model_dir=settings.transcription.model_dir or None,
            threads=settings.transcription.threads,
        )
    except ImportError as err:
        log.warning(
            "Transcription is not installed (%s): transcripts wait for a transcribe-worker", err
        )
        return None


async def _expire_lobby(desk: LobbyDesk, interval_s: float = 2.0) -> None:
    """Close lobby requests nobody answered, so their room notice says so promptly."""
    while True:
        try:
            await desk.expire()
        except Exception as err:
            log.warning("Lobby expiry pass failed: %r", err)
        await asyncio.sleep(interval_s)


async def _probe_livekit(adapter: LiveKitAdapter, url: str) -> None:
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
