"""Building the bridge from its settings: one short builder per feature, started in order.

Each builder constructs its feature's objects and registers, on one `AsyncExitStack`, whatever
must be undone at shutdown (a session to close, a background task to cancel). `start_bridge`
calls them in dependency order, so a failure half-way closes exactly what was opened, and
shutdown runs in reverse: the inbox stops first, the database closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
from livekit import api as livekit_api
from mautrix.appservice import AppServiceAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.types import UserID
from mautrix.util.async_db import Database
from mautrix.util.logging import TraceLogger

from appservice.background import (
    expire_lobby,
    keep_in_step,
    probe_livekit,
    purge_regularly,
    set_up_bot,
)
from appservice.call_agents import CallAgents, build_call_agents, hold_calls
from appservice.dispatch import EventDispatcher
from appservice.encryption import EndToBridgeEncryption
from appservice.http.call_page import ASSETS, dist_dir
from appservice.http.health import HomeserverProbe, Readiness, database_check, livekit_check
from appservice.http.join_page import PAGE_RATE, JoinLimits, JoinPage
from appservice.http.token_api import PER_ADDRESS, PER_MEETING, TokenAPI
from appservice.http.transactions import AppserviceAPI
from appservice.http.webhook_api import WebhookAPI
from appservice.http.widget_page import WidgetPage
from appservice.matrix_adapter import MatrixAdapter
from appservice.metrics import BridgeMetrics, metrics_app, serve_metrics
from appservice.settings import Settings, room_policy
from appservice.startup import start_database
from bridge.calls.coverage import RecordingCoverage
from bridge.calls.leases import CallLeases
from bridge.calls.participant import LiveKitCallParticipant
from bridge.chat.messages import ChatStore
from bridge.chat.mirror import ChatMirror
from bridge.clock import SystemClock
from bridge.commands import VisioCommands
from bridge.ids import RoomID
from bridge.inbox.processor import InboxProcessor
from bridge.inbox.store import InboxStore
from bridge.jobs import JobQueue
from bridge.join.links import MeetingLinks
from bridge.join.members import MemberJoin
from bridge.join.openid import OpenIDVerifier
from bridge.join.tokens import JoinSettings
from bridge.livekit import LiveKitAdapter, RoomOptions
from bridge.lobby.desk import LobbyDesk
from bridge.lobby.requests import Lobby
from bridge.meetings.lifecycle import MeetingLifecycle
from bridge.meetings.observers import MeetingFollower, ObserverGroup
from bridge.meetings.participants import ParticipantStore
from bridge.meetings.service import MeetingService
from bridge.meetings.store import Meeting, MeetingStore
from bridge.meetings.webhooks import WebhookVerifier
from bridge.ports import CallParticipant, Clock, LiveKitRooms, Matrix
from bridge.rate_limit import ClientAddresses
from bridge.recording.keeper import RecordingKeeper
from bridge.recording.recordings import Recordings
from bridge.recording.tracks import TrackStore
from bridge.retention import DAY_MS, HOUR_MS, Retention, RetentionPolicy
from bridge.room_settings.service import RoomSettings
from bridge.room_settings.store import RoomConfigStore
from bridge.status.publisher import StatusPublisher
from bridge.transcription.worker import Transcriber, TranscriptPublisher, TranscriptWorker
from bridge.widgets import WidgetKeeper
from migrations import OWNER_NAME, upgrade_table

log = logging.getLogger(__name__)


@dataclass
class Options:
    """Knobs that tests and benchmarks turn; production uses the defaults."""

    clock: Clock | None = None
    process_inbox: bool = True
    retry_base_delay_ms: int = 1000
    status_coalesce_s: float = 1.0
    reconcile_interval_s: float | None = None  # None: the config's livekit.reconcile_interval
    call_chat: CallParticipant | None = None  # None: the real livekit.rtc participant
    max_attempts: int = 8  # per inbox event, before giving up
    retry_max_delay_ms: int = 5 * 60_000
    transcriber: Transcriber | None = None  # None: the bundled models, when installed
    job_poll_s: float = 2.0
    # False: no background loop runs (reconcile, chat outbox, lobby expiry, transcripts, inbox,
    # retention purge): the fast tests call each step themselves, in the order they choose.
    background: bool = True


@dataclass(frozen=True)
class Bridge:
    """The running bridge: what the HTTP routes serve, and what tests and benchmarks inspect."""

    db: Database
    matrix: Matrix
    crypto: EndToBridgeEncryption | None
    inbox: InboxStore
    processor: InboxProcessor
    meetings: MeetingService
    lifecycle: MeetingLifecycle
    observers: ObserverGroup
    status: StatusPublisher
    chat: ChatMirror
    lobby: LobbyDesk
    transcripts: TranscriptWorker | None
    transactions: AppserviceAPI
    join_page: JoinPage
    token_api: TokenAPI
    webhooks: WebhookAPI
    widget_page: WidgetPage
    retention: Retention
    metrics: BridgeMetrics  # Prometheus, served on metrics.hostname:port when enabled
    readiness: Readiness  # what /ready checks


@dataclass(frozen=True)
class _Core:
    """What every feature builds on."""

    settings: Settings
    options: Options
    clock: Clock
    db: Database
    matrix: Matrix
    livekit: LiveKitRooms
    meeting_store: MeetingStore
    participants: ParticipantStore
    meetings: MeetingService
    jobs: JobQueue
    room_settings: RoomSettings
    join_settings: JoinSettings
    links: MeetingLinks


def open_database(settings: Settings) -> Database:
    if settings.database_url.startswith("sqlite:"):
        _keep_private(Path(settings.database_url.removeprefix("sqlite:")))
    return Database.create(
        settings.database_url,
        upgrade_table=upgrade_table,
        db_args=dict(settings.database_args),
        owner_name=OWNER_NAME,
        # Refuse to run inside a homeserver's database by mistake (mautrix checks for Synapse's).
        ignore_foreign_tables=False,
    )


def _keep_private(sqlite_file: Path) -> None:
    """Create the SQLite file readable by its owner only: it holds chat, names and, with
    encryption, the bot's keys. SQLite gives its -wal and -shm files the same mode."""
    if sqlite_file.exists():
        if sqlite_file.stat().st_mode & 0o077:
            log.warning("%s was readable by others: now owner-only (0600)", sqlite_file)
            sqlite_file.chmod(0o600)
        return
    with contextlib.suppress(OSError):  # a bad path is reported by the database itself
        os.close(os.open(sqlite_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def in_background(stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until shutdown, when it is cancelled."""
    task = asyncio.create_task(work)

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(cancel)


def _in_background(
    core: _Core, stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None]
) -> None:
    if core.options.background:
        in_background(stack, work)
    else:
        work.close()  # never started: nothing to cancel


async def start_bridge(
    settings: Settings, options: Options, stack: contextlib.AsyncExitStack
) -> Bridge:
    """The whole bridge over real mautrix and livekit-api clients, as `visio-bridge run` has it."""
    db = open_database(settings)
    await start_database(db, settings)  # a StartupError names the setting when it cannot
    stack.push_async_callback(db.stop)
    matrix = await _matrix(settings, stack)
    crypto = await _encryption(settings, matrix, stack)
    livekit = await open_livekit(settings, stack)
    bridge = await start_features(settings, options, stack, db, matrix, livekit, crypto)
    if settings.metrics.enabled:
        app = metrics_app(bridge.metrics, db, (options.clock or SystemClock()).now_ms)
        listener = serve_metrics(app, settings.metrics.hostname, settings.metrics.port)
        await stack.enter_async_context(listener)
    return bridge


async def start_features(
    settings: Settings,
    options: Options,
    stack: contextlib.AsyncExitStack,
    db: Database,
    matrix: Matrix,
    livekit: LiveKitRooms,
    crypto: EndToBridgeEncryption | None = None,
) -> Bridge:
    """Every feature, over the given ports: the production wiring, and the fast tests' too."""
    # Measured at the edge: failed calls through the ports are counted on their way out.
    metrics = BridgeMetrics()
    matrix = metrics.count_homeserver_errors(matrix)
    livekit = metrics.count_livekit_errors(livekit)
    core = _core(settings, options, options.clock or SystemClock(), db, matrix, livekit)
    status = _status(core, stack)
    chat = _chat(core, stack)
    agents = _call_agents(core, stack, chat)
    recordings, recording = _recording(core, agents)
    lobby, desk = _lobby(core, stack)  # follows meetings: an ended call closes its lobby
    followers: list[MeetingFollower] = [_widgets(core), recording, desk]
    if agents is not None:
        followers.insert(1, agents.agent)
    observers = _observers(core, stack, status, followers=followers)
    lifecycle = MeetingLifecycle(
        db, core.meeting_store, core.participants, livekit, core.clock, observers, recordings
    )
    interval = options.reconcile_interval_s or settings.livekit.reconcile_interval
    _in_background(
        core, stack, keep_in_step(agents.agent if agents else None, lifecycle, status, interval)
    )
    commands = VisioCommands(
        core.meetings,
        matrix,
        settings=core.room_settings,
        clock=core.clock,
        status=status,
        observers=observers,
        recording=recording,
        links=core.links,
    )
    dispatcher = EventDispatcher(
        settings, matrix, metrics.count_commands(commands), core.room_settings
    )
    if crypto is not None:
        dispatcher.use_encryption(crypto)
    dispatcher.subscribe("m.room.message", chat.on_room_message)
    dispatcher.subscribe("m.room.redaction", chat.on_redaction)
    dispatcher.subscribe("m.reaction", desk.on_reaction)
    inbox = InboxStore(db)
    processor = _inbox_processor(
        core, inbox, metrics.time_events(dispatcher.handle), dispatcher, stack
    )
    return Bridge(
        db=db,
        matrix=matrix,
        crypto=crypto,
        inbox=inbox,
        processor=processor,
        meetings=core.meetings,
        lifecycle=lifecycle,
        observers=observers,
        status=status,
        chat=chat,
        lobby=desk,
        transcripts=_transcripts(core, stack),
        retention=_retention(core, stack),
        transactions=AppserviceAPI(
            settings.appservice.hs_token,
            inbox,
            core.clock,
            processor.wake,
            dispatcher.is_own_user,
            crypto.handle_transaction_extras if crypto is not None else None,
        ),
        metrics=metrics,
        readiness=_readiness(settings, db, livekit, stack),
        join_page=_join_page(core, lobby, desk),
        token_api=await _token_api(core, stack),
        webhooks=WebhookAPI(
            WebhookVerifier(settings.livekit.api_key, settings.livekit.api_secret), lifecycle
        ),
        widget_page=WidgetPage(
            settings.meetings.default_language,
            core.meetings,
            core.room_settings,
            ClientAddresses(settings.appservice.trusted_proxies),
            PAGE_RATE.limiter(core.clock),
        ),
    )


def _readiness(
    settings: Settings, db: Database, livekit: LiveKitRooms, stack: contextlib.AsyncExitStack
) -> Readiness:
    homeserver = HomeserverProbe(settings.homeserver.address)
    stack.push_async_callback(homeserver.close)
    return Readiness(
        {
            "database": database_check(db),
            "homeserver": homeserver,
            "livekit": livekit_check(livekit),
        }
    )


async def _matrix(settings: Settings, stack: contextlib.AsyncExitStack) -> MatrixAdapter:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    stack.push_async_callback(session.close)
    as_api = AppServiceAPI(
        base_url=settings.homeserver.address,
        bot_mxid=UserID(settings.bot_mxid),
        token=settings.appservice.as_token,
        state_store=_StateStore(),
        client_session=session,
        log=cast(TraceLogger, logging.getLogger("mau.as")),
    )
    bot = as_api.bot_intent()
    in_background(
        stack,
        set_up_bot(bot, settings.appservice.bot_displayname, settings.homeserver.address),
    )
    return MatrixAdapter(bot, ghosts=as_api.intent)


class _StateStore(MemoryStateStore, ASStateStore):
    """mautrix's in-memory state store; the bridge fetches what it needs fresh anyway."""

    def __init__(self) -> None:
        # Both bases keep their own dicts and neither calls super().__init__().
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


async def _encryption(
    settings: Settings, matrix: MatrixAdapter, stack: contextlib.AsyncExitStack
) -> EndToBridgeEncryption | None:
    if not settings.encryption.enabled:
        return None
    crypto = EndToBridgeEncryption(
        homeserver_address=settings.homeserver.address,
        bot=matrix.bot_intent,
        as_token=settings.appservice.as_token,
        database_url=settings.database_url,
        database_args=settings.database_args,
        msc4190=settings.encryption.msc4190,
        pickle_key=settings.encryption.pickle_key,
    )
    await crypto.start()
    stack.push_async_callback(crypto.stop)
    matrix.use_encryption(crypto)
    return crypto


async def open_livekit(
    settings: Settings, stack: contextlib.AsyncExitStack, *, probe: bool = True
) -> LiveKitAdapter:
    client = livekit_api.LiveKitAPI(
        settings.livekit.api_url,
        settings.livekit.api_key,
        settings.livekit.api_secret,
        timeout=aiohttp.ClientTimeout(total=10),
    )
    stack.push_async_callback(client.aclose)
    adapter = LiveKitAdapter(
        client,
        RoomOptions(
            empty_timeout=settings.livekit.empty_timeout,
            departure_timeout=settings.livekit.departure_timeout,
            max_participants=settings.livekit.max_participants,
        ),
    )
    if probe:  # says at start-up, in the log, whether LiveKit answers
        in_background(stack, probe_livekit(adapter, settings.livekit.api_url))
    return adapter


def _core(
    settings: Settings,
    options: Options,
    clock: Clock,
    db: Database,
    matrix: Matrix,
    livekit: LiveKitRooms,
) -> _Core:
    meeting_store = MeetingStore(db)
    return _Core(
        settings=settings,
        options=options,
        clock=clock,
        db=db,
        matrix=matrix,
        livekit=livekit,
        meeting_store=meeting_store,
        participants=ParticipantStore(db),
        meetings=MeetingService(meeting_store, livekit, clock),
        jobs=JobQueue(db, clock),
        room_settings=RoomSettings(RoomConfigStore(db), matrix, room_policy(settings), clock),
        join_settings=JoinSettings(
            livekit_url=settings.livekit.url,
            api_key=settings.livekit.api_key,
            api_secret=settings.livekit.api_secret,
            frontend_url=settings.livekit.frontend_url,
            token_ttl_s=settings.livekit.token_ttl,
        ),
        links=MeetingLinks(settings.public_url),
    )


def _status(core: _Core, stack: contextlib.AsyncExitStack) -> StatusPublisher:
    async def language_of(meeting: Meeting) -> str:
        return await core.room_settings.language(meeting.room_id)

    publisher = StatusPublisher(
        core.meeting_store,
        core.participants,
        core.matrix,
        language_of=language_of,
        links=core.links,
        timezone=ZoneInfo(core.settings.meetings.timezone),
        coalesce_s=core.options.status_coalesce_s,
    )
    stack.push_async_callback(publisher.close)
    return publisher


def _chat(core: _Core, stack: contextlib.AsyncExitStack) -> ChatMirror:
    mirror = ChatMirror(
        core.meeting_store,
        ChatStore(core.db),
        core.livekit,
        core.matrix,
        core.room_settings,
        core.clock,
        ghost_prefix=core.settings.appservice.user_prefix,
        server_name=core.settings.homeserver.domain,
        retry_base_ms=core.options.retry_base_delay_ms,
    )
    _in_background(core, stack, mirror.run_outbox())
    return mirror


def _call_agents(
    core: _Core, stack: contextlib.AsyncExitStack, chat: ChatMirror
) -> CallAgents | None:
    """The bridge's participant in the calls this process holds; None when call-workers hold
    them all (`calls.in_process: false`)."""
    if not core.settings.calls.in_process:
        return None
    agents = build_call_agents(
        core.settings,
        core.db,
        core.clock,
        core.meeting_store,
        core.meetings,
        core.room_settings,
        core.join_settings,
        core.options.call_chat or LiveKitCallParticipant(),
        chat.on_call_message,
    )
    if core.options.background:
        in_background(stack, hold_calls(agents))  # leaves every call when cancelled
    else:
        stack.push_async_callback(agents.agent.close)
    return agents


def _recording(core: _Core, agents: CallAgents | None) -> tuple[Recordings, RecordingKeeper]:
    per_participant = core.settings.transcription.recorder == "participant"
    recordings = Recordings(
        core.meeting_store,
        core.jobs,
        core.livekit,
        core.clock,
        recordings_dir=core.settings.transcription.recordings_dir,
        tracks=TrackStore(core.db) if per_participant else None,
    )
    keeper = RecordingKeeper(
        core.meeting_store,
        recordings,
        core.matrix,
        core.room_settings,
        recording_changed=agents.agent.sync if agents is not None else None,
    )
    return recordings, keeper


def _widgets(core: _Core) -> WidgetKeeper:
    return WidgetKeeper(core.meeting_store, core.matrix, core.room_settings, core.links)


def _observers(
    core: _Core,
    stack: contextlib.AsyncExitStack,
    status: StatusPublisher,
    followers: Sequence[MeetingFollower],
) -> ObserverGroup:
    observers = ObserverGroup(status, followers=followers)
    stack.push_async_callback(observers.close)

    async def settings_changed(room_id: str) -> None:
        # A room's settings changed: its live meeting (if any) shows it at once.
        meeting = await core.meeting_store.open_in_room(RoomID(room_id))
        if meeting is not None:
            observers.meeting_changed(meeting.id)

    core.room_settings.notify_changes_to(settings_changed)
    return observers


def _transcripts(core: _Core, stack: contextlib.AsyncExitStack) -> TranscriptWorker | None:
    settings = core.settings.transcription
    transcriber = core.options.transcriber or (
        bundled_transcriber(core.settings) if settings.in_process else None
    )
    if transcriber is None:
        return None
    worker = TranscriptWorker(
        core.jobs,
        core.meeting_store,
        core.participants,
        transcriber,
        TranscriptPublisher(core.matrix, core.meeting_store),
        core.room_settings,
        core.clock,
        tracks=TrackStore(core.db),
        missing_audio=RecordingCoverage(CallLeases(core.db, core.clock)).missing,
        keep_recordings=settings.keep_recordings,
        recordings_dir=settings.recordings_dir,
        retry_base_ms=core.options.retry_base_delay_ms,
    )
    _in_background(core, stack, worker.run(poll_s=core.options.job_poll_s))
    return worker


def _retention(core: _Core, stack: contextlib.AsyncExitStack) -> Retention:
    settings = core.settings.retention
    policy = RetentionPolicy(
        processed_events_ms=settings.processed_events_hours * HOUR_MS,
        event_ids_ms=settings.event_ids_days * DAY_MS,
        meetings_ms=settings.meetings_days * DAY_MS,
        recordings_ms=settings.recordings_hours * HOUR_MS,
        keep_transcribed_recordings=core.settings.transcription.keep_recordings,
    )
    retention = Retention(
        core.db,
        core.clock,
        policy,
        recordings_dir=core.settings.transcription.recordings_dir,
    )
    _in_background(core, stack, purge_regularly(retention, settings.purge_interval))
    return retention


def bundled_transcriber(settings: Settings) -> Transcriber | None:
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


def _lobby(core: _Core, stack: contextlib.AsyncExitStack) -> tuple[Lobby, LobbyDesk]:
    lobby = Lobby(core.db, core.clock, timeout_ms=core.settings.meetings.lobby_timeout * 1000)
    desk = LobbyDesk(lobby, core.meeting_store, core.matrix, core.room_settings, core.join_settings)
    _in_background(core, stack, expire_lobby(desk))
    return lobby, desk


def _join_page(core: _Core, lobby: Lobby, desk: LobbyDesk) -> JoinPage:
    page = JoinPage(
        core.meetings,
        core.matrix,
        core.join_settings,
        core.settings.meetings.default_language,
        core.room_settings,
        lobby,
        desk,
        JoinLimits.standard(
            core.clock,
            ClientAddresses(core.settings.appservice.trusted_proxies),
            polls_per_address=core.settings.appservice.lobby_polls_per_address,
            polls=core.settings.appservice.lobby_polls,
        ),
        core.clock,
    )
    if page.builtin and not ASSETS.built:
        log.warning(
            "The call page is not built (%s): join links will not work until "
            "`bash .ci/build-callpage.sh` has run",
            dist_dir(),
        )
    return page


async def _token_api(core: _Core, stack: contextlib.AsyncExitStack) -> TokenAPI:
    homeserver = core.settings.homeserver
    # Our homeserver is reached at its configured address; any other goes through the guard.
    verifier = OpenIDVerifier(
        {homeserver.domain: homeserver.address},
        allowed_servers=homeserver.openid_allowed_servers,
    )
    stack.push_async_callback(verifier.close)

    async def moderator_level(room_id: RoomID) -> int:
        return (await core.room_settings.effective(room_id)).end_power_level

    member_join = MemberJoin(
        core.meetings,
        verifier,
        core.matrix,
        core.join_settings,
        moderator_level,
    )
    return TokenAPI(
        member_join,
        per_address=PER_ADDRESS.limiter(core.clock),
        per_meeting=PER_MEETING.limiter(core.clock),
        addresses=ClientAddresses(core.settings.appservice.trusted_proxies),
    )


def _inbox_processor(
    core: _Core,
    inbox: InboxStore,
    handle: Callable[[Mapping[str, Any]], Awaitable[None]],  # the dispatcher's, timed
    dispatcher: EventDispatcher,
    stack: contextlib.AsyncExitStack,
) -> InboxProcessor:
    processor = InboxProcessor(
        inbox,
        handle,
        core.clock,
        base_delay_ms=core.options.retry_base_delay_ms,
        max_delay_ms=core.options.retry_max_delay_ms,
        max_attempts=core.options.max_attempts,
        on_give_up=dispatcher.gave_up,
    )
    if not (core.options.process_inbox and core.options.background):
        return processor
    worker = asyncio.create_task(processor.run())

    async def drain() -> None:
        processor.stop()
        try:
            await asyncio.wait_for(worker, timeout=10)
        except TimeoutError:
            log.warning("Inbox processing did not finish in time; it resumes at next start")

    stack.push_async_callback(drain)
    return processor
