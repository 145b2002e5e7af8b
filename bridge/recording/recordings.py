"""Recording a meeting's audio for its transcript, and turning a finished recording into a job.

The transcript state of a meeting moves `off` → `recording` (egress started) → `recorded` (the
file is complete) → `queued` (a transcription job exists) → `done` | `failed`; `cancelled` when
someone stops it (`/visio transcript off`), `failed` when LiveKit could not record. A job is
queued once both facts are known, whichever comes first: the recording is complete, and the
meeting has ended. Both transitions are guarded, so a replayed webhook queues nothing twice.

The file a finished recording names (from the `egress_ended` webhook) must lie inside the
recordings folder: the transcription worker reads it, then deletes it. Any other path is
refused, and the recording counts as failed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import PurePosixPath

from bridge.ids import MeetingID
from bridge.jobs import JobQueue
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.ports import LiveKitRooms

log = logging.getLogger(__name__)

TRANSCRIBE = "transcribe"


@dataclass(frozen=True)
class RecordingOutcome:
    meeting: Meeting
    failed: bool  # LiveKit could not record: the room should be told


class Recordings:
    def __init__(
        self,
        meetings: MeetingStore,
        jobs: JobQueue,
        livekit: LiveKitRooms,
        *,
        recordings_dir: str,
    ) -> None:
        self._meetings = meetings
        self._jobs = jobs
        self._livekit = livekit
        self._dir = PurePosixPath(recordings_dir)

    async def start(self, meeting: Meeting) -> bool:
        """Start recording a live meeting's audio, once; True if this call started it."""
        if meeting.transcript_state != "off" or meeting.state is not MeetingState.LIVE:
            return False
        # The path is on the egress server's disk, shared with the transcription workers.
        filepath = str(self._dir / f"{meeting.livekit_room}-{meeting.id}.ogg")
        egress_id = await self._livekit.start_audio_recording(meeting.livekit_room, filepath)
        await self._meetings.set_egress(meeting.id, egress_id)
        await self._livekit.update_room_metadata(
            meeting.livekit_room,
            json.dumps(
                {
                    "matrix_room_id": meeting.room_id,
                    "slug": meeting.slug,
                    "recording_status": "recording",
                }
            ),
        )
        log.info("Recording meeting %s (egress %s) to %s", meeting.id, egress_id, filepath)
        return True

    async def cancel(self, meeting: Meeting) -> bool:
        """Stop recording (`/visio transcript off`): no transcript for this meeting."""
        if not await self._meetings.set_transcript_state(
            meeting.id, "cancelled", only_from=("off", "recording", "recorded")
        ):
            return False
        if meeting.egress_id and meeting.transcript_state == "recording":
            await self._livekit.stop_recording(meeting.egress_id)
        if meeting.is_open:
            await self._livekit.update_room_metadata(
                meeting.livekit_room,
                json.dumps({"matrix_room_id": meeting.room_id, "slug": meeting.slug}),
            )
        log.info("Recording of meeting %s cancelled", meeting.id)
        return True

    async def egress_ended(
        self, egress_id: str, usable: bool, filename: str, started_ns: int, error: str
    ) -> RecordingOutcome | None:
        meeting = await self._meetings.by_egress(egress_id)
        if meeting is None or meeting.transcript_state != "recording":
            return None  # not ours, cancelled, or a replay
        if usable and not self.inside_recordings_dir(filename):
            log.warning(
                "Recording of meeting %s refused: %r is outside %s", meeting.id, filename, self._dir
            )
            usable, error = False, "file outside the recordings folder"
        if not usable:
            await self._meetings.set_transcript_state(
                meeting.id, "failed", only_from=("recording",)
            )
            log.warning("Recording of meeting %s failed: %s", meeting.id, error or "no file")
            refreshed = await self._meetings.by_id(meeting.id)
            return RecordingOutcome(refreshed or meeting, failed=True)
        await self._meetings.set_recording(meeting.id, filename, started_ns)
        await self.queue_if_ready(meeting.id)
        refreshed = await self._meetings.by_id(meeting.id)
        return RecordingOutcome(refreshed or meeting, failed=False)

    def inside_recordings_dir(self, path: str) -> bool:
        """Whether `path`, resolved (`..`, symbolic links), is a file inside the recordings folder.

        Resolved on this host: the folder is shared with the egress server and the workers, so a
        link planted there is followed to where it really points."""
        if not path or "\x00" in path:
            return False
        folder = os.path.realpath(self._dir)
        target = os.path.realpath(path)
        return target != folder and os.path.commonpath([folder, target]) == folder

    async def queue_if_ready(self, meeting_id: MeetingID) -> bool:
        """Queue the transcription when the recording is complete and the meeting is over."""
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None or meeting.transcript_state != "recorded" or meeting.is_open:
            return False
        if not await self._meetings.set_transcript_state(
            meeting.id, "queued", only_from=("recorded",)
        ):
            return False
        payload = {
            "recording_path": meeting.recording_path,
            "recording_started_ns": meeting.recording_started_ns,
        }
        queued = await self._jobs.enqueue(TRANSCRIBE, meeting.id, payload)
        log.info("Transcription of meeting %s queued (%s)", meeting.id, queued)
        return queued
