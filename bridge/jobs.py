"""A durable job queue in the bridge's database, claimed by workers with leases.

Workers (`visio-bridge transcribe-worker`, on any machine that reaches the database, or the
bridge itself with the embedded SQLite default) claim one job at a time by taking a lease. A
worker that dies simply lets its lease run out, and the job is claimed again. Claiming is a
single guarded UPDATE: two workers racing for the same row cannot both win (the state check is
re-evaluated on the row the winner just changed), on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from bridge.ids import MeetingID
from bridge.ports import Clock, Database, Row


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    meeting_id: MeetingID
    payload: dict[str, Any]
    attempts: int


def _job(row: Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        meeting_id=MeetingID(row["meeting_id"]),
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
    )


class JobQueue:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def enqueue(self, kind: str, meeting_id: MeetingID, payload: dict[str, Any]) -> bool:
        """Queue a job; False when this meeting already has one of this kind."""
        now = self._clock.now_ms()
        created = await self._db.fetchval(
            "INSERT INTO jobs (id, kind, meeting_id, payload, run_after, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING RETURNING id",
            secrets.token_hex(12),
            kind,
            meeting_id,
            json.dumps(payload),
            now,
        )
        return created is not None

    async def claim(self, kind: str, owner: str, lease_ms: int) -> Job | None:
        now = self._clock.now_ms()
        row = await self._db.fetchrow(
            "UPDATE jobs SET state='running', lease_owner=$1, lease_until=$2, "
            "attempts=attempts+1 WHERE id = ("
            "  SELECT id FROM jobs WHERE kind=$3 AND ("
            "    (state='queued' AND run_after <= $4) OR (state='running' AND lease_until < $4)"
            "  ) ORDER BY created_at LIMIT 1"
            ") AND ((state='queued' AND run_after <= $4) OR (state='running' AND lease_until < $4))"
            " RETURNING id, kind, meeting_id, payload, attempts",
            owner,
            now + lease_ms,
            kind,
            now,
        )
        return _job(row) if row else None

    async def complete(self, job: Job, owner: str) -> bool:
        """Mark done; False when the lease was lost meanwhile (another worker took over)."""
        done = await self._db.fetchval(
            "UPDATE jobs SET state='done', finished_at=$3 WHERE id=$1 AND lease_owner=$2 "
            "AND state='running' RETURNING id",
            job.id,
            owner,
            self._clock.now_ms(),
        )
        return done is not None

    async def fail(self, job: Job, owner: str, error: str, retry_in_ms: int | None) -> None:
        """Record a failure: retry after `retry_in_ms`, or give up for good when it is None."""
        now = self._clock.now_ms()
        if retry_in_ms is None:
            await self._db.execute(
                "UPDATE jobs SET state='failed', last_error=$3, finished_at=$4 "
                "WHERE id=$1 AND lease_owner=$2",
                job.id,
                owner,
                error[:2000],
                now,
            )
        else:
            await self._db.execute(
                "UPDATE jobs SET state='queued', last_error=$3, run_after=$4, lease_owner=NULL, "
                "lease_until=NULL WHERE id=$1 AND lease_owner=$2",
                job.id,
                owner,
                error[:2000],
                now + retry_in_ms,
            )

    async def postpone(self, job: Job, owner: str, delay_ms: int) -> None:
        """Not ready yet (its inputs are still being written): back in the queue, later, and
        this claim does not count as an attempt."""
        await self._db.execute(
            "UPDATE jobs SET state='queued', run_after=$3, attempts=attempts-1, "
            "lease_owner=NULL, lease_until=NULL WHERE id=$1 AND lease_owner=$2 AND state='running'",
            job.id,
            owner,
            self._clock.now_ms() + delay_ms,
        )

    async def state_of(self, kind: str, meeting_id: MeetingID) -> str | None:
        value = await self._db.fetchval(
            "SELECT state FROM jobs WHERE kind=$1 AND meeting_id=$2", kind, meeting_id
        )
        return str(value) if value is not None else None
