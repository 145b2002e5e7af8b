"""The database layer on PostgreSQL and SQLite: migrations, one open meeting per room, inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from harness import DatabaseTarget
from mautrix.util.async_db import Database, DatabaseNotOwned, ForeignTablesFound
from mautrix.util.async_db.errors import UnsupportedDatabaseVersion

from bridge.ids import EventID, MeetingID, MeetingSlug, RoomID, UserID, livekit_room_for
from bridge.inbox.store import InboxStore
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from migrations import OWNER_NAME, upgrade_table

ROOM = RoomID("!room:localhost")


def _open(target: DatabaseTarget, *, owner: str = OWNER_NAME) -> Database:
    return Database.create(
        target.url,
        upgrade_table=upgrade_table,
        db_args=dict(target.args),
        owner_name=owner,
        ignore_foreign_tables=False,
    )


@pytest.fixture
async def db(database: DatabaseTarget) -> AsyncIterator[Database]:
    opened = _open(database)
    await opened.start()
    yield opened
    await opened.stop()


def _meeting(n: int, room: RoomID = ROOM, command: str | None = None) -> Meeting:
    slug = MeetingSlug(f"abc-defg-{n:03d}")
    return Meeting(
        id=MeetingID(f"m{n}"),
        room_id=room,
        slug=slug,
        livekit_room=livekit_room_for(slug),
        state=MeetingState.REQUESTED,
        started_by=UserID("@alice:localhost"),
        command_event_id=EventID(command or f"$cmd{n}"),
        created_at=1000 + n,
    )


async def test_fresh_database_is_at_latest_version(db: Database) -> None:
    version = await db.fetchval("SELECT version FROM version")
    assert version == len(upgrade_table.upgrades)
    assert await db.table_exists("meetings") and await db.table_exists("inbox")


async def test_refuses_a_newer_schema(database: DatabaseTarget, db: Database) -> None:
    await db.execute("UPDATE version SET version=$1", len(upgrade_table.upgrades) + 1)
    newer = _open(database)
    with pytest.raises(UnsupportedDatabaseVersion):
        await newer.start()
    await newer.stop()


async def test_refuses_a_database_owned_by_another_program(
    database: DatabaseTarget, db: Database
) -> None:
    other = _open(database, owner="some-other-bridge")
    with pytest.raises(DatabaseNotOwned):
        await other.start()
    await other.stop()


async def test_refuses_a_homeservers_database(database: DatabaseTarget) -> None:
    synapse_like = Database.create(database.url, db_args=dict(database.args))
    await synapse_like.start()
    await synapse_like.execute("CREATE TABLE state_groups_state (id INTEGER)")
    await synapse_like.stop()
    ours = _open(database)
    with pytest.raises(ForeignTablesFound):
        await ours.start()
    await ours.stop()


async def test_one_open_meeting_per_room(db: Database) -> None:
    store = MeetingStore(db)
    assert await store.insert_if_room_free(_meeting(1))
    assert not await store.insert_if_room_free(_meeting(2))
    open_meeting = await store.open_in_room(ROOM)
    assert open_meeting is not None and open_meeting.id == "m1"
    # Another room is independent.
    assert await store.insert_if_room_free(_meeting(3, RoomID("!other:localhost")))
    # Once ended, the room is free again.
    await store.mark_live(MeetingID("m1"), 2000)
    ended = await store.mark_ended(MeetingID("m1"), 3000, UserID("@alice:localhost"))
    assert ended.state is MeetingState.ENDED and ended.started_at == 2000
    assert await store.insert_if_room_free(_meeting(4))


async def test_concurrent_inserts_leave_exactly_one_open_meeting(db: Database) -> None:
    store = MeetingStore(db)
    results = await asyncio.gather(*(store.insert_if_room_free(_meeting(n)) for n in range(20)))
    assert results.count(True) == 1
    count = await db.fetchval("SELECT COUNT(*) FROM meetings WHERE room_id=$1", ROOM)
    assert count == 1


async def test_transitions_are_idempotent_and_guarded(db: Database) -> None:
    store = MeetingStore(db)
    await store.insert_if_room_free(_meeting(1))
    live = await store.mark_live(MeetingID("m1"), 2000)
    again = await store.mark_live(MeetingID("m1"), 9999)
    assert live.started_at == again.started_at == 2000
    await store.mark_ended(MeetingID("m1"), 3000, None)
    # A late "failed" (e.g. a replayed LiveKit error) cannot reopen or rewrite an ended meeting.
    after = await store.mark_failed(MeetingID("m1"), 4000)
    assert after.state is MeetingState.ENDED and after.ended_at == 3000


async def test_status_event_is_set_once(db: Database) -> None:
    store = MeetingStore(db)
    await store.insert_if_room_free(_meeting(1))
    await store.set_status_event(MeetingID("m1"), EventID("$first"))
    await store.set_status_event(MeetingID("m1"), EventID("$second"))
    meeting = await store.by_id(MeetingID("m1"))
    assert meeting is not None and meeting.status_event_id == "$first"


def _event(n: int, room: str = ROOM) -> dict[str, object]:
    return {
        "event_id": f"$ev{n}",
        "room_id": room,
        "type": "m.room.message",
        "sender": "@alice:localhost",
        "content": {"msgtype": "m.text", "body": f"message {n} — é"},
    }


async def test_inbox_stores_a_transaction_once(db: Database) -> None:
    inbox = InboxStore(db)
    assert await inbox.accept("txn1", [_event(1), _event(2)], now_ms=100)
    assert not await inbox.accept("txn1", [_event(1), _event(2)], now_ms=200)
    # The same event inside another transaction is not stored twice either.
    assert await inbox.accept("txn2", [_event(2), _event(3)], now_ms=300)
    due = await inbox.due(now_ms=1000)
    assert [item.event_id for item in due] == ["$ev1", "$ev2", "$ev3"]
    assert due[0].event["content"]["body"] == "message 1 — é"


async def test_inbox_retry_schedule_and_give_up(db: Database) -> None:
    inbox = InboxStore(db)
    await inbox.accept("txn1", [_event(1), _event(2)], now_ms=100)
    first, second = await inbox.due(now_ms=100)
    await inbox.mark_failed(first.seq, "boom", retry_at_ms=5000, now_ms=100)
    await inbox.mark_done(second.seq, now_ms=150)
    assert await inbox.due(now_ms=4999) == []
    assert await inbox.next_retry_at() == 5000
    [retry] = await inbox.due(now_ms=5000)
    assert retry.attempts == 1
    await inbox.mark_failed(retry.seq, "boom again", retry_at_ms=None, now_ms=5000)
    assert await inbox.due(now_ms=10**12) == []
    assert await inbox.pending_count() == 0
    row = await db.fetchrow("SELECT state, attempts, last_error FROM inbox WHERE seq=$1", first.seq)
    assert row is not None
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 2, "boom again")


async def test_inbox_keeps_arrival_order_across_transactions(db: Database) -> None:
    inbox = InboxStore(db)
    for n in range(5):
        await inbox.accept(f"txn{n}", [_event(n * 2), _event(n * 2 + 1)], now_ms=100)
    due = await inbox.due(now_ms=100)
    assert [item.event_id for item in due] == [f"$ev{n}" for n in range(10)]
