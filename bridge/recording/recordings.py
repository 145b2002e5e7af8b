"""Recording a meeting's audio for its transcript, and turning a finished recording into a job.

Two recorders. By default the bridge's own participant in the call records each person's track
to its own file (`bridge/calls/agent.py`, `bridge/recording/tracks.py`): the transcript then
knows who spoke without guessing. An operator may choose LiveKit's egress instead, which
records the mixed room audio to one file.

The transcript state of a meeting moves `off` → `recording` (tracks or egress being recorded)
→ `recorded` (complete) → `queued` (a transcription job exists) → `done` | `failed`;
`cancelled` when someone stops it (`/visio transcript off`), `failed` when LiveKit could not
record. A job is queued once both facts are known, whichever comes first: the recording is
complete, and the meeting has ended (for tracks, the end of the meeting is the end of the
recording). Both transitions are guarded, so a replayed webhook queues nothing twice.

The file a finished recording names (from the `egress_ended` webhook) must lie inside the
recordings folder: the transcription worker reads it, then deletes it. Any other path is
refused, and the recording counts as failed.

A recording no transcript will come from is deleted as soon as that is known: an egress that
failed (its partial file), a recording stopped by `/visio transcript off` (when its file is
complete, or when LiveKit reports it after the stop). The worker deletes it after a transcript
or a final failure, and `bridge/retention.py` sweeps whatever is left behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from bridge.ids import MeetingID
from bridge.jobs import JobQueue
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.ports import Clock, LiveKitRooms
from bridge.recording import files

log = logging.getLogger(__name__)

TRANSCRIBE = "transcribe"
# Transcript states in which no transcript will be made from the recording: its file can go.
NOT_WANTED = ("cancelled", "failed", "failed_told")


@dataclass(frozen=True)
class RecordingOutcome:
    meeting: Meeting
    failed: bool  # LiveKit could not record: the room should be told


class TrackPaths(Protocol):
    """The files the bridge's participant wrote for a meeting (`bridge/recording/tracks.py`)."""

    async def paths_of(self, meeting_id: MeetingID) -> list[str]: ...


class Recordings:
    def __init__(
        self,
        meetings: MeetingStore,
        jobs: JobQueue,
        livekit: LiveKitRooms,
        clock: Clock,
        *,
        recordings_dir: str,
        tracks: TrackPaths | None,
    ) -> None:
        self._meetings = meetings
        self._jobs = jobs
        self._livekit = livekit
        self._clock = clock
        self._dir = PurePosixPath(recordings_dir)
        # None: LiveKit's egress records the mixed audio; otherwise each participant's track.
        self._tracks = tracks

    @property
    def per_participant(self) -> bool:
        return self._tracks is not None

    async def start(self, meeting: Meeting) -> bool:
        """Start recording a live meeting's audio, once; True if this call started it."""
        if meeting.transcript_state != "off" or meeting.state is not MeetingState.LIVE:
            return False
        if self._tracks is not None:
            # The bridge's participant starts writing once it sees this state (the agent).
            started_ns = self._clock.now_ms() * 1_000_000
            if not await self._meetings.start_track_recording(meeting.id, started_ns):
                return False
            where = "each participant's track"
        else:
            # The path is on the egress server's disk, shared with the transcription workers.
            where = self.planned_path(meeting)
            egress_id = await self._livekit.start_audio_recording(meeting.livekit_room, where)
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
        log.info("Recording meeting %s: %s", meeting.id, where)
        return True

    async def cancel(self, meeting: Meeting) -> bool:
        """Stop recording (`/visio transcript off`): no transcript for this meeting."""
        if not await self._meetings.set_transcript_state(
            meeting.id, "cancelled", only_from=("off", "recording", "recorded")
        ):
            return False
        if meeting.egress_id and meeting.transcript_state == "recording":
            # LiveKit reports the stopped recording's file with egress_ended: deleted then.
            await self._livekit.stop_recording(meeting.egress_id)
        elif meeting.transcript_state == "recorded":
            await self.discard(meeting)  # complete, waiting for the meeting's end: not wanted
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
        if meeting is None:
            return None  # not ours
        if meeting.transcript_state in NOT_WANTED:
            # Stopped by `/visio transcript off` (or failed already): nobody wants the file.
            await self.discard(meeting, filename)
            return None
        if meeting.transcript_state != "recording":
            return None  # a replay: the file is the transcript's
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
            await self.discard(meeting, filename)  # whatever the egress left, partial
            refreshed = await self._meetings.by_id(meeting.id)
            return RecordingOutcome(refreshed or meeting, failed=True)
        await self._meetings.set_recording(meeting.id, filename, started_ns)
        await self.queue_if_ready(meeting.id)
        refreshed = await self._meetings.by_id(meeting.id)
        return RecordingOutcome(refreshed or meeting, failed=False)

    def planned_path(self, meeting: Meeting) -> str:
        return files.planned_path(str(self._dir), meeting.livekit_room, meeting.id)

    async def discard(self, meeting: Meeting, reported: str = "") -> None:
        """Delete a meeting's recording (where it was asked to be written, where LiveKit said
        it was, where it was recorded as being): only ever inside the recordings folder."""
        paths = {self.planned_path(meeting), reported, meeting.recording_path or ""} - {""}
        if self._tracks is not None:
            paths.update(await self._tracks.paths_of(meeting.id))
        for path in sorted(paths):
            if await asyncio.to_thread(files.discard, str(self._dir), path):
                log.info("Recording of meeting %s deleted (no transcript wanted)", meeting.id)

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
        if meeting is None or meeting.is_open:
            return False
        if self._tracks is not None and meeting.transcript_state == "recording":
            # The tracks end with the meeting (the worker waits for files still being closed).
            await self._meetings.set_transcript_state(
                meeting.id, "recorded", only_from=("recording",)
            )
            meeting = await self._meetings.by_id(meeting_id) or meeting
        if meeting.transcript_state != "recorded":
            return False
        if not await self._meetings.set_transcript_state(
            meeting.id, "queued", only_from=("recorded",)
        ):
            return False
        payload = {
            "recording_path": meeting.recording_path,
            "recording_started_ns": meeting.recording_started_ns,
            "tracks": self._tracks is not None and not meeting.recording_path,
        }
        queued = await self._jobs.enqueue(TRANSCRIBE, meeting.id, payload)
        log.info("Transcription of meeting %s queued (%s)", meeting.id, queued)
        return queued
