"""The bridge's participant in each live call this process holds: in the call while it is
wanted, recording each person's audio while the transcript is on, back after a lost server.

A call is wanted while its meeting is live and the bridge has something to do there: mirror the
chat, or record each participant's own track for the transcript. With several processes (the
bridge and `visio-bridge call-worker`s over one PostgreSQL), each call is held by exactly one of
them (`bridge/calls/holder.py`): a process joins only the calls it holds, and leaves those it
lost. Alone (SQLite, or no worker), the bridge holds every call.

Recording starts only once the meeting's transcript state says `recording`: the recording
keeper sets it after the room and the call have been told (`bridge/recording/keeper.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.chat.messages import BRIDGE_IDENTITY
from bridge.ids import MeetingID, ParticipantIdentity
from bridge.join.tokens import JoinSettings, mint_token
from bridge.meetings.service import MeetingService
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.ports import CallConnection, CallMessage, CallParticipant, TrackSink
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)

# Longest wait between two tries to come back into a call whose server went away. Until then
# the call has no chat mirror and no recording; a try is one API call per call, nothing to a
# LiveKit that is back (30 s made a restarted server's calls wait up to half a minute more).
REJOIN_LONGEST_DELAY_S = 10.0

OnMessage = Callable[[MeetingID, CallMessage], Awaitable[None]]
SinkFor = Callable[[Meeting], TrackSink]


class CallHolding(Protocol):
    """Which calls this process may be in (`bridge/calls/holder.py` `CallHolder`)."""

    def holds(self, meeting_id: MeetingID) -> bool: ...

    async def take(self, meeting: Meeting) -> bool:
        """Hold this call now if no other process does (True if held, already or now)."""
        ...

    async def give_up(self, meeting_id: MeetingID) -> None: ...


class CallAgent:
    def __init__(
        self,
        meetings: MeetingStore,
        meeting_service: MeetingService,
        participant: CallParticipant,
        room_settings: RoomSettings,
        join_settings: JoinSettings,
        *,
        rtc_url: str,
        on_message: OnMessage,
        sink_for: SinkFor | None,
        holding: CallHolding | None = None,
        rejoin_first_delay_s: float = 0.5,
    ) -> None:
        self._meetings = meetings
        self._meeting_service = meeting_service
        self._participant = participant
        self._room_settings = room_settings
        self._join_settings = join_settings
        self._rtc_url = rtc_url
        self._on_message = on_message
        # None: transcripts come from LiveKit's egress (or not at all); no track is recorded.
        self._sink_for = sink_for
        # None: this process is the only one, every call is its own.
        self._holding = holding
        self._rejoin_first_delay_s = rejoin_first_delay_s
        self._connections: dict[MeetingID, CallConnection] = {}
        self._recording: set[MeetingID] = set()
        self._locks: dict[MeetingID, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def wanted(self, meeting: Meeting) -> bool:
        """Whether the bridge has anything to do in this meeting's call."""
        if meeting.state is not MeetingState.LIVE:
            return False
        config = await self._room_settings.effective(meeting.room_id)
        if not config.room.enabled:
            return False
        return config.room.chat_mirror or self._records(meeting)

    def _records(self, meeting: Meeting) -> bool:
        return (
            self._sink_for is not None
            and meeting.state is MeetingState.LIVE
            and meeting.transcript_state == "recording"
        )

    def connected(self, meeting_id: MeetingID) -> bool:
        return meeting_id in self._connections

    def recording(self, meeting_id: MeetingID) -> bool:
        return meeting_id in self._recording

    async def sync(self, meeting_id: MeetingID) -> None:
        """Be in the call, recording or not, as the meeting and this process's leases say."""
        # One pass per meeting at a time: the observers, the lease loop and a rejoin may all
        # ask at once, and a call must not be joined twice.
        # (A lock per meeting ever seen, kept: dropping one while a pass waits on it would let
        # the next caller run beside that pass.)
        async with self._locks.setdefault(meeting_id, asyncio.Lock()):
            await self._sync(meeting_id)

    async def _sync(self, meeting_id: MeetingID) -> None:
        meeting = await self._meetings.by_id(meeting_id)
        wanted = meeting is not None and await self.wanted(meeting)
        if wanted and meeting is not None and self._holding is not None:
            wanted = await self._holding.take(meeting)
        if not wanted:
            await self._leave(meeting_id)
            if self._holding is not None and self._holding.holds(meeting_id):
                await self._holding.give_up(meeting_id)
            return
        assert meeting is not None  # noqa: S101 - wanted implies a meeting
        connection = self._connections.get(meeting_id)
        if connection is None:
            connection = await self._join(meeting)
        if self._records(meeting) and meeting_id not in self._recording:
            assert self._sink_for is not None  # noqa: S101 - _records checked it
            await connection.record(self._sink_for(meeting))
            self._recording.add(meeting_id)
            log.info("Recording each participant of meeting %s", meeting_id)
        elif not self._records(meeting) and meeting_id in self._recording:
            self._recording.discard(meeting_id)
            await connection.record(None)
            log.info("Stopped recording the participants of meeting %s", meeting_id)

    async def _join(self, meeting: Meeting) -> CallConnection:
        token = mint_token(
            self._join_settings,
            meeting.livekit_room,
            ParticipantIdentity(BRIDGE_IDENTITY),
            "Tchap",
            agent=True,
        )
        meeting_id = meeting.id

        async def heard(message: CallMessage) -> None:
            await self._on_message(meeting_id, message)

        connection = await self._participant.join(
            self._rtc_url,
            token,
            meeting.livekit_room,
            heard,
            on_lost=lambda: self._lost(meeting_id),
        )
        self._connections[meeting_id] = connection
        return connection

    async def _leave(self, meeting_id: MeetingID) -> None:
        connection = self._connections.pop(meeting_id, None)
        self._recording.discard(meeting_id)
        if connection is not None:
            await connection.leave()  # closes every track file first

    def _lost(self, meeting_id: MeetingID) -> None:
        self._connections.pop(meeting_id, None)
        self._recording.discard(meeting_id)
        task = asyncio.create_task(self._rejoin(meeting_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rejoin(self, meeting_id: MeetingID) -> None:
        """Come back into a call whose server went away, for as long as the meeting is live
        (the server may also have forgotten the room: it is made again first)."""
        delay = self._rejoin_first_delay_s
        while True:
            await asyncio.sleep(delay)
            meeting = await self._meetings.by_id(meeting_id)
            if meeting is None or not await self.wanted(meeting):
                return
            try:
                config = await self._room_settings.effective(meeting.room_id)
                await self._meeting_service.restore_room(meeting, config.max_participants)
                await self.sync(meeting_id)
                return
            except Exception as err:
                log.info("Meeting %s: call not rejoined yet (%r)", meeting_id, err)
                delay = min(delay * 2, REJOIN_LONGEST_DELAY_S)

    async def ensure_all(self) -> None:
        """(Re)connect to every live meeting: at start-up and with each catch-up pass."""
        for meeting in await self._meetings.open_meetings():
            try:
                await self.sync(meeting.id)
            except Exception as err:
                log.warning("Call participant for meeting %s not connected: %r", meeting.id, err)

    async def sync_connected(self) -> None:
        """Bring every call this process is in back in step (a worker's loop: it is not told
        of changes made by the bridge's process, such as the transcript being switched on)."""
        for meeting_id in list(self._connections):
            try:
                await self.sync(meeting_id)
            except Exception as err:
                log.warning("Call participant for meeting %s not in step: %r", meeting_id, err)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for meeting_id in list(self._connections):
            with contextlib.suppress(Exception):
                await self._leave(meeting_id)
