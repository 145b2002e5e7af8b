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
    """The status message, the widget, the recording and the call participant behind one call."""

    def __init__(
        self, *observers: MeetingObserver, followers: Sequence[MeetingFollower] = ()
    ) -> None:
        self._observers = observers
        self._followers = followers
        self._tasks: set[asyncio.Task[None]] = set()

    def meeting_changed(self, meeting_id: MeetingID) -> None:
        for observer in self._observers:
            observer.meeting_changed(meeting_id)
        for follower in self._followers:
            task = asyncio.create_task(_sync_logged(follower, meeting_id))
            self._tasks.add(task)  # asyncio keeps only a weak reference to running tasks
            task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait until every sync started so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _sync_logged(follower: MeetingFollower, meeting_id: MeetingID) -> None:
    try:
        await follower.sync(meeting_id)
    except Exception as err:
        log.warning("%s not in step with meeting %s: %r", type(follower).__name__, meeting_id, err)
