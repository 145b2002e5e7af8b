"""Recording, as the room sees it: started with the meeting when transcripts are on, announced,
stoppable, and the room told when LiveKit could not record.

An observer of meeting changes, like the status message and the widget: when a meeting is
live and its room (and the operator) want transcripts, it starts the audio recording and says
so in the room and in the call (room metadata `recording_status`); when the meeting has ended
it queues the transcription if the recording is complete. With per-participant recording, the
bridge's participant in the call (`bridge/calls/agent.py`) starts writing once the room has been
told, and stops when the transcript is switched off; the files of a cancelled recording go.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bridge.ids import MeetingID
from bridge.meetings.store import MeetingState, MeetingStore
from bridge.messages.render import notice
from bridge.ports import LiveKitError, Matrix, txn_id_for
from bridge.recording.recordings import NOT_WANTED, Recordings
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)


class RecordingKeeper:
    def __init__(
        self,
        meetings: MeetingStore,
        recordings: Recordings,
        matrix: Matrix,
        room_settings: RoomSettings,
        *,
        recording_changed: Callable[[MeetingID], Awaitable[None]] | None = None,
    ) -> None:
        self._meetings = meetings
        self._recordings = recordings
        self._matrix = matrix
        self._room_settings = room_settings
        # Tells the bridge's participant in this process (`CallAgent.sync`) to start or stop
        # writing tracks at once; a call-worker notices on its next pass.
        self._recording_changed = recording_changed

    async def sync(self, meeting_id: MeetingID) -> None:
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None:
            return
        config = await self._room_settings.effective(meeting.room_id)
        if meeting.state is MeetingState.LIVE and config.transcription:
            try:
                started = await self._recordings.start(meeting)
            except LiveKitError as err:
                log.error("Could not start recording meeting %s: %s", meeting.id, err)
                await self._meetings.set_transcript_state(meeting.id, "failed", only_from=("off",))
                started = False
            if started:
                await self._matrix.send_notice(
                    meeting.room_id,
                    notice(config.language, "recording_started"),
                    txn_id=txn_id_for(meeting.id, "recording-started"),
                )
                await self._changed(meeting.id)
        refreshed = await self._meetings.by_id(meeting_id) or meeting
        if refreshed.transcript_state == "failed" and await self._meetings.set_transcript_state(
            meeting.id, "failed_told", only_from=("failed",)
        ):
            await self._matrix.send_notice(
                meeting.room_id,
                notice(config.language, "recording_failed"),
                txn_id=txn_id_for(meeting.id, "recording-failed"),
            )
        if not refreshed.is_open:
            await self._recordings.queue_if_ready(meeting.id)
            if self._recordings.per_participant and refreshed.transcript_state in NOT_WANTED:
                # Tracks a worker may have written after `/visio transcript off` deleted the
                # first ones: nothing of a cancelled recording outlives its meeting.
                await self._recordings.discard(refreshed)

    async def stop(self, meeting_id: MeetingID) -> bool:
        """`/visio transcript off` for the current meeting."""
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None or not await self._recordings.cancel(meeting):
            return False
        if self._recordings.per_participant:
            await self._changed(meeting_id)  # the participant stops and closes its files
            await self._recordings.discard(meeting)
        return True

    async def _changed(self, meeting_id: MeetingID) -> None:
        if self._recording_changed is None:
            return
        try:
            await self._recording_changed(meeting_id)
        except Exception as err:
            # The catch-up pass brings the participant in step later; the room was told.
            log.warning("Call participant of meeting %s not in step yet: %r", meeting_id, err)
