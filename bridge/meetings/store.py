"""Meetings: the record, its states, and its repository.

A meeting is one LiveKit call that belongs to one Matrix room. Its life:
`requested` (row written, LiveKit room being created) → `live` → `ended`; `failed` when
LiveKit refused to create it. At most one meeting per Matrix room is `requested` or `live`,
enforced by a partial unique index (migrations/v01), never by check-then-insert.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.ids import EventID, LiveKitRoomName, MeetingID, MeetingSlug, RoomID, UserID
from bridge.ports import Connection, Database, Row


class MeetingState(enum.StrEnum):
    REQUESTED = "requested"
    LIVE = "live"
    ENDED = "ended"
    FAILED = "failed"


# The states the one-live-meeting-per-room index covers; keep in step with the migration.
OPEN_STATES = (MeetingState.REQUESTED, MeetingState.LIVE)


@dataclass(frozen=True)
class Meeting:
    id: MeetingID
    room_id: RoomID
    slug: MeetingSlug
    livekit_room: LiveKitRoomName
    state: MeetingState
    started_by: UserID
    command_event_id: EventID | None
    created_at: int
    started_at: int | None = None
    ended_at: int | None = None
    ended_by: UserID | None = None
    status_event_id: EventID | None = None
    # Changes worth showing in the status message, and the last one the room has seen.
    status_rev: int = 0
    status_sent_rev: int = 0
    end_notice_event_id: EventID | None = None
    # Recording for the transcript (see bridge/recording/recordings.py for the states).
    egress_id: str | None = None
    recording_path: str | None = None
    recording_started_ns: int | None = None
    transcript_state: str = "off"
    transcript_event_id: EventID | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


_INSERT_COLUMNS = (
    "id, room_id, slug, livekit_room, state, started_by, command_event_id, created_at, "
    "started_at, ended_at, ended_by, status_event_id"
)
_COLUMNS = (
    _INSERT_COLUMNS
    + ", status_rev, status_sent_rev, end_notice_event_id, egress_id, recording_path, "
    "recording_started_ns, transcript_state, transcript_event_id"
)


def _meeting(row: Row) -> Meeting:
    return Meeting(
        id=MeetingID(row["id"]),
        room_id=RoomID(row["room_id"]),
        slug=MeetingSlug(row["slug"]),
        livekit_room=LiveKitRoomName(row["livekit_room"]),
        state=MeetingState(row["state"]),
        started_by=UserID(row["started_by"]),
        command_event_id=row["command_event_id"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        ended_by=row["ended_by"],
        status_event_id=row["status_event_id"],
        status_rev=row["status_rev"],
        status_sent_rev=row["status_sent_rev"],
        end_notice_event_id=row["end_notice_event_id"],
        egress_id=row["egress_id"],
        recording_path=row["recording_path"],
        recording_started_ns=row["recording_started_ns"],
        transcript_state=row["transcript_state"],
        transcript_event_id=row["transcript_event_id"],
    )


class MeetingStore:
    """Repository of meetings over the database port."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_if_room_free(self, meeting: Meeting) -> bool:
        """Insert `meeting` unless its room already has an open one; True if inserted.

        The partial unique index arbitrates between concurrent starters; ON CONFLICT turns
        the loser's insert into a no-op so it can go on to read the winner.
        """
        inserted = await self._db.fetchval(
            f"INSERT INTO meetings ({_INSERT_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT DO NOTHING RETURNING id",
            meeting.id,
            meeting.room_id,
            meeting.slug,
            meeting.livekit_room,
            meeting.state.value,
            meeting.started_by,
            meeting.command_event_id,
            meeting.created_at,
            meeting.started_at,
            meeting.ended_at,
            meeting.ended_by,
            meeting.status_event_id,
        )
        return inserted is not None

    async def open_in_room(self, room_id: RoomID) -> Meeting | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM meetings WHERE room_id=$1 AND state IN ($2, $3)",
            room_id,
            *OPEN_STATES,
        )
        return _meeting(row) if row else None

    async def last_ended_in_room(self, room_id: RoomID) -> Meeting | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM meetings WHERE room_id=$1 AND ended_at IS NOT NULL "
            "ORDER BY ended_at DESC LIMIT 1",
            room_id,
        )
        return _meeting(row) if row else None

    async def by_slug(self, slug: MeetingSlug) -> Meeting | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM meetings WHERE slug=$1", slug)
        return _meeting(row) if row else None

    async def by_id(self, meeting_id: MeetingID) -> Meeting | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM meetings WHERE id=$1", meeting_id)
        return _meeting(row) if row else None

    async def by_command_event(self, event_id: EventID) -> Meeting | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM meetings WHERE command_event_id=$1", event_id
        )
        return _meeting(row) if row else None

    async def by_livekit_room(self, name: str) -> Meeting | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM meetings WHERE livekit_room=$1", name
        )
        return _meeting(row) if row else None

    async def with_unsent_status(self) -> list[Meeting]:
        """Meetings whose status message is behind (e.g. the bridge stopped before editing it)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM meetings WHERE status_event_id IS NOT NULL AND "
            "(status_rev > status_sent_rev OR (state=$1 AND end_notice_event_id IS NULL))",
            MeetingState.ENDED.value,
        )
        return [_meeting(row) for row in rows]

    async def bump_status(self, meeting_id: MeetingID) -> None:
        await self._db.execute(
            "UPDATE meetings SET status_rev = status_rev + 1 WHERE id=$1", meeting_id
        )

    async def mark_status_sent(self, meeting_id: MeetingID, rev: int) -> None:
        # Never move backwards: two overlapping edits may finish out of order.
        await self._db.execute(
            "UPDATE meetings SET status_sent_rev=$2 WHERE id=$1 AND status_sent_rev < $2",
            meeting_id,
            rev,
        )

    async def set_end_notice(self, meeting_id: MeetingID, event_id: EventID) -> None:
        await self._db.execute(
            "UPDATE meetings SET end_notice_event_id=$2 WHERE id=$1", meeting_id, event_id
        )

    async def set_transcript_state(
        self, meeting_id: MeetingID, state: str, *, only_from: tuple[str, ...] = ()
    ) -> bool:
        """Move the transcript state (only from `only_from` states when given); True if moved."""
        guard = ""
        if only_from:
            placeholders = ", ".join(f"${i}" for i in range(3, 3 + len(only_from)))
            guard = f" AND transcript_state IN ({placeholders})"
        moved = await self._db.fetchval(
            f"UPDATE meetings SET transcript_state=$2 WHERE id=$1{guard} RETURNING id",
            meeting_id,
            state,
            *only_from,
        )
        return moved is not None

    async def set_egress(self, meeting_id: MeetingID, egress_id: str) -> None:
        await self._db.execute(
            "UPDATE meetings SET egress_id=$2, transcript_state='recording' WHERE id=$1",
            meeting_id,
            egress_id,
        )

    async def set_recording(self, meeting_id: MeetingID, path: str, started_ns: int) -> None:
        await self._db.execute(
            "UPDATE meetings SET recording_path=$2, recording_started_ns=$3, "
            "transcript_state='recorded' WHERE id=$1 AND transcript_state='recording'",
            meeting_id,
            path,
            started_ns,
        )

    async def start_track_recording(self, meeting_id: MeetingID, started_ns: int) -> bool:
        """The bridge's participant records each person from now on: `off` → `recording`."""
        moved = await self._db.fetchval(
            "UPDATE meetings SET transcript_state='recording', recording_started_ns=$2 "
            "WHERE id=$1 AND transcript_state='off' RETURNING id",
            meeting_id,
            started_ns,
        )
        return moved is not None

    async def by_egress(self, egress_id: str) -> Meeting | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM meetings WHERE egress_id=$1", egress_id
        )
        return _meeting(row) if row else None

    async def set_transcript_event(self, meeting_id: MeetingID, event_id: EventID) -> None:
        await self._db.execute(
            "UPDATE meetings SET transcript_event_id=$2 WHERE id=$1", meeting_id, event_id
        )

    async def open_meetings(self) -> list[Meeting]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM meetings WHERE state IN ($1, $2)", *OPEN_STATES
        )
        return [_meeting(row) for row in rows]

    async def mark_live(self, meeting_id: MeetingID, at: int) -> Meeting:
        return await self._transition(
            meeting_id,
            "state=$2, started_at=COALESCE(started_at, $3)",
            (MeetingState.LIVE.value, at),
            from_states=(MeetingState.REQUESTED,),
        )

    async def mark_failed(self, meeting_id: MeetingID, at: int) -> Meeting:
        return await self._transition(
            meeting_id,
            "state=$2, ended_at=$3",
            (MeetingState.FAILED.value, at),
            from_states=(MeetingState.REQUESTED,),
        )

    async def mark_ended(self, meeting_id: MeetingID, at: int, by: UserID | None) -> Meeting:
        return await self._transition(
            meeting_id,
            "state=$2, ended_at=$3, ended_by=COALESCE($4, ended_by)",
            (MeetingState.ENDED.value, at, by),
            from_states=OPEN_STATES,
        )

    async def set_ender(self, meeting_id: MeetingID, by: UserID | None) -> None:
        """Note who is ending an open meeting, before LiveKit is asked to close it: LiveKit's
        room_finished webhook may then come back before our own transition is recorded."""
        await self._db.execute(
            "UPDATE meetings SET ended_by=$2 WHERE id=$1 AND state IN ($3, $4)",
            meeting_id,
            by,
            *OPEN_STATES,
        )

    async def set_status_event(self, meeting_id: MeetingID, event_id: EventID) -> None:
        await self._db.execute(
            # The message just posted shows the current state: nothing is owed to the room yet.
            "UPDATE meetings SET status_event_id=$2, status_sent_rev=status_rev "
            "WHERE id=$1 AND status_event_id IS NULL",
            meeting_id,
            event_id,
        )

    async def _transition(
        self,
        meeting_id: MeetingID,
        assignments: str,
        values: tuple[object, ...],
        *,
        from_states: tuple[MeetingState, ...],
    ) -> Meeting:
        # The state guard in the WHERE clause makes every transition idempotent and
        # race-free: a second, late or replayed transition simply updates nothing.
        first = len(values) + 2
        guard = ", ".join(f"${i}" for i in range(first, first + len(from_states)))
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE meetings SET {assignments}, status_rev = status_rev + 1 "
                f"WHERE id=$1 AND state IN ({guard})",
                meeting_id,
                *values,
                *(state.value for state in from_states),
            )
            return await _fetch(conn, meeting_id)


async def _fetch(conn: Connection, meeting_id: MeetingID) -> Meeting:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM meetings WHERE id=$1", meeting_id)
    if row is None:
        raise LookupError(f"meeting {meeting_id} vanished")
    return _meeting(row)
