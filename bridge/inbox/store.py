"""The inbox: homeserver transactions made durable before they are acknowledged.

A transaction's events are written here in one database transaction, and only then does the
homeserver get its 200. Processing reads from here, so a crash after the ack loses nothing
(ARCHITECTURE invariant 1). Transaction ids and event ids are unique keys, so a transaction the
homeserver retries, or an event it sends twice, is stored once.

Events hold what people write (chat included), so they are not kept once handled: the
retention purge (bridge/retention.py) drops a handled event's content soon after, keeping its
id a while longer to recognise a late retry, then deletes the row. An event waiting to be
handled (pending, or waiting for a retry) is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.ports import Database

# What a handled event's payload becomes once its content is purged (the column is NOT NULL).
PURGED_PAYLOAD = "{}"
_BATCH = 1000


@dataclass(frozen=True)
class InboxItem:
    seq: int
    event_id: str
    room_id: str | None
    event: dict[str, Any]
    attempts: int


class InboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def accept(self, txn_id: str, events: Sequence[Mapping[str, Any]], now_ms: int) -> int:
        """Store a transaction's events; returns how many were new.

        Event ids are the identity, not transaction ids: Synapse on SQLite numbers its
        transactions from 1 again after a restart, so a "known" transaction id may carry new
        events, and dropping it would make the bot deaf. A true retry adds nothing.
        """
        rows = [
            (event["event_id"], txn_id, event.get("room_id"), json.dumps(event, ensure_ascii=False))
            for event in events
            if isinstance(event.get("event_id"), str)
        ]
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO appservice_txns (txn_id, received_at, event_count) "
                "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                txn_id,
                now_ms,
                len(events),
            )
            new = 0
            for event_id, txn, room_id, payload in rows:
                stored = await conn.fetchval(
                    "INSERT INTO inbox (event_id, txn_id, room_id, payload, received_at, "
                    "next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5) "
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                    event_id,
                    txn,
                    room_id,
                    payload,
                    now_ms,
                )
                new += stored is not None
            return new

    async def due(self, now_ms: int, limit: int = 200) -> list[InboxItem]:
        rows = await self._db.fetch(
            "SELECT seq, event_id, room_id, payload, attempts FROM inbox "
            "WHERE state='pending' AND next_attempt_at <= $1 ORDER BY seq LIMIT $2",
            now_ms,
            limit,
        )
        return [
            InboxItem(
                seq=row["seq"],
                event_id=row["event_id"],
                room_id=row["room_id"],
                event=json.loads(row["payload"]),
                attempts=row["attempts"],
            )
            for row in rows
        ]

    async def next_retry_at(self) -> int | None:
        value = await self._db.fetchval(
            "SELECT MIN(next_attempt_at) FROM inbox WHERE state='pending'"
        )
        return int(value) if value is not None else None

    async def mark_done(self, seq: int, now_ms: int) -> None:
        await self._db.execute(
            "UPDATE inbox SET state='done', processed_at=$2 WHERE seq=$1", seq, now_ms
        )

    async def mark_failed(
        self, seq: int, error: str, *, retry_at_ms: int | None, now_ms: int
    ) -> None:
        """Record a failed attempt: retry at `retry_at_ms`, or give up when it is None."""
        if retry_at_ms is None:
            await self._db.execute(
                "UPDATE inbox SET state='failed', attempts=attempts+1, last_error=$2, "
                "processed_at=$3 WHERE seq=$1",
                seq,
                error,
                now_ms,
            )
        else:
            await self._db.execute(
                "UPDATE inbox SET attempts=attempts+1, last_error=$2, next_attempt_at=$3 "
                "WHERE seq=$1",
                seq,
                error,
                retry_at_ms,
            )

    async def pending_count(self) -> int:
        return int(await self._db.fetchval("SELECT COUNT(*) FROM inbox WHERE state='pending'"))

    async def forget_payloads(self, processed_before_ms: int) -> int:
        """Drop the content of the events handled before `processed_before_ms` (their ids stay,
        for de-duplication); returns how many were dropped."""
        return await self._in_batches(
            # The literal, as in the partial index inbox_unpurged (migrations/v07).
            "UPDATE inbox SET payload='{}' WHERE seq IN (SELECT seq FROM inbox "
            "WHERE processed_at < $1 AND state <> 'pending' AND payload <> '{}' LIMIT $2) "
            "RETURNING seq",
            processed_before_ms,
        )

    async def forget_events(self, processed_before_ms: int) -> int:
        """Delete the events handled before `processed_before_ms`, and the transactions received
        before it; returns how many events were deleted."""
        deleted = await self._in_batches(
            "DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox "
            "WHERE processed_at < $1 AND state <> 'pending' LIMIT $2) RETURNING seq",
            processed_before_ms,
        )
        await self._in_batches(
            "DELETE FROM appservice_txns WHERE txn_id IN (SELECT txn_id FROM appservice_txns "
            "WHERE received_at < $1 LIMIT $2) RETURNING txn_id",
            processed_before_ms,
        )
        return deleted

    async def _in_batches(self, query: str, before_ms: int) -> int:
        """Run a purge in short statements, so a large backlog never holds a long lock."""
        total = 0
        while True:
            rows = await self._db.fetch(query, before_ms, _BATCH)
            total += len(rows)
            if len(rows) < _BATCH:
                return total
