"""The job queue on PostgreSQL and SQLite: one claim per job, leases that run out, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from harness import DatabaseTarget, ManualClock
from mautrix.util.async_db import Database

from bridge.ids import EventID, MeetingID, MeetingSlug, RoomID, UserID, livekit_room_for
from bridge.jobs import JobQueue
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from migrations import OWNER_NAME, upgrade_table


@pytest.fixture
async def db(database: DatabaseTarget) -> AsyncIterator[Database]:
    opened = Database.create(
        database.url,
        upgrade_table=upgrade_table,
        db_args=dict(database.args),
        owner_name=OWNER_NAME,
    )
    await opened.start()
    slug = MeetingSlug("abc-defg-hij")
    await MeetingStore(opened).insert_if_room_free(
        Meeting(
            id=MeetingID("m1"),
            room_id=RoomID("!r:x"),
            slug=slug,
            livekit_room=livekit_room_for(slug),
            state=MeetingState.ENDED,
            started_by=UserID("@a:x"),
            command_event_id=EventID("$c"),
            created_at=1,
        )
    )
    yield opened
    await opened.stop()


async def test_a_killed_workers_job_is_claimed_again_after_its_lease(db: Database) -> None:
    clock = ManualClock()
    queue = JobQueue(db, clock)
    assert await queue.enqueue("transcribe", MeetingID("m1"), {"recording_path": "/r.ogg"})
    assert not await queue.enqueue("transcribe", MeetingID("m1"), {})  # once per meeting
    first = await queue.claim("transcribe", "worker-a", lease_ms=60_000)
    assert first is not None and first.payload == {"recording_path": "/r.ogg"}
    # worker-a dies here. Until its lease runs out, nobody else gets the job.
    assert await queue.claim("transcribe", "worker-b", lease_ms=60_000) is None
    clock.now += 60_001
    second = await queue.claim("transcribe", "worker-b", lease_ms=60_000)
    assert second is not None and second.id == first.id and second.attempts == 2
    # A late completion by the dead worker does not count; worker-b's does.
    assert not await queue.complete(first, "worker-a")
    assert await queue.complete(second, "worker-b")
    assert await queue.state_of("transcribe", MeetingID("m1")) == "done"


async def test_concurrent_claims_give_the_job_to_one_worker(db: Database) -> None:
    queue = JobQueue(db, ManualClock())
    await queue.enqueue("transcribe", MeetingID("m1"), {})
    claims = await asyncio.gather(
        *(queue.claim("transcribe", f"worker-{n}", lease_ms=60_000) for n in range(10))
    )
    assert len([job for job in claims if job is not None]) == 1


async def test_failures_retry_after_a_delay_then_stop(db: Database) -> None:
    clock = ManualClock()
    queue = JobQueue(db, clock)
    await queue.enqueue("transcribe", MeetingID("m1"), {})
    job = await queue.claim("transcribe", "w", lease_ms=1000)
    assert job is not None
    await queue.fail(job, "w", "boom", retry_in_ms=5000)
    assert await queue.claim("transcribe", "w", lease_ms=1000) is None
    clock.now += 5000
    again = await queue.claim("transcribe", "w", lease_ms=1000)
    assert again is not None
    await queue.fail(again, "w", "boom again", retry_in_ms=None)
    clock.now += 10**9
    assert await queue.claim("transcribe", "w", lease_ms=1000) is None
    assert await queue.state_of("transcribe", MeetingID("m1")) == "failed"
