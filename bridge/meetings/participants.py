"""Who was in a meeting and when: one presence interval per LiveKit connection (participant sid).

Webhooks may arrive out of order or twice, so each write is an upsert that only fills in what
is missing: a `left` seen before its `joined` keeps its time, and the later `joined` adds its
own without reopening the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ids import MeetingID
from bridge.ports import Database


@dataclass(frozen=True)
class Presence:
    sid: str
    identity: str
    display_name: str
    matrix_user_id: str | None
    joined_at: int | None
    left_at: int | None

    @property
    def present(self) -> bool:
        return self.joined_at is not None and self.left_at is None


class ParticipantStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def joined(
        self,
        meeting_id: MeetingID,
        sid: str,
        identity: str,
        display_name: str,
        matrix_user_id: str | None,
        at: int,
    ) -> bool:
        """Record a join; True if it changed anything (not a duplicate)."""
        changed = await self._db.fetchval(
            "INSERT INTO participants (meeting_id, sid, identity, display_name, matrix_user_id, "
            "joined_at) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (meeting_id, sid) DO UPDATE SET joined_at = excluded.joined_at, "
            "display_name = excluded.display_name "
            "WHERE participants.joined_at IS NULL RETURNING sid",
            meeting_id,
            sid,
            identity,
            display_name,
            matrix_user_id,
            at,
        )
        return changed is not None

    async def left(
        self, meeting_id: MeetingID, sid: str, identity: str, display_name: str, at: int
    ) -> bool:
        """Record a departure; True if it changed anything."""
        changed = await self._db.fetchval(
            "INSERT INTO participants (meeting_id, sid, identity, display_name, left_at) "
            "VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (meeting_id, sid) DO UPDATE SET left_at = excluded.left_at "
            "WHERE participants.left_at IS NULL RETURNING sid",
            meeting_id,
            sid,
            identity,
            display_name,
            at,
        )
        return changed is not None

    async def close_all(self, meeting_id: MeetingID, at: int) -> None:
        """Everyone still present leaves at `at` (the room finished)."""
        await self._db.execute(
            "UPDATE participants SET left_at=$2 WHERE meeting_id=$1 AND left_at IS NULL "
            "AND joined_at IS NOT NULL",
            meeting_id,
            at,
        )

    async def of_meeting(self, meeting_id: MeetingID) -> list[Presence]:
        rows = await self._db.fetch(
            "SELECT sid, identity, display_name, matrix_user_id, joined_at, left_at "
            "FROM participants WHERE meeting_id=$1 ORDER BY joined_at, sid",
            meeting_id,
        )
        return [
            Presence(
                sid=row["sid"],
                identity=row["identity"],
                display_name=row["display_name"],
                matrix_user_id=row["matrix_user_id"],
                joined_at=row["joined_at"],
                left_at=row["left_at"],
            )
            for row in rows
        ]


@dataclass(frozen=True)
class Attendance:
    """What the status message shows: who is in now, and how many came in all."""

    present_names: list[str]
    total_people: int


def attendance(presences: list[Presence]) -> Attendance:
    present: dict[str, str] = {}
    everyone: set[str] = set()
    for presence in presences:
        if presence.joined_at is None:
            continue
        everyone.add(presence.identity)
        if presence.present:
            present[presence.identity] = presence.display_name or presence.identity
    return Attendance(
        present_names=sorted(present.values(), key=str.casefold), total_people=len(everyone)
    )
