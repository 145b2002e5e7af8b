"""Which process holds each live call: leases in the database, and the history of their holders.

The bridge's own participant in a call (chat mirror, per-person recording) must be in the call
from exactly one process: the bridge itself, or one of the `visio-bridge call-worker`s sharing
its PostgreSQL database. A process holds a call by a lease (`call_leases`, one row per meeting)
that it renews while alive; a process that dies simply stops renewing, and once the lease has
run out another one claims the call. Every holder's span is kept (`call_holds`) so that the
transcript can say where nobody was in the call to record it.

At any instant a lease is either renewable by its owner (`lease_until >= now`) or claimable by
anyone else (`lease_until < now`), never both, and each of those is a single guarded statement
re-checked on the row it changes: two processes racing for one call cannot both win, on
PostgreSQL (the loser's upsert waits for the winner's row, then its WHERE fails) and SQLite
(writes are serialised) alike. The processes compare their own clocks with `lease_until`, so
their clocks must agree to well within a lease minus the renewal interval (NTP does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.ids import MeetingID
from bridge.ports import Clock, Database


@dataclass(frozen=True)
class Hold:
    """One process's span holding a call: from its claim to its last renewal (or release)."""

    owner: str
    since: int
    until: int


class CallLeases:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def claim(self, meeting_id: MeetingID, owner: str, lease_ms: int) -> bool:
        """Take the call if nobody holds it or its holder's lease ran out; True if taken.

        A claim by the lease's own unexpired owner is refused too: `renew` is how it keeps it.
        Winning starts a new span in the history.
        """
        now = self._clock.now_ms()
        async with self._db.acquire() as conn, conn.transaction():
            won = await conn.fetchval(
                "INSERT INTO call_leases (meeting_id, owner, lease_until, held_since) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id) DO UPDATE SET "
                "owner=excluded.owner, lease_until=excluded.lease_until, "
                "held_since=excluded.held_since "
                "WHERE call_leases.lease_until < excluded.held_since RETURNING meeting_id",
                meeting_id,
                owner,
                now + lease_ms,
                now,
            )
            if won is None:
                return False
            # The span ends at the holder's last sign of life, not at its lease's end: a holder
            # that dies right after renewing was not in the call for the rest of its lease.
            # (The same owner winning twice in one millisecond keeps its first span.)
            await conn.execute(
                "INSERT INTO call_holds (meeting_id, owner, since, until) VALUES ($1, $2, $3, $3) "
                "ON CONFLICT DO NOTHING",
                meeting_id,
                owner,
                now,
            )
        return True

    async def renew(self, owner: str, lease_ms: int) -> list[MeetingID]:
        """Extend every lease `owner` still holds and return those calls.

        A lease that ran out is not renewed even if nobody has claimed it yet, and one that
        another process took over is not returned: the caller has lost both.
        """
        now = self._clock.now_ms()
        async with self._db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE call_leases SET lease_until=$2 WHERE owner=$1 AND lease_until >= $3 "
                "RETURNING meeting_id",
                owner,
                now + lease_ms,
                now,
            )
            if rows:
                await conn.execute(
                    "UPDATE call_holds SET until=$2 WHERE owner=$1 AND EXISTS ("
                    "  SELECT 1 FROM call_leases WHERE call_leases.meeting_id=call_holds.meeting_id"
                    "  AND call_leases.owner=$1 AND call_leases.held_since=call_holds.since"
                    "  AND call_leases.lease_until >= $2"
                    ")",
                    owner,
                    now,
                )
        return sorted(MeetingID(row["meeting_id"]) for row in rows)

    async def release(self, meeting_id: MeetingID, owner: str) -> bool:
        """Hand the call over at once (clean shutdown, call no longer wanted); True if `owner`
        still had it."""
        now = self._clock.now_ms()
        async with self._db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "DELETE FROM call_leases WHERE meeting_id=$1 AND owner=$2 "
                "RETURNING held_since, lease_until",
                meeting_id,
                owner,
            )
            if row is None:
                return False
            if row["lease_until"] >= now:
                # Held until now. (A lease that had run out ends where its last renewal put it.)
                await conn.execute(
                    "UPDATE call_holds SET until=$4 WHERE meeting_id=$1 AND owner=$2 AND since=$3",
                    meeting_id,
                    owner,
                    row["held_since"],
                    now,
                )
        return True

    async def holder(self, meeting_id: MeetingID) -> str | None:
        """The process holding the call now, or None when it is free (or its lease ran out)."""
        value = await self._db.fetchval(
            "SELECT owner FROM call_leases WHERE meeting_id=$1 AND lease_until >= $2",
            meeting_id,
            self._clock.now_ms(),
        )
        return str(value) if value is not None else None

    async def holders(self) -> dict[MeetingID, str]:
        """Every call held now, with its holder."""
        rows = await self._db.fetch(
            "SELECT meeting_id, owner FROM call_leases WHERE lease_until >= $1",
            self._clock.now_ms(),
        )
        return {MeetingID(row["meeting_id"]): str(row["owner"]) for row in rows}

    async def holds(self, meeting_id: MeetingID) -> list[Hold]:
        """Who held the call, span by span, oldest first."""
        rows = await self._db.fetch(
            "SELECT owner, since, until FROM call_holds WHERE meeting_id=$1 ORDER BY since, owner",
            meeting_id,
        )
        return [Hold(owner=row["owner"], since=row["since"], until=row["until"]) for row in rows]


def uncovered(
    holds: Iterable[Hold], start_ms: int, end_ms: int, min_gap_ms: int = 0
) -> list[tuple[int, int]]:
    """The stretches of [start_ms, end_ms] that no span covers, each at least `min_gap_ms` long
    (a live holder's span trails its last renewal by up to a renewal interval: not a gap worth
    telling)."""
    gaps: list[tuple[int, int]] = []
    covered_to = start_ms
    for hold in sorted(holds, key=lambda hold: hold.since):
        if hold.until <= covered_to:
            continue
        if hold.since >= end_ms:
            break
        if hold.since > covered_to:
            gaps.append((covered_to, hold.since))
        covered_to = hold.until
    if covered_to < end_ms:
        gaps.append((covered_to, end_ms))
    return [
        (gap_start, gap_end)
        for gap_start, gap_end in gaps
        if gap_end - gap_start >= max(1, min_gap_ms)
    ]
