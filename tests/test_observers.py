"""Followers are told of every change, but never sync one meeting twice at once."""

from __future__ import annotations

import asyncio

from bridge.ids import MeetingID
from bridge.meetings.observers import ObserverGroup

MEETING = MeetingID("m1")


class SlowFollower:
    """Records how many syncs run at once; each waits until the test lets it finish."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()

    async def sync(self, meeting_id: MeetingID) -> None:
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await self.release.wait()
        self.running -= 1


async def test_a_burst_of_changes_gives_one_more_sync_not_one_each() -> None:
    follower = SlowFollower()
    group = ObserverGroup(followers=[follower])
    group.meeting_changed(MEETING)
    await asyncio.sleep(0)  # the first sync is under way
    for _ in range(5):
        group.meeting_changed(MEETING)
    follower.release.set()
    await group.settled()
    assert follower.most_at_once == 1
    assert follower.calls == 2  # the first, and one for everything that came during it


async def test_a_change_after_the_sync_ended_syncs_again() -> None:
    follower = SlowFollower()
    follower.release.set()
    group = ObserverGroup(followers=[follower])
    group.meeting_changed(MEETING)
    await group.settled()
    group.meeting_changed(MEETING)
    await group.settled()
    assert follower.calls == 2


async def test_other_meetings_are_not_held_up() -> None:
    follower = SlowFollower()
    group = ObserverGroup(followers=[follower])
    group.meeting_changed(MEETING)
    group.meeting_changed(MeetingID("m2"))
    await asyncio.sleep(0)
    assert follower.running == 2
    follower.release.set()
    await group.settled()
