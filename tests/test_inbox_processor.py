"""Working through the inbox: order per room, retries with back-off, no head-of-line blocking."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from harness import DatabaseTarget, ManualClock
from mautrix.util.async_db import Database

from bridge.inbox.processor import InboxProcessor
from bridge.inbox.store import InboxStore
from migrations import OWNER_NAME, upgrade_table


@pytest.fixture
async def inbox(database: DatabaseTarget) -> AsyncIterator[InboxStore]:
    db = Database.create(
        database.url,
        upgrade_table=upgrade_table,
        db_args=dict(database.args),
        owner_name=OWNER_NAME,
    )
    await db.start()
    yield InboxStore(db)
    await db.stop()


def _event(event_id: str, room: str, body: str = "hi") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": room,
        "type": "m.room.message",
        "content": {"body": body},
    }


class Recorder:
    """A handler that records what it saw and fails for the bodies it is told to."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.seen: list[str] = []

    async def __call__(self, event: Mapping[str, Any]) -> None:
        self.seen.append(event["event_id"])
        if event["content"]["body"] in self.failing:
            raise RuntimeError("poisoned")


async def test_a_poisoned_event_does_not_block_the_events_behind_it(inbox: InboxStore) -> None:
    clock = ManualClock()
    handler = Recorder(failing={"poison"})
    processor = InboxProcessor(inbox, handler, clock, base_delay_ms=1000, max_attempts=3)
    events = [_event("$1", "!a"), _event("$2", "!a", "poison"), _event("$3", "!a")]
    await inbox.accept("t1", events, clock.now)
    assert await processor.drain() == 3
    assert handler.seen == ["$1", "$2", "$3"]
    # Back-off: nothing is due until the delay has passed, then only the failed event.
    assert await processor.drain() == 0
    clock.now += 1000
    assert await processor.drain() == 1
    clock.now += 1999
    assert await processor.drain() == 0
    clock.now += 1
    assert await processor.drain() == 1
    # Third failure: given up, kept with its error, never retried again.
    clock.now += 10**9
    assert await processor.drain() == 0
    assert handler.seen == ["$1", "$2", "$3", "$2", "$2"]
    assert await inbox.pending_count() == 0


async def test_a_transient_failure_succeeds_on_retry(inbox: InboxStore) -> None:
    clock = ManualClock()
    handler = Recorder(failing={"flaky"})
    processor = InboxProcessor(inbox, handler, clock, base_delay_ms=10)
    await inbox.accept("t1", [_event("$1", "!a", "flaky")], clock.now)
    await processor.drain()
    handler.failing.clear()  # the homeserver is back
    clock.now += 10
    await processor.drain()
    assert handler.seen == ["$1", "$1"]
    assert await inbox.pending_count() == 0


async def test_each_rooms_events_keep_their_order(inbox: InboxStore) -> None:
    clock = ManualClock()
    handler = Recorder(failing=set())
    processor = InboxProcessor(inbox, handler, clock)
    events = [_event(f"${n}", f"!room{n % 3}") for n in range(30)]
    await inbox.accept("t1", events[:15], clock.now)
    await inbox.accept("t2", events[15:], clock.now)
    await processor.drain()
    for room in range(3):
        in_room = [e for e in handler.seen if int(e[1:]) % 3 == room]
        assert in_room == [f"${n}" for n in range(room, 30, 3)]
