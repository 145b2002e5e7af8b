"""Turning a queued recording into a transcript in the room: the worker loop and the publisher.

The worker claims `transcribe` jobs (with a lease), runs the CPU-heavy pipeline in a thread so
the event loop stays free, posts the result as a thread under the meeting's status message (a
short summary, then the transcript as Markdown and WebVTT files), and deletes the recording
unless the operator keeps them. Publishing records its event, so a job retried after a crash
posts nothing twice. A corrupt recording fails at once; other errors are retried with back-off
and, in the end, the room is told with a reference number that is also in the log. A recording
whose transcription failed for good is deleted too (`keep_recordings` keeps only those with a
transcript), and so is one whose meeting is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bridge.ids import EventID
from bridge.jobs import Job, JobQueue
from bridge.meetings import participants
from bridge.meetings.participants import ParticipantStore
from bridge.meetings.store import Meeting, MeetingStore
from bridge.messages import i18n
from bridge.messages.reference import new_reference
from bridge.messages.render import duration, notice
from bridge.ports import Clock, Matrix, txn_id_for
from bridge.recording import files
from bridge.recording.recordings import TRANSCRIBE
from bridge.room_settings.service import RoomSettings
from bridge.transcription import UnusableRecording, render
from bridge.transcription.attribution import Presence, Utterance, speaking_time

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. a corrupt recording)."""


class Transcriber(Protocol):
    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> list[Utterance]:
        """Synchronous and CPU-heavy: called in a worker thread."""
        ...


def presences_for(meeting: Meeting, rows: Sequence[participants.Presence]) -> list[Presence]:
    """Participants' presence as seconds from the recording's start (what diarization uses)."""
    origin_ms = (meeting.recording_started_ns or 0) / 1e6
    end_ms = float(meeting.ended_at or 0)
    return [
        Presence(
            row.display_name or row.identity,
            (row.joined_at - origin_ms) / 1000,
            ((row.left_at or end_ms) - origin_ms) / 1000,
        )
        for row in rows
        if row.joined_at is not None
    ]


class TranscriptPublisher:
    def __init__(self, matrix: Matrix, meetings: MeetingStore) -> None:
        self._matrix = matrix
        self._meetings = meetings

    async def publish(self, meeting: Meeting, items: Sequence[Utterance], language: str) -> None:
        if meeting.transcript_event_id is not None:
            return  # already published (a retried job)
        root = meeting.status_event_id
        if not items:
            event_id = await self._matrix.send_notice(
                meeting.room_id,
                notice(language, "transcript_empty"),
                thread_root=root,
                txn_id=txn_id_for(meeting.id, "transcript"),
            )
            await self._meetings.set_transcript_event(meeting.id, EventID(event_id))
            return
        times = speaking_time(items)
        ranked = sorted(times.items(), key=lambda item: -item[1])
        words = sum(len(item.text.split()) for item in items)
        summary = notice(
            language,
            "transcript_summary",
            duration=duration(language, int((items[-1].end - items[0].start) * 1000)),
            speakers=_people(language, len(ranked)),
            times=", ".join(f"{name} {duration(language, int(t * 1000))}" for name, t in ranked),
            words=words,
        )
        event_id = await self._matrix.send_notice(
            meeting.room_id, summary, thread_root=root, txn_id=txn_id_for(meeting.id, "transcript")
        )
        stem = f"transcription-{meeting.slug}"
        for suffix, mimetype, text in (
            ("md", "text/markdown", render.markdown(items)),
            ("vtt", "text/vtt", render.webvtt(items)),
        ):
            await self._matrix.send_file(
                meeting.room_id,
                text.encode(),
                filename=f"{stem}.{suffix}",
                mimetype=mimetype,
                thread_root=root,
                txn_id=txn_id_for(meeting.id, "transcript-file", suffix),
            )
        await self._meetings.set_transcript_event(meeting.id, EventID(event_id))

    async def tell_failure(self, meeting: Meeting, language: str, reference: str) -> None:
        await self._matrix.send_notice(
            meeting.room_id,
            notice(language, "transcript_failed", ref=reference),
            thread_root=meeting.status_event_id,
            txn_id=txn_id_for(meeting.id, "transcript-failed"),
        )


def _people(language: str, count: int) -> str:
    key = "people_plural" if i18n.is_plural(language, count) else "people"
    return i18n.text(language, key, count=count).replace(
        "participant", "intervenant" if language == "fr" else "speaker"
    )


class TranscriptWorker:
    def __init__(
        self,
        queue: JobQueue,
        meetings: MeetingStore,
        participants: ParticipantStore,
        transcriber: Transcriber,
        publisher: TranscriptPublisher,
        room_settings: RoomSettings,
        clock: Clock,
        *,
        lease_ms: int = 30 * 60_000,
        max_attempts: int = 3,
        retry_base_ms: int = 60_000,
        keep_recordings: bool = False,
        recordings_dir: str | None = None,
    ) -> None:
        self._queue = queue
        self._meetings = meetings
        self._participants = participants
        self._transcriber = transcriber
        self._publisher = publisher
        self._room_settings = room_settings
        self._clock = clock
        self._owner = f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        self._lease_ms = lease_ms
        self._max_attempts = max_attempts
        self._retry_base_ms = retry_base_ms
        self._keep_recordings = keep_recordings
        # When known, a recording is deleted only if it lies in this folder.
        self._recordings_dir = recordings_dir

    async def run(self, poll_s: float = 2.0) -> None:
        while True:
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("Transcription worker pass failed")
                worked = False
            if not worked:
                await asyncio.sleep(poll_s)

    async def run_once(self) -> bool:
        job = await self._queue.claim(TRANSCRIBE, self._owner, self._lease_ms)
        if job is None:
            return False
        await self._process(job)
        return True

    async def _process(self, job: Job) -> None:
        recording = str(job.payload.get("recording_path") or "")
        meeting = await self._meetings.by_id(job.meeting_id)
        if meeting is None:
            await self._queue.complete(job, self._owner)
            await self._delete(recording)  # nobody is left to post a transcript to
            return
        config = await self._room_settings.effective(meeting.room_id)
        language = config.transcript_language
        audio = Path(recording)
        try:
            presences = presences_for(meeting, await self._participants.of_meeting(meeting.id))
            unknown = i18n.CATALOGUES.get(language, i18n.FR)["speaker_unknown"]
            log.info(
                "Transcribing meeting %s from %s (attempt %d)", meeting.id, audio, job.attempts
            )
            items = await asyncio.to_thread(
                self._transcriber.transcribe, audio, language, presences, unknown
            )
            await self._publisher.publish(meeting, items, config.language)
        except Exception as err:
            permanent = (
                isinstance(err, PermanentFailure | UnusableRecording)
                or job.attempts >= self._max_attempts
            )
            if not permanent:
                delay = self._retry_base_ms * 2 ** (job.attempts - 1)
                log.warning(
                    "Transcription of meeting %s failed, retry in %d ms: %r", meeting.id, delay, err
                )
                await self._queue.fail(job, self._owner, repr(err), delay)
                return
            reference = new_reference()
            log.error(
                "Transcription of meeting %s failed for good [%s]: %r", meeting.id, reference, err
            )
            await self._queue.fail(job, self._owner, repr(err), None)
            await self._meetings.set_transcript_state(
                meeting.id, "failed_told", only_from=("queued",)
            )
            # Privacy: no transcript will come from it, so the audio is not kept (even with
            # keep_recordings, which keeps the recordings of published transcripts).
            await self._delete(recording)
            await self._publisher.tell_failure(meeting, config.language, reference)
            return
        await self._meetings.set_transcript_state(meeting.id, "done", only_from=("queued",))
        await self._queue.complete(job, self._owner)
        if not self._keep_recordings:
            # Privacy: the audio is not kept once its transcript is in the room.
            await self._delete(recording)
        log.info("Transcript of meeting %s published", meeting.id)

    async def _delete(self, recording: str) -> None:
        if not recording:
            return
        if self._recordings_dir is not None:
            await asyncio.to_thread(files.discard, self._recordings_dir, recording)
            return
        try:
            await asyncio.to_thread(Path(recording).unlink, missing_ok=True)
        except OSError as err:
            log.warning("Could not delete the recording %s: %s", recording, err)
