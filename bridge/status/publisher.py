"""Keeping each meeting's status message in step with the database, without flooding the room.

Changes are coalesced: the first change schedules an edit a moment later, and every change
until then rides along, so a burst of 30 joins gives a couple of edits. Each edit renders the
database's current state and records the revision it showed, so the last edit always shows the
final state, and an edit lost to a crash or an unreachable homeserver is made by `catch_up()`
(at start-up and with each reconcile pass). Edits and the end notice use transaction ids derived
from the meeting and revision, so a retry never posts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from bridge.ids import EventID, MeetingID
from bridge.join.links import MeetingLinks
from bridge.meetings.participants import ParticipantStore
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.ports import Matrix, txn_id_for
from bridge.status.message import StatusContext, status_notice

log = logging.getLogger(__name__)


class StatusPublisher:
    def __init__(
        self,
        meetings: MeetingStore,
        participants: ParticipantStore,
        matrix: Matrix,
        *,
        language_of: Callable[[Meeting], Awaitable[str]],
        links: MeetingLinks,
        timezone: ZoneInfo,
        coalesce_s: float = 1.0,
    ) -> None:
        self._meetings = meetings
        self._participants = participants
        self._matrix = matrix
        self._language_of = language_of
        self._links = links
        self._timezone = timezone
        self._coalesce_s = coalesce_s
        self._scheduled: dict[MeetingID, asyncio.Task[None]] = {}
        self._again: set[MeetingID] = set()

    def meeting_changed(self, meeting_id: MeetingID) -> None:
        if meeting_id in self._scheduled:
            # An edit is pending or in flight; make sure one more follows if it is in flight.
            self._again.add(meeting_id)
            return
        self._scheduled[meeting_id] = asyncio.create_task(self._publish_soon(meeting_id))

    async def _publish_soon(self, meeting_id: MeetingID) -> None:
        try:
            while True:
                await asyncio.sleep(self._coalesce_s)
                self._again.discard(meeting_id)
                try:
                    await self.publish(meeting_id)
                except Exception as err:
                    # Left behind in the database; catch_up() makes the edit later.
                    log.warning("Could not update the status of meeting %s: %r", meeting_id, err)
                    return
                if meeting_id not in self._again:
                    return
        finally:
            self._scheduled.pop(meeting_id, None)

    async def post(self, meeting: Meeting, *, txn_id: str) -> None:
        """Post a new meeting's status message; later changes edit it (`meeting_changed`).

        Does nothing when the message is already up, so replaying the command that started the
        meeting shows the room one message (`txn_id` covers a crash between send and record).
        """
        if meeting.status_event_id is not None or not meeting.is_open:
            return
        presences = await self._participants.of_meeting(meeting.id)
        text = status_notice(meeting, presences, await self._context(meeting))
        event_id = await self._matrix.send_notice(meeting.room_id, text, txn_id=txn_id)
        await self._meetings.set_status_event(meeting.id, EventID(event_id))

    async def publish(self, meeting_id: MeetingID) -> None:
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None or meeting.status_event_id is None:
            return
        ended = meeting.state is MeetingState.ENDED
        if meeting.status_rev > meeting.status_sent_rev:
            presences = await self._participants.of_meeting(meeting.id)
            text = status_notice(meeting, presences, await self._context(meeting))
            await self._matrix.edit_notice(
                meeting.room_id,
                meeting.status_event_id,
                text,
                txn_id=txn_id_for(meeting.id, "status", str(meeting.status_rev)),
            )
            await self._meetings.mark_status_sent(meeting.id, meeting.status_rev)
            log.debug("Status of meeting %s at revision %d", meeting.id, meeting.status_rev)
        if ended and meeting.end_notice_event_id is None:
            presences = await self._participants.of_meeting(meeting.id)
            text = status_notice(meeting, presences, await self._context(meeting))
            event_id = await self._matrix.send_notice(
                meeting.room_id,
                text,
                reply_to=meeting.status_event_id,
                txn_id=txn_id_for(meeting.id, "ended"),
            )
            await self._meetings.set_end_notice(meeting.id, EventID(event_id))

    async def _context(self, meeting: Meeting) -> StatusContext:
        starter = await self._matrix.display_name(meeting.room_id, meeting.started_by)
        ender = (
            await self._matrix.display_name(meeting.room_id, meeting.ended_by)
            if meeting.ended_by
            else None
        )
        return StatusContext(
            language=await self._language_of(meeting),
            timezone=self._timezone,
            link=self._links.join(meeting),
            starter=starter,
            ender=ender,
        )

    async def catch_up(self) -> int:
        """Publish every meeting whose status message is behind; returns how many were."""
        behind = await self._meetings.with_unsent_status()
        for meeting in behind:
            try:
                await self.publish(meeting.id)
            except Exception as err:
                log.warning("Status of meeting %s still behind: %r", meeting.id, err)
        return len(behind)

    async def settled(self) -> None:
        """Wait until every edit scheduled so far has been made (or given up)."""
        while self._scheduled:
            await asyncio.wait(list(self._scheduled.values()))

    async def close(self) -> None:
        """Finish pending edits (briefly) at shutdown; what is left, catch_up() does later."""
        pending = list(self._scheduled.values())
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self._coalesce_s + 5)
        for task in late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
