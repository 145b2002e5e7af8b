"""Each participant's own audio, one file per heard track: the rows that list them, and the
`TrackSink` that writes them for one meeting.

A track is one participant's microphone from the moment the bridge's participant first heard
it. Its file starts at `started_at` (wall-clock ms) and runs on the wall clock: when samples
arrive later than the ones written so far account for (a microphone muted by an app that then
sends nothing, a network pause), the writer fills the gap with silence, so an offset in the file
is always `started_at` plus that offset. A muted microphone or a dropped connection is a gap,
never an error; someone who rejoins publishes a new track, which is a new file and row.

`recorded_until` moves forward as the file grows, every few seconds rather than per frame: after
a crash, it says how far the file reaches (within a few seconds; the last Ogg page may be
missing too). `closed` is set once the file is complete.

Files are created in the recordings folder (shared with the transcription workers), readable by
the bridge's user only, never through a link, and named as the retention sweep recognises
(`bridge/recording/files.py`): `<LiveKit room>-<meeting id>-t<8 hex>.ogg`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath

from bridge.ids import LiveKitRoomName, MeetingID
from bridge.ports import Clock, Database, HeardTrack, Row
from bridge.recording.encoder import BYTES_PER_SAMPLE, SAMPLE_RATE, EncoderFailed, OpusEncoder

log = logging.getLogger(__name__)

# Samples arriving up to this much later than the file's end are jitter, written as they come;
# beyond it, the difference is silence the file must hold to stay on the wall clock.
GAP_MS = 300
# How often the row's `recorded_until` follows the file (a database write per frame would be
# a hundred a second per participant).
SAVE_EVERY_MS = 5_000
# Silence is written a second at a time: an hour of mute must not become one 115 MB buffer.
_PAD_CHUNK = b"\x00" * (SAMPLE_RATE * BYTES_PER_SAMPLE)

_COLUMNS = "id, meeting_id, identity, name, path, recorder, started_at, recorded_until, closed"


@dataclass(frozen=True)
class RecordedTrack:
    id: str
    meeting_id: MeetingID
    identity: str
    name: str
    path: str
    recorder: str  # the process that wrote it (its call lease owner)
    started_at: int  # wall-clock ms of the file's first sample
    recorded_until: int  # wall-clock ms the file reaches (as last saved)
    closed: bool


def _track(row: Row) -> RecordedTrack:
    return RecordedTrack(
        id=row["id"],
        meeting_id=MeetingID(row["meeting_id"]),
        identity=row["identity"],
        name=row["name"],
        path=row["path"],
        recorder=row["recorder"],
        started_at=int(row["started_at"]),
        recorded_until=int(row["recorded_until"]),
        closed=bool(row["closed"]),  # SQLite answers 0/1
    )


class TrackStore:
    """The `recorded_tracks` table, on PostgreSQL and SQLite alike."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        meeting_id: MeetingID,
        *,
        identity: str,
        name: str,
        path: str,
        recorder: str,
        started_at: int,
    ) -> RecordedTrack:
        track = RecordedTrack(
            id=secrets.token_hex(12),
            meeting_id=meeting_id,
            identity=identity,
            name=name,
            path=path,
            recorder=recorder,
            started_at=started_at,
            recorded_until=started_at,
            closed=False,
        )
        await self._db.execute(
            f"INSERT INTO recorded_tracks ({_COLUMNS}) "  # noqa: S608 - constant column list
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)",
            track.id,
            track.meeting_id,
            track.identity,
            track.name,
            track.path,
            track.recorder,
            track.started_at,
            track.recorded_until,
        )
        return track

    async def extend(self, track_id: str, recorded_until: int) -> bool:
        """Move an open track's end forward (never back); False when nothing changed."""
        updated = await self._db.fetchval(
            "UPDATE recorded_tracks SET recorded_until=$2 "
            "WHERE id=$1 AND NOT closed AND recorded_until < $2 RETURNING id",
            track_id,
            recorded_until,
        )
        return updated is not None

    async def close(self, track_id: str, recorded_until: int) -> bool:
        """Mark a track's file complete, reaching `recorded_until` (or further, if a later end
        was saved); False when it was closed already."""
        closed = await self._db.fetchval(
            "UPDATE recorded_tracks SET closed=true, recorded_until="
            "CASE WHEN recorded_until < $2 THEN $2 ELSE recorded_until END "
            "WHERE id=$1 AND NOT closed RETURNING id",
            track_id,
            recorded_until,
        )
        return closed is not None

    async def of_meeting(self, meeting_id: MeetingID) -> list[RecordedTrack]:
        """Every track of a meeting, in the order they started."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM recorded_tracks "  # noqa: S608 - constant column list
            "WHERE meeting_id=$1 ORDER BY started_at, id",
            meeting_id,
        )
        return [_track(row) for row in rows]

    async def paths_of(self, meeting_id: MeetingID) -> list[str]:
        """Where a meeting's track files are (to delete them when no transcript is wanted)."""
        return [track.path for track in await self.of_meeting(meeting_id)]

    async def open_tracks(self, meeting_id: MeetingID) -> list[RecordedTrack]:
        """The tracks of a meeting whose files are not complete (being written, or left so by
        a recorder that died)."""
        return [track for track in await self.of_meeting(meeting_id) if not track.closed]


def track_path(recordings_dir: str, livekit_room: LiveKitRoomName, meeting_id: MeetingID) -> str:
    """A new file name for one track of a meeting (the suffix tells its tracks apart)."""
    name = f"{livekit_room}-{meeting_id}-t{secrets.token_hex(4)}.ogg"
    return str(PurePosixPath(recordings_dir) / name)


def _create_private(path: str) -> int:
    """Create `path` for writing, readable by this user only; never an existing file, never
    through a link (the folder is shared)."""
    # A folder that is not there yet (a first call on a fresh install) is made, private too:
    # failing instead would lose every word of the call.
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


class TrackFileWriter:
    """One track's file and row (`TrackWriter`). Not safe for concurrent calls: one task
    writes, then closes."""

    def __init__(
        self,
        track: RecordedTrack,
        encoder: OpusEncoder,
        store: TrackStore,
        clock: Clock,
        save_every_ms: int,
    ) -> None:
        self.track = track
        self._encoder = encoder
        self._store = store
        self._clock = clock
        self._save_every_ms = save_every_ms
        self._samples = 0  # written so far, silence included
        self._saved_at = clock.now_ms()
        self._closed = False

    @property
    def recorded_until(self) -> int:
        """Wall-clock ms the samples handed to the encoder reach."""
        return self.track.started_at + self._samples * 1000 // SAMPLE_RATE

    @property
    def encoder_pid(self) -> int:
        return self._encoder.pid

    async def write(self, pcm: bytes, at_ms: int) -> None:
        if self._closed:
            raise EncoderFailed(f"track {self.track.id} is closed")
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError("16-bit samples come in whole pairs of bytes")
        late_ms = at_ms - self.recorded_until
        if late_ms > GAP_MS:
            await self._silence(late_ms * SAMPLE_RATE // 1000)
        await self._encoder.write(pcm)
        self._samples += len(pcm) // BYTES_PER_SAMPLE
        if self._clock.now_ms() - self._saved_at >= self._save_every_ms:
            await self._save()

    async def _silence(self, samples: int) -> None:
        remaining = samples * BYTES_PER_SAMPLE
        while remaining > 0:
            chunk = _PAD_CHUNK[:remaining]
            await self._encoder.write(chunk)
            self._samples += len(chunk) // BYTES_PER_SAMPLE
            remaining -= len(chunk)

    async def _save(self) -> None:
        self._saved_at = self._clock.now_ms()
        try:
            await self._store.extend(self.track.id, self.recorded_until)
        except Exception as err:
            # The audio matters more than its bookkeeping: keep recording, try again later.
            log.warning(
                "Meeting %s: could not save how far track %s reaches: %r",
                self.track.meeting_id,
                self.track.id,
                err,
            )

    async def close(self) -> None:
        """Finish the file and mark its row closed (idempotent). `EncoderFailed` when the
        encoder had failed: the row is closed all the same, at what was handed over."""
        if self._closed:
            return
        self._closed = True
        failure: EncoderFailed | None = None
        try:
            await self._encoder.finish()
        except EncoderFailed as err:
            failure = err
        await self._store.close(self.track.id, self.recorded_until)
        seconds = (self.recorded_until - self.track.started_at) / 1000
        if failure is not None:
            log.error(
                "Meeting %s: track %s incomplete: %s", self.track.meeting_id, self.track.id, failure
            )
            raise failure
        log.info(
            "Meeting %s: track %s of %s closed (%.1f s)",
            self.track.meeting_id,
            self.track.id,
            self.track.identity,
            seconds,
        )


class MeetingTrackSink:
    """`TrackSink` for one meeting: each heard track becomes a file in the recordings folder
    and a row in `recorded_tracks`."""

    def __init__(
        self,
        meeting_id: MeetingID,
        livekit_room: LiveKitRoomName,
        tracks: TrackStore,
        recordings_dir: str,
        recorder: str,
        clock: Clock,
        *,
        save_every_ms: int = SAVE_EVERY_MS,
        ffmpeg: str | None = None,
    ) -> None:
        self._meeting_id = meeting_id
        self._livekit_room = livekit_room
        self._tracks = tracks
        self._dir = recordings_dir
        self._recorder = recorder
        self._clock = clock
        self._save_every_ms = save_every_ms
        self._ffmpeg = ffmpeg

    async def open(self, track: HeardTrack, at_ms: int) -> TrackFileWriter:
        path = track_path(self._dir, self._livekit_room, self._meeting_id)
        label = f"{track.identity}'s track {track.track_sid} in meeting {self._meeting_id}"
        fd = await asyncio.to_thread(_create_private, path)
        try:
            encoder = await OpusEncoder.start(fd, label, self._ffmpeg)
        except EncoderFailed as err:
            log.error("Meeting %s: %s", self._meeting_id, err)
            await asyncio.to_thread(os.unlink, path)
            raise
        finally:
            os.close(fd)  # ffmpeg has its own copy
        try:
            row = await self._tracks.add(
                self._meeting_id,
                identity=track.identity,
                name=track.name,
                path=path,
                recorder=self._recorder,
                started_at=at_ms,
            )
        except BaseException:
            encoder.kill()
            with contextlib.suppress(EncoderFailed):
                await encoder.finish()
            await asyncio.to_thread(os.unlink, path)
            raise
        log.info(
            "Meeting %s: recording %s (track %s) to %s",
            self._meeting_id,
            track.identity,
            track.track_sid,
            path,
        )
        return TrackFileWriter(row, encoder, self._tracks, self._clock, self._save_every_ms)
