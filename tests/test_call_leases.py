"""Call leases on PostgreSQL and SQLite: one holder per call, takeover after a lease runs out
and not before, the holders' history with its gaps, and `CallHolder`s sharing the calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from harness import DatabaseTarget, ManualClock
from mautrix.util.async_db import Database

from bridge.calls.holder import CallHolder, HeldChange
from bridge.calls.leases import CallLeases, Hold, uncovered
from bridge.ids import EventID, MeetingID, MeetingSlug, RoomID, UserID, livekit_room_for
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from migrations import OWNER_NAME, upgrade_table

LEASE = 15_000
TICK = 5_000
M1, M2, M3, M4 = (MeetingID(f"m{n}") for n in range(1, 5))


@pytest.fixture
async def db(database: DatabaseTarget) -> AsyncIterator[Database]:
    opened = Database.create(
        database.url,
        upgrade_table=upgrade_table,
        db_args=dict(database.args),
        owner_name=OWNER_NAME,
    )
    await opened.start()
    yield opened
    await opened.stop()


async def live_meeting(db: Database, meeting_id: MeetingID, created_at: int = 1) -> None:
    slug = MeetingSlug(f"abc-defg-{meeting_id[-1] * 3}")
    assert await MeetingStore(db).insert_if_room_free(
        Meeting(
            id=meeting_id,
            room_id=RoomID(f"!{meeting_id}:x"),
            slug=slug,
            livekit_room=livekit_room_for(slug),
            state=MeetingState.LIVE,
            started_by=UserID("@a:x"),
            command_event_id=EventID(f"$c{meeting_id}"),
            created_at=created_at,
            started_at=created_at,
        )
    )


@pytest.fixture
async def four_calls(db: Database) -> list[MeetingID]:
    for n, meeting_id in enumerate((M1, M2, M3, M4)):
        await live_meeting(db, meeting_id, created_at=n + 1)
    return [M1, M2, M3, M4]


# --- CallLeases -------------------------------------------------------------------------------


async def test_only_one_of_two_owners_claims_a_free_call(
    db: Database, four_calls: list[MeetingID]
) -> None:
    leases = CallLeases(db, ManualClock())
    assert await leases.holder(M1) is None
    assert await leases.claim(M1, "a", LEASE)
    assert not await leases.claim(M1, "b", LEASE)
    assert not await leases.claim(M1, "a", LEASE)  # renew, not claim, keeps it
    assert await leases.holder(M1) == "a"
    assert await leases.holders() == {M1: "a"}


async def test_a_dead_holders_call_is_taken_over_once_its_lease_ran_out_and_not_before(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    leases = CallLeases(db, clock)
    assert await leases.claim(M1, "a", LEASE)
    clock.now += TICK
    assert await leases.renew("a", LEASE) == [M1]
    # "a" dies here, right after renewing: its lease still runs for LEASE.
    clock.now += LEASE
    assert await leases.holder(M1) == "a"
    assert not await leases.claim(M1, "b", LEASE)
    clock.now += 1
    assert await leases.holder(M1) is None
    assert await leases.claim(M1, "b", LEASE)
    assert await leases.holder(M1) == "b"
    # "a" waking up late cannot get it back, nor keep it by renewing.
    assert await leases.renew("a", LEASE) == []
    assert not await leases.claim(M1, "a", LEASE)


async def test_renew_returns_only_what_is_still_held(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    leases = CallLeases(db, clock)
    assert await leases.claim(M1, "a", 60_000)
    assert await leases.claim(M2, "a", 10_000)
    assert await leases.claim(M3, "a", 10_000)
    clock.now += 10_001
    assert await leases.claim(M2, "b", LEASE)  # taken over
    # M3's lease ran out too, though nobody took it: "a" has lost it all the same.
    assert await leases.renew("a", LEASE) == [M1]
    assert await leases.holders() == {M1: "a", M2: "b"}
    assert await leases.renew("b", LEASE) == [M2]
    assert await leases.renew("nobody", LEASE) == []


async def test_release_hands_the_call_over_at_once(
    db: Database, four_calls: list[MeetingID]
) -> None:
    leases = CallLeases(db, ManualClock())
    assert await leases.claim(M1, "a", LEASE)
    assert not await leases.release(M1, "b")  # not b's to give
    assert await leases.holder(M1) == "a"
    assert await leases.release(M1, "a")
    assert await leases.holder(M1) is None
    assert await leases.claim(M1, "b", LEASE)
    assert not await leases.release(M1, "a")


async def test_the_history_shows_where_nobody_held_the_call(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    leases = CallLeases(db, clock)
    start = clock.now
    assert await leases.claim(M1, "a", LEASE)
    clock.now += TICK
    await leases.renew("a", LEASE)
    clock.now += TICK
    await leases.renew("a", LEASE)
    last_renewal = clock.now
    # "a" dies; "b" ticks every TICK and takes over at its first tick after the lease.
    while not await leases.claim(M1, "b", LEASE):
        clock.now += TICK
    takeover = clock.now
    assert LEASE < takeover - last_renewal <= LEASE + TICK
    clock.now += TICK
    await leases.renew("b", LEASE)
    clock.now += 1_000
    await leases.release(M1, "b")
    end = clock.now
    assert await leases.holds(M1) == [
        Hold(owner="a", since=start, until=last_renewal),
        Hold(owner="b", since=takeover, until=end),
    ]
    assert uncovered(await leases.holds(M1), start, end, min_gap_ms=1_000) == [
        (last_renewal, takeover)
    ]
    assert await leases.holds(M2) == []


async def test_a_release_after_the_lease_ran_out_does_not_extend_the_span(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    leases = CallLeases(db, clock)
    start = clock.now
    assert await leases.claim(M1, "a", LEASE)
    clock.now += LEASE + 1
    assert await leases.release(M1, "a")
    assert await leases.holds(M1) == [Hold(owner="a", since=start, until=start)]


async def test_many_concurrent_claims_give_the_call_to_one_owner(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    leases = CallLeases(db, clock)
    claims = await asyncio.gather(*(leases.claim(M1, f"w{n}", LEASE) for n in range(12)))
    assert claims.count(True) == 1
    winner = f"w{claims.index(True)}"
    assert await leases.holder(M1) == winner
    # And again when the winner's lease has run out: one of the others, only one.
    clock.now += LEASE + 1
    claims = await asyncio.gather(*(leases.claim(M1, f"v{n}", LEASE) for n in range(12)))
    assert claims.count(True) == 1
    assert [hold.owner for hold in await leases.holds(M1)] == [winner, f"v{claims.index(True)}"]


# --- uncovered --------------------------------------------------------------------------------


def test_uncovered_with_no_holder_is_the_whole_stretch() -> None:
    assert uncovered([], 100, 200) == [(100, 200)]


def test_uncovered_merges_overlapping_spans_and_clips_to_the_stretch() -> None:
    holds = [
        Hold("b", since=150, until=180),
        Hold("a", since=50, until=120),
        Hold("c", since=170, until=260),  # overlaps b, runs past the end
        Hold("d", since=300, until=400),  # after the end
    ]
    assert uncovered(holds, 100, 250) == [(120, 150)]
    assert uncovered(holds, 0, 420) == [(0, 50), (120, 150), (260, 300), (400, 420)]


def test_uncovered_leaves_out_gaps_shorter_than_asked() -> None:
    holds = [Hold("a", since=0, until=100), Hold("b", since=103, until=200)]
    assert uncovered(holds, 0, 300) == [(100, 103), (200, 300)]
    assert uncovered(holds, 0, 300, min_gap_ms=50) == [(200, 300)]
    assert uncovered(holds, 0, 200, min_gap_ms=50) == []


# --- CallHolder -------------------------------------------------------------------------------


async def always(meeting: Meeting) -> bool:
    return True


def holder(db: Database, clock: ManualClock, owner: str, capacity: int | None = None) -> CallHolder:
    return CallHolder(
        CallLeases(db, clock),
        MeetingStore(db),
        owner,
        clock,
        lease_ms=LEASE,
        capacity=capacity,
        wanted=always,
    )


async def assert_each_held_by_one(
    db: Database, clock: ManualClock, holders: list[CallHolder], meetings: list[MeetingID]
) -> None:
    current = await CallLeases(db, clock).holders()
    for meeting_id in meetings:
        mine = [h.owner for h in holders if h.holds(meeting_id)]
        assert len(mine) == 1, (meeting_id, mine)
        assert current[meeting_id] == mine[0]


async def test_two_holders_share_the_calls_and_the_survivor_takes_over(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    a, b = holder(db, clock, "a"), holder(db, clock, "b")
    assert a.renew_interval_ms == TICK
    assert await a.tick() == HeldChange(gained=frozenset(four_calls))
    assert await b.tick() == HeldChange()  # nothing free
    await assert_each_held_by_one(db, clock, [a, b], four_calls)
    clock.now += TICK
    assert await a.tick() == HeldChange()  # renewed, nothing changed
    last_renewal = clock.now
    # "a" stops ticking (its process died). "b" goes on ticking and takes every call over,
    # at its first tick after a's lease ran out.
    taken_at = None
    while taken_at is None:
        clock.now += TICK
        change = await b.tick()
        if change.gained:
            assert change.gained == frozenset(four_calls)
            taken_at = clock.now
    assert LEASE < taken_at - last_renewal <= LEASE + TICK
    assert b.held() == set(four_calls)
    # "a" coming back (a frozen process resuming) finds it has lost them: never held twice.
    assert a.held() == set()
    assert await a.tick() == HeldChange(lost=frozenset(four_calls))
    await assert_each_held_by_one(db, clock, [a, b], four_calls)


async def test_ticking_in_turns_keeps_one_holder_per_call(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    holders = [holder(db, clock, owner) for owner in ("a", "b", "c")]
    for _ in range(6):
        for h in holders:
            await h.tick()
            clock.now += TICK // 3
        await assert_each_held_by_one(db, clock, holders, four_calls)


async def test_new_calls_go_to_the_less_busy_holder(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    a, b = holder(db, clock, "a"), holder(db, clock, "b")
    m5, m6, m7 = MeetingID("m5"), MeetingID("m6"), MeetingID("m7")
    await a.tick()
    assert a.held() == set(four_calls)  # alone, it takes them all
    await live_meeting(db, m5, created_at=5)
    assert await b.tick() == HeldChange(gained=frozenset({m5}))
    await live_meeting(db, m6, created_at=6)
    # a ticks first, but holds more than its share of the six calls between the two.
    assert await a.tick() == HeldChange()
    assert await b.tick() == HeldChange(gained=frozenset({m6}))
    await live_meeting(db, m7, created_at=7)
    meeting = await MeetingStore(db).by_id(m7)
    assert meeting is not None
    assert not await a.take(meeting)  # between ticks too
    assert await b.take(meeting)


async def test_capacity_is_respected(db: Database, four_calls: list[MeetingID]) -> None:
    clock = ManualClock()
    small, big = holder(db, clock, "small", capacity=3), holder(db, clock, "big")
    assert await small.tick() == HeldChange(gained=frozenset({M1, M2, M3}))
    assert await big.tick() == HeldChange(gained=frozenset({M4}))
    await live_meeting(db, MeetingID("m5"))
    meeting = await MeetingStore(db).by_id(MeetingID("m5"))
    assert meeting is not None
    assert not await small.take(meeting)
    assert await small.tick() == HeldChange()
    assert small.held() == {M1, M2, M3}
    assert await big.take(meeting)


async def test_a_call_that_ends_or_is_no_longer_wanted_is_released(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    unwanted: set[MeetingID] = set()

    async def wanted(meeting: Meeting) -> bool:
        return meeting.id not in unwanted

    leases = CallLeases(db, clock)
    a = CallHolder(leases, MeetingStore(db), "a", clock, lease_ms=LEASE, wanted=wanted)
    await a.tick()
    clock.now += TICK
    await MeetingStore(db).mark_ended(M1, clock.now, None)
    unwanted.add(M2)
    assert await a.tick() == HeldChange(lost=frozenset({M1, M2}))
    assert a.held() == {M3, M4}
    assert await leases.holder(M1) is None
    assert await leases.holder(M2) is None
    assert (await leases.holds(M1))[-1].until == clock.now  # held until it ended
    # Wanted again: claimed again, a new span.
    unwanted.clear()
    clock.now += TICK
    assert await a.tick() == HeldChange(gained=frozenset({M2}))
    assert len(await leases.holds(M2)) == 2


async def test_a_call_whose_wanted_fails_is_kept_if_held_and_not_claimed_if_free(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    failing: set[MeetingID] = set()

    async def wanted(meeting: Meeting) -> bool:
        if meeting.id in failing:
            raise ConnectionError("homeserver down")
        return True

    a = CallHolder(
        CallLeases(db, clock), MeetingStore(db), "a", clock, lease_ms=LEASE, wanted=wanted
    )
    await a.tick()
    m5 = MeetingID("m5")
    await live_meeting(db, m5, created_at=5)
    failing.update({M1, m5})
    clock.now += TICK
    assert await a.tick() == HeldChange()
    assert a.held() == set(four_calls)
    failing.clear()
    clock.now += TICK
    assert await a.tick() == HeldChange(gained=frozenset({m5}))


async def test_take_and_give_up_between_ticks(db: Database, four_calls: list[MeetingID]) -> None:
    clock = ManualClock()
    a, b = holder(db, clock, "a"), holder(db, clock, "b")
    meeting = await MeetingStore(db).by_id(M1)
    assert meeting is not None
    assert await a.take(meeting)
    assert await a.take(meeting)  # already held
    assert not await b.take(meeting)
    await a.give_up(M1)
    assert not a.holds(M1)
    assert await b.take(meeting)


async def test_a_clean_shutdown_hands_the_calls_over_at_the_next_tick(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    a, b = holder(db, clock, "a"), holder(db, clock, "b")
    await a.tick()
    assert await a.release_all() == HeldChange(lost=frozenset(four_calls))
    assert a.held() == set()
    assert await b.tick() == HeldChange(gained=frozenset(four_calls))


class Outage(CallLeases):
    """Leases over a database this process can no longer reach, while `down` is set."""

    down = False

    async def renew(self, owner: str, lease_ms: int) -> list[MeetingID]:
        if self.down:
            raise OSError("connection refused")
        return await super().renew(owner, lease_ms)


async def test_a_holder_cut_off_from_the_database_lets_its_calls_go_when_its_lease_runs_out(
    db: Database, four_calls: list[MeetingID]
) -> None:
    clock = ManualClock()
    cut_off = Outage(db, clock)
    a = CallHolder(cut_off, MeetingStore(db), "a", clock, lease_ms=LEASE, wanted=always)
    b = holder(db, clock, "b")
    await a.tick()
    cut_off.down = True
    for _ in range(3):
        clock.now += TICK
        assert await a.tick() == HeldChange()  # still its own until the lease runs out
    assert a.held() == set(four_calls)
    clock.now += 1
    # Now b may claim them: a must no longer count them as its own.
    assert await a.tick() == HeldChange(lost=frozenset(four_calls))
    assert await b.tick() == HeldChange(gained=frozenset(four_calls))
    await assert_each_held_by_one(db, clock, [a, b], four_calls)
