"""Telling the rest of the bridge that a meeting changed, without making the change wait.

Two kinds of listener: an observer is told at once and must not block (the status publisher,
which coalesces edits itself); a follower brings one thing in step with the meeting (its widget,
its recording, the bridge's participant in the call), and the group runs each `sync` as its own
task, logs what fails, and cancels what is still running at shutdown. A failed sync is not
retried here: each follower is also called by the periodic catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from bridge.ids import MeetingID

log = logging.getLogger(__name__)


class MeetingObserver(Protocol):
    def meeting_changed(self, meeting_id: MeetingID) -> None:
        """Called after a committed change that the room should see; must not block."""
        ...


class MeetingFollower(Protocol):
    async def sync(self, meeting_id: MeetingID) -> None:
        """Bring what this follower looks after in step with the meeting's current record."""
        ...


class ObserverGroup:
    """The status message, the widget, the recording and the call participant behind one call.

    A follower never syncs the same meeting twice at once: a change that arrives while its sync
    runs asks for one more pass after it (however many arrive), so a burst of webhooks cannot,
    say, start three recordings of one meeting.
    """

    def __init__(
        self, *observers: MeetingObserver, followers: Sequence[MeetingFollower] = ()
    ) -> None:
        self._observers = observers
        self._followers = followers
        self._running: dict[tuple[int, MeetingID], asyncio.Task[None]] = {}
        self._again: set[tuple[int, MeetingID]] = set()

    def meeting_changed(self, meeting_id: MeetingID) -> None:
        for observer in self._observers:
            observer.meeting_changed(meeting_id)
        for index, follower in enumerate(self._followers):
            key = (index, meeting_id)
            if key in self._running:
                self._again.add(key)
                continue
            # Kept in `_running` until done: asyncio holds only a weak reference to tasks.
            self._running[key] = asyncio.create_task(self._follow(key, follower, meeting_id))

    async def _follow(
        self, key: tuple[int, MeetingID], follower: MeetingFollower, meeting_id: MeetingID
    ) -> None:
        try:
            while True:
                self._again.discard(key)
                await _sync_logged(follower, meeting_id)
                if key not in self._again:
                    return
        finally:
            self._running.pop(key, None)

    async def settled(self) -> None:
        """Wait until every sync started so far has finished (tests, shutdown)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _sync_logged(follower: MeetingFollower, meeting_id: MeetingID) -> None:
    try:
        await follower.sync(meeting_id)
    except Exception as err:
        log.warning("%s not in step with meeting %s: %r", type(follower).__name__, meeting_id, err)
