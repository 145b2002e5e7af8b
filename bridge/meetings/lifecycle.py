"""A meeting's life after `/visio`: LiveKit webhooks and the reconciler drive its state.

LiveKit is the truth about whether a call is live (ARCHITECTURE invariant 3). Webhooks are
applied at most once (their ids are recorded in the same transaction as their effects), in
whatever order they arrive; because delivery is not guaranteed, `reconcile()` compares the
meetings we believe are live with LiveKit's rooms and participants, and repairs the difference.
Each change bumps the meeting's status revision and tells the observer, which updates the room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.ids import MeetingID
from bridge.meetings.observers import MeetingObserver
from bridge.meetings.participants import ParticipantStore
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.meetings.webhooks import (
    EgressEnded,
    LiveKitEvent,
    ParticipantJoined,
    ParticipantLeft,
    RoomFinished,
    RoomStarted,
)
from bridge.ports import Clock, Database, LiveKitRooms
from bridge.recording.recordings import Recordings

log = logging.getLogger(__name__)

# Webhook ids are kept to spot LiveKit's retries, which come within minutes; a day is ample,
# and without a purge the table would grow with every webhook ever received.
WEBHOOK_ID_TTL_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class ReconcileReport:
    checked: int
    ended: int
    repaired_participants: int


def matrix_user_of(identity: str) -> str | None:
    """Members join with their Matrix user id as LiveKit identity; guests with `guest-…`."""
    return identity if identity.startswith("@") and ":" in identity else None


class MeetingLifecycle:
    def __init__(
        self,
        db: Database,
        meetings: MeetingStore,
        participants: ParticipantStore,
        livekit: LiveKitRooms,
        clock: Clock,
        observer: MeetingObserver,
        recordings: Recordings | None = None,
    ) -> None:
        self._recordings = recordings
        self._db = db
        self._meetings = meetings
        self._participants = participants
        self._livekit = livekit
        self._clock = clock
        self._observer = observer

    async def apply_webhook(self, webhook_id: str, event: LiveKitEvent | None) -> bool:
        """Apply a verified webhook once; False when its id was seen before."""
        changed: MeetingID | None = None
        async with self._db.acquire() as conn, conn.transaction():
            if webhook_id:
                fresh = await conn.fetchval(
                    "INSERT INTO livekit_webhooks (id, received_at) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    webhook_id,
                    self._clock.now_ms(),
                )
                if fresh is None:
                    return False
            if event is not None:
                changed = await self._apply(event)
        if changed is not None:
            self._observer.meeting_changed(changed)
        return True

    async def _apply(self, event: LiveKitEvent) -> MeetingID | None:
        meeting = await self._meetings.by_livekit_room(event.room)
        if meeting is None:
            return None  # not one of ours (or long forgotten): ignore
        match event:
            case RoomStarted():
                if meeting.state is MeetingState.REQUESTED:
                    await self._meetings.mark_live(meeting.id, event.at_ms)
                    return meeting.id
                return None
            case RoomFinished():
                return await self._finish(meeting, event.at_ms)
            case EgressEnded():
                if self._recordings is None:
                    return None
                outcome = await self._recordings.egress_ended(
                    event.egress_id, event.usable, event.filename, event.started_ns, event.error
                )
                if outcome is None:
                    return None
                await self._meetings.bump_status(meeting.id)
                return meeting.id
            case ParticipantJoined():
                # A join reported after the room finished (late delivery) changes nothing.
                if not meeting.is_open:
                    return None
                changed = await self._participants.joined(
                    meeting.id,
                    event.sid,
                    event.identity,
                    event.name,
                    matrix_user_of(event.identity),
                    event.at_ms,
                )
            case ParticipantLeft():
                changed = await self._participants.left(
                    meeting.id, event.sid, event.identity, event.name, event.at_ms
                )
        if not changed:
            return None
        await self._meetings.bump_status(meeting.id)
        return meeting.id

    async def _finish(self, meeting: Meeting, at_ms: int) -> MeetingID | None:
        if not meeting.is_open:
            return None
        await self._participants.close_all(meeting.id, at_ms)
        await self._meetings.mark_ended(meeting.id, at_ms, None)
        if self._recordings is not None:
            await self._recordings.queue_if_ready(meeting.id)
        log.info("Meeting %s in %s finished in LiveKit", meeting.id, meeting.room_id)
        return meeting.id

    async def reconcile(self) -> ReconcileReport:
        """Bring live meetings in line with LiveKit (after downtime or lost webhooks).

        Each pass also forgets webhook ids older than `WEBHOOK_ID_TTL_MS`."""
        await self._db.execute(
            "DELETE FROM livekit_webhooks WHERE received_at < $1",
            self._clock.now_ms() - WEBHOOK_ID_TTL_MS,
        )
        live = [m for m in await self._meetings.open_meetings() if m.state is MeetingState.LIVE]
        if not live:
            return ReconcileReport(0, 0, 0)
        rooms = {
            room.name for room in await self._livekit.list_rooms([m.livekit_room for m in live])
        }
        ended = repaired = 0
        for meeting in live:
            now = self._clock.now_ms()
            if meeting.livekit_room not in rooms:
                log.info("Meeting %s: LiveKit room gone, ending it (missed webhook)", meeting.id)
                async with self._db.acquire() as conn, conn.transaction():
                    changed = await self._finish(meeting, now)
                ended += 1
            else:
                changed = None
                fixes = await self._repair_participants(meeting, now)
                if fixes:
                    repaired += fixes
                    await self._meetings.bump_status(meeting.id)
                    changed = meeting.id
            if changed is not None:
                self._observer.meeting_changed(changed)
        return ReconcileReport(len(live), ended, repaired)

    async def _repair_participants(self, meeting: Meeting, now: int) -> int:
        in_livekit = {p.sid: p for p in await self._livekit.list_participants(meeting.livekit_room)}
        recorded = {p.sid: p for p in await self._participants.of_meeting(meeting.id)}
        fixes = 0
        for sid, presence in recorded.items():
            if presence.present and sid not in in_livekit:
                fixes += await self._participants.left(
                    meeting.id, sid, presence.identity, presence.display_name, now
                )
        for sid, participant in in_livekit.items():
            known = recorded.get(sid)
            if known is None or known.joined_at is None:
                fixes += await self._participants.joined(
                    meeting.id,
                    sid,
                    participant.identity,
                    participant.name,
                    matrix_user_of(participant.identity),
                    participant.joined_at_ms or now,
                )
        return fixes
