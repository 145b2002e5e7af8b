"""Starting, ending and looking up a room's meeting: the domain rules behind `/visio`.

The service owns the order of side effects so that each step can be replayed after a crash:
the meeting row is written first (claiming the room), then LiveKit's room is created (an
idempotent call), then the row is marked live. A replay of the same command event resumes
where it stopped instead of creating a second meeting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from bridge.ids import (
    EventID,
    MeetingSlug,
    RoomID,
    UserID,
    is_slug,
    livekit_room_for,
    new_meeting_id,
    new_slug,
)
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.ports import Clock, LiveKitError, LiveKitRooms

log = logging.getLogger(__name__)

# A fresh slug colliding with an existing one is astronomically unlikely, but the insert
# cannot tell that conflict apart from "room busy", so a few retries keep it correct.
_SLUG_ATTEMPTS = 3


def livekit_metadata(meeting: Meeting) -> str:
    """What the LiveKit room carries about its meeting (read by the call page and the bridge)."""
    return json.dumps({"matrix_room_id": meeting.room_id, "slug": meeting.slug})


class NoOpenMeeting(Exception):
    def __init__(self, last_ended: Meeting | None) -> None:
        super().__init__("no open meeting")
        self.last_ended = last_ended


class NotAllowedToStart(Exception):
    def __init__(self, required_level: int, user_level: int) -> None:
        super().__init__(f"starting a meeting needs power level {required_level}")
        self.required_level = required_level
        self.user_level = user_level


class NotAllowedToEnd(Exception):
    def __init__(self, meeting: Meeting, required_level: int) -> None:
        super().__init__(f"ending {meeting.id} needs the starter or power level {required_level}")
        self.meeting = meeting
        self.required_level = required_level


@dataclass(frozen=True)
class StartOutcome:
    meeting: Meeting
    # True when this command created the meeting (or is a replay of the command that did);
    # False when another meeting was already open in the room.
    created: bool


class MeetingService:
    def __init__(self, store: MeetingStore, livekit: LiveKitRooms, clock: Clock) -> None:
        self._store = store
        self._livekit = livekit
        self._clock = clock

    async def start(
        self,
        room_id: RoomID,
        user_id: UserID,
        command: EventID,
        *,
        user_level: int,
        start_level: int,
        max_participants: int = 0,
    ) -> StartOutcome:
        """Open a meeting for the room, or return the one already open there.

        Anyone at `start_level` or above may (0, the default, lets every member); below it,
        `NotAllowedToStart`. Raises `LiveKitError` when LiveKit cannot create the room; the
        meeting is then marked failed, which frees the room for the next attempt.
        """
        if user_level < start_level:
            raise NotAllowedToStart(start_level, user_level)
        for _ in range(_SLUG_ATTEMPTS):
            open_meeting = await self._store.open_in_room(room_id)
            if open_meeting is not None:
                if open_meeting.command_event_id != command:
                    return StartOutcome(open_meeting, created=False)
                # The same command event again: a replay after a crash. Finish its work.
                live = await self._ensure_live(open_meeting, max_participants)
                return StartOutcome(live, created=True)
            replayed = await self._store.by_command_event(command)
            if replayed is not None:
                # This command already ran to completion (maybe ended since): do nothing new.
                return StartOutcome(replayed, created=True)
            slug = new_slug()
            candidate = Meeting(
                id=new_meeting_id(),
                room_id=room_id,
                slug=slug,
                livekit_room=livekit_room_for(slug),
                state=MeetingState.REQUESTED,
                started_by=user_id,
                command_event_id=command,
                created_at=self._clock.now_ms(),
            )
            if await self._store.insert_if_room_free(candidate):
                log.info(
                    "Meeting %s requested in %s by %s (LiveKit room %s)",
                    candidate.id,
                    room_id,
                    user_id,
                    candidate.livekit_room,
                )
                return StartOutcome(
                    await self._ensure_live(candidate, max_participants), created=True
                )
        raise RuntimeError(f"could not claim a meeting slug for {room_id}")

    async def restore_room(self, meeting: Meeting, max_participants: int = 0) -> bool:
        """Make a live meeting's LiveKit room again if the server has lost it; True if it had.

        A LiveKit server restarted without Redis forgets its rooms while the meeting goes on in
        Matrix and people's apps reconnect with their tokens: the same name, metadata and cap
        let the link and those tokens work again. Raises `LiveKitError` while LiveKit is away.
        """
        if await self._livekit.list_rooms([meeting.livekit_room]):
            return False
        await self._livekit.create_room(
            meeting.livekit_room, livekit_metadata(meeting), max_participants
        )
        log.warning("LiveKit had lost the room of meeting %s: made again", meeting.id)
        return True

    async def _ensure_live(self, meeting: Meeting, max_participants: int) -> Meeting:
        if meeting.state is not MeetingState.REQUESTED:
            return meeting
        metadata = livekit_metadata(meeting)
        try:
            await self._livekit.create_room(meeting.livekit_room, metadata, max_participants)
        except LiveKitError:
            await self._store.mark_failed(meeting.id, self._clock.now_ms())
            raise
        live = await self._store.mark_live(meeting.id, self._clock.now_ms())
        log.info("Meeting %s live in %s", meeting.id, meeting.room_id)
        return live

    async def open_meeting(self, room_id: RoomID) -> Meeting | None:
        return await self._store.open_in_room(room_id)

    async def end(
        self,
        room_id: RoomID,
        user_id: UserID,
        *,
        user_level: int,
        moderator_level: int,
    ) -> Meeting:
        """End the room's open meeting: its starter or a moderator may.

        LiveKit's room is deleted first; when LiveKit cannot be reached the meeting stays
        open (so the user can retry) and `LiveKitError` is raised.
        """
        meeting = await self._store.open_in_room(room_id)
        if meeting is None:
            raise NoOpenMeeting(await self._store.last_ended_in_room(room_id))
        if user_id != meeting.started_by and user_level < moderator_level:
            raise NotAllowedToEnd(meeting, moderator_level)
        await self._store.set_ender(meeting.id, user_id)
        try:
            existed = await self._livekit.delete_room(meeting.livekit_room)
        except LiveKitError:
            await self._store.set_ender(meeting.id, None)
            raise
        if not existed:
            log.info("LiveKit room %s was already gone", meeting.livekit_room)
        ended = await self._store.mark_ended(meeting.id, self._clock.now_ms(), user_id)
        log.info("Meeting %s in %s ended by %s", meeting.id, room_id, user_id)
        return ended

    async def by_slug(self, slug: str) -> Meeting | None:
        if not is_slug(slug):
            return None
        return await self._store.by_slug(MeetingSlug(slug))
