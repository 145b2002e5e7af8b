"""Turning a queued recording into a transcript in the room: the worker loop and the publisher.

The worker claims `transcribe` jobs (with a lease), runs the CPU-heavy pipeline in a thread so
the event loop stays free, posts the result as a thread under the meeting's status message (a
short summary, then the transcript as Markdown and WebVTT files), and deletes the recording
unless the operator keeps them.

A recording is either each participant's own tracks (the default: every word is that person's,
named as the room knows them) or one mixed file from LiveKit's egress (pyannote tells the voices
apart). A job for tracks waits, without spending an attempt, while a track is still being
written (its call-worker is closing it); a track whose writer died counts as complete once it
has not moved for a while. Where no one was recording (a call-worker died before another took
the call over), the transcript says audio is missing.

Publishing records its event, so a job retried after a crash posts nothing twice. A corrupt
recording fails at once; other errors are retried with back-off and, in the end, the room is
told with a reference number that is also in the log. A recording whose transcription failed
for good is deleted too (`keep_recordings` keeps only those with a transcript), and so is one
whose meeting is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from bridge.ids import EventID, MeetingID
from bridge.jobs import Job, JobQueue
from bridge.meetings import participants
from bridge.meetings.participants import ParticipantStore
from bridge.meetings.store import Meeting, MeetingStore
from bridge.messages import i18n
from bridge.messages.reference import new_reference
from bridge.messages.render import Notice, duration, notice
from bridge.ports import Clock, Matrix, txn_id_for
from bridge.recording import files
from bridge.recording.recordings import TRANSCRIBE
from bridge.room_settings.service import EffectiveConfig, RoomSettings
from bridge.transcription import UnusableRecording, render
from bridge.transcription.attribution import Presence, speaking_time
from bridge.transcription.transcript import Gap, TrackAudio, Transcript

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. a corrupt recording)."""


class Transcriber(Protocol):
    """Synchronous and CPU-heavy: called in a worker thread."""

    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> Transcript:
        """One mixed recording; `presences` name the voices pyannote finds."""
        ...

    def transcribe_tracks(
        self, tracks: Sequence[TrackAudio], language: str | None, voice_name: str
    ) -> Transcript:
        """Each participant's own audio; `language` is the fallback where detection is unsure,
        `voice_name` ("{name} — voix {n}") names the voices of a shared microphone."""
        ...


class RecordedTrack(Protocol):
    """What the worker reads of a track the bridge's participant wrote."""

    @property
    def identity(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def started_at(self) -> int: ...
    @property
    def recorded_until(self) -> int: ...
    @property
    def closed(self) -> bool: ...


class RecordedTracks(Protocol):
    async def of_meeting(self, meeting_id: MeetingID) -> Sequence[RecordedTrack]: ...


# Wall-clock spans (ms) of the meeting during which no process held its call.
MissingAudio = Callable[[Meeting], Awaitable[list[tuple[int, int]]]]

# A track not closed and not moved forward for this long lost its writer (a call-worker died):
# its file is complete up to its last page. Writers move `recorded_until` every few seconds.
STALE_TRACK_MS = 30_000
# How long a job for tracks still being closed waits before looking again.
TRACKS_WAIT_MS = 3_000


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

    async def publish(
        self,
        meeting: Meeting,
        transcript: Transcript,
        language: str,
        gaps: Sequence[Gap] = (),
    ) -> None:
        if meeting.transcript_event_id is not None:
            return  # already published (a retried job)
        root = meeting.status_event_id
        items = transcript.utterances
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
            speakers=_speakers(language, len(ranked)),
            times=", ".join(f"{name} {duration(language, int(t * 1000))}" for name, t in ranked),
            words=words,
        )
        extra = []
        if transcript.languages:
            names = ", ".join(i18n.language_name(language, code) for code in transcript.languages)
            extra.append(notice(language, "transcript_languages", languages=names))
        if gaps:
            spans = ", ".join(
                i18n.text(
                    language, "gap_span", start=render.clock(g.start), end=render.clock(g.end)
                )
                for g in gaps
            )
            extra.append(notice(language, "transcript_gaps", spans=spans))
        for sentence in extra:
            summary = Notice(f"{summary.plain} {sentence.plain}", f"{summary.html} {sentence.html}")
        event_id = await self._matrix.send_notice(
            meeting.room_id, summary, thread_root=root, txn_id=txn_id_for(meeting.id, "transcript")
        )
        stem = f"transcription-{meeting.slug}"
        for suffix, mimetype, text in (
            ("md", "text/markdown", render.markdown(items, gaps)),
            ("vtt", "text/vtt", render.webvtt(items, gaps)),
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


def _speakers(language: str, count: int) -> str:
    key = "speakers_plural" if i18n.is_plural(language, count) else "speakers"
    return i18n.text(language, key, count=count)


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
        tracks: RecordedTracks | None = None,
        missing_audio: MissingAudio | None = None,
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
        self._tracks = tracks
        self._missing_audio = missing_audio
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
        meeting = await self._meetings.by_id(job.meeting_id)
        recordings = await self._recordings_of(job)
        if meeting is None:
            await self._queue.complete(job, self._owner)
            await self._delete(recordings)  # nobody is left to post a transcript to
            return
        config = await self._room_settings.effective(meeting.room_id)
        try:
            if job.payload.get("tracks"):
                tracks = await self._complete_tracks(meeting)
                if tracks is None:
                    await self._queue.postpone(job, self._owner, TRACKS_WAIT_MS)
                    return
                log.info(
                    "Transcribing meeting %s from %d track(s) (attempt %d)",
                    meeting.id,
                    len(tracks),
                    job.attempts,
                )
                voice = i18n.CATALOGUES.get(config.language, i18n.FR)["speaker_voice"]
                transcript = await asyncio.to_thread(
                    self._transcriber.transcribe_tracks,
                    tracks,
                    config.transcript_language,
                    voice,
                )
            else:
                transcript = await self._mixed(job, meeting, config)
            gaps = await self._gaps(meeting, config.language)
            await self._publisher.publish(meeting, transcript, config.language, gaps)
        except Exception as err:
            await self._failed(job, meeting, config.language, recordings, err)
            return
        await self._meetings.set_transcript_state(meeting.id, "done", only_from=("queued",))
        await self._queue.complete(job, self._owner)
        if not self._keep_recordings:
            # Privacy: the audio is not kept once its transcript is in the room.
            await self._delete(recordings)
        log.info("Transcript of meeting %s published", meeting.id)

    async def _mixed(self, job: Job, meeting: Meeting, config: EffectiveConfig) -> Transcript:
        audio = Path(str(job.payload.get("recording_path") or ""))
        presences = presences_for(meeting, await self._participants.of_meeting(meeting.id))
        unknown = i18n.CATALOGUES.get(config.transcript_language, i18n.FR)["speaker_unknown"]
        log.info("Transcribing meeting %s from %s (attempt %d)", meeting.id, audio, job.attempts)
        return await asyncio.to_thread(
            self._transcriber.transcribe, audio, config.transcript_language, presences, unknown
        )

    async def _complete_tracks(self, meeting: Meeting) -> list[TrackAudio] | None:
        """Each participant's tracks on the meeting's time line, named as the room knows them;
        None while one is still being written."""
        if self._tracks is None:
            raise PermanentFailure("a job for tracks, but this worker reads no tracks")
        rows = await self._tracks.of_meeting(meeting.id)
        now = self._clock.now_ms()
        if any(not t.closed and now - t.recorded_until < STALE_TRACK_MS for t in rows):
            return None
        names = {
            row.identity: row.display_name
            for row in await self._participants.of_meeting(meeting.id)
            if row.display_name
        }
        origin_ms = (meeting.recording_started_ns or 0) // 1_000_000
        return [
            TrackAudio(
                speaker=names.get(track.identity) or track.name or track.identity,
                path=Path(track.path),
                offset=max(0, track.started_at - origin_ms) / 1000,
            )
            for track in sorted(rows, key=lambda t: t.started_at)
        ]

    async def _gaps(self, meeting: Meeting, language: str) -> list[Gap]:
        if self._missing_audio is None:
            return []
        origin_ms = (meeting.recording_started_ns or 0) // 1_000_000
        gaps = []
        for start_ms, end_ms in await self._missing_audio(meeting):
            start, end = (start_ms - origin_ms) / 1000, (end_ms - origin_ms) / 1000
            note = i18n.text(language, "gap_line", start=render.clock(start), end=render.clock(end))
            gaps.append(Gap(start, end, note))
        return gaps

    async def _recordings_of(self, job: Job) -> list[str]:
        if job.payload.get("tracks") and self._tracks is not None:
            return [track.path for track in await self._tracks.of_meeting(job.meeting_id)]
        recording = str(job.payload.get("recording_path") or "")
        return [recording] if recording else []

    async def _failed(
        self,
        job: Job,
        meeting: Meeting,
        language: str,
        recordings: Sequence[str],
        err: Exception,
    ) -> None:
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
        await self._meetings.set_transcript_state(meeting.id, "failed_told", only_from=("queued",))
        # Privacy: no transcript will come from it, so the audio is not kept (even with
        # keep_recordings, which keeps the recordings of published transcripts).
        await self._delete(recordings)
        await self._publisher.tell_failure(meeting, language, reference)

    async def _delete(self, recordings: Sequence[str]) -> None:
        for recording in recordings:
            if self._recordings_dir is not None:
                await asyncio.to_thread(files.discard, self._recordings_dir, recording)
                continue
            try:
                await asyncio.to_thread(Path(recording).unlink, missing_ok=True)
            except OSError as err:
                log.warning("Could not delete the recording %s: %s", recording, err)
