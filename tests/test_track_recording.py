"""Each participant's own audio on disk: the `recorded_tracks` rows, and the files the sink writes.

Fast tier, no LiveKit: the rows on PostgreSQL and SQLite; the sink fed by hand with a manual
clock, its files decoded by the transcription pipeline's own decoder (real ffmpeg both ways).
What the call itself delivers is in `test_track_recording_livekit.py`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from harness import DatabaseTarget, ManualClock
from mautrix.util.async_db import Database

from bridge.ids import EventID, MeetingID, MeetingSlug, RoomID, UserID, livekit_room_for
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.ports import HeardTrack
from bridge.recording import files
from bridge.recording.encoder import EncoderFailed
from bridge.recording.tracks import MeetingTrackSink, TrackFileWriter, TrackStore
from bridge.transcription.audio import load_wav, to_wav_16k_mono
from migrations import OWNER_NAME, upgrade_table

MEETING = MeetingID("0123456789abcdef01234567")
SLUG = MeetingSlug("abc-defg-hij")
ROOM = livekit_room_for(SLUG)
RATE = 16_000
FRAME = RATE // 100  # 10 ms, as the call delivers them
ALICE = HeardTrack("@alice:localhost", "Alice", "TR_alice")


async def open_database(target: DatabaseTarget) -> Database:
    db = Database.create(
        target.url, upgrade_table=upgrade_table, db_args=dict(target.args), owner_name=OWNER_NAME
    )
    await db.start()
    await MeetingStore(db).insert_if_room_free(
        Meeting(
            id=MEETING,
            room_id=RoomID("!r:localhost"),
            slug=SLUG,
            livekit_room=ROOM,
            state=MeetingState.LIVE,
            started_by=UserID("@alice:localhost"),
            command_event_id=EventID("$c"),
            created_at=1,
        )
    )
    return db


@pytest.fixture
async def db(database: DatabaseTarget) -> AsyncIterator[Database]:
    opened = await open_database(database)
    yield opened
    await opened.stop()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """The sink's tests need one database, not both: the rows are tested on both above."""
    opened = await open_database(DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {}))
    yield opened
    await opened.stop()


def tone(seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


async def write_frames(writer: TrackFileWriter, pcm: bytes, at_ms: int, *, late_ms: int = 0) -> int:
    """`pcm` in 10 ms frames, each stamped as arriving on time (plus `late_ms`); the time after."""
    step = FRAME * 2
    for offset in range(0, len(pcm), step):
        await writer.write(pcm[offset : offset + step], at_ms + offset // 32 + late_ms)
    return at_ms + len(pcm) // 32


def decoded(path: str, workdir: Path) -> npt.NDArray[np.float32]:
    wav = workdir / (Path(path).name + ".wav")
    to_wav_16k_mono(Path(path), wav)
    samples, rate = load_wav(wav)
    assert rate == RATE
    return samples


def loud(samples: npt.NDArray[np.float32], start_s: float, end_s: float) -> float:
    """RMS of a stretch of the file."""
    part = samples[int(start_s * RATE) : int(end_s * RATE)]
    return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0


# ---- the rows ------------------------------------------------------------------------------


async def test_track_rows_move_forward_only_and_close_once(db: Database) -> None:
    store = TrackStore(db)
    first = await store.add(
        MEETING, identity="@a:x", name="A", path="/r/a.ogg", recorder="bridge", started_at=1_000
    )
    second = await store.add(
        MEETING, identity="@b:x", name="B", path="/r/b.ogg", recorder="worker-1", started_at=500
    )
    assert (first.recorded_until, first.closed) == (1_000, False)
    assert await store.extend(first.id, 6_000)
    assert not await store.extend(first.id, 4_000)  # never back
    assert await store.close(first.id, 5_000)  # a later saved end stays
    assert not await store.close(first.id, 9_000)  # once
    assert not await store.extend(first.id, 9_000)  # a closed track is done

    tracks = await store.of_meeting(MEETING)
    assert [t.identity for t in tracks] == ["@b:x", "@a:x"]  # in the order they started
    closed = tracks[1]
    assert (closed.id, closed.recorded_until, closed.closed, closed.name) == (
        first.id,
        6_000,
        True,
        "A",
    )
    assert [t.id for t in await store.open_tracks(MEETING)] == [second.id]
    assert sorted(await store.paths_of(MEETING)) == ["/r/a.ogg", "/r/b.ogg"]
    assert await store.of_meeting(MeetingID("another")) == []


# ---- the files -----------------------------------------------------------------------------


async def test_a_track_is_a_private_file_in_a_private_folder_on_the_wall_clock_with_its_row(
    sqlite_db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"  # not there yet: a fresh install's first call
    clock = ManualClock()
    store = TrackStore(sqlite_db)
    sink = MeetingTrackSink(MEETING, ROOM, store, str(folder), "bridge", clock, save_every_ms=5_000)
    started = 1_700_000_000_000
    writer = await sink.open(ALICE, started)

    path = Path(writer.track.path)
    assert path.parent == folder and files.is_recording_name(path.name)
    assert path.name.startswith(f"{ROOM}-{MEETING}-t")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [row] = await store.of_meeting(MEETING)
    assert (row.identity, row.name, row.started_at, row.recorder, row.closed) == (
        ALICE.identity,
        "Alice",
        started,
        "bridge",
        False,
    )

    # One second of speech, a frame 200 ms late (jitter: written as it comes), a microphone
    # muted by an app that sends nothing for two seconds (a gap: silence), speech again.
    after = await write_frames(writer, tone(1.0), started)
    after = await write_frames(writer, tone(0.5), after, late_ms=200)
    clock.now += 5_000  # time to save how far the file reaches
    after = await write_frames(writer, tone(1.0, 660), after + 2_000)
    assert (await store.of_meeting(MEETING))[0].recorded_until > started + 3_000
    await writer.close()
    await writer.close()  # idempotent

    [row] = await store.of_meeting(MEETING)
    assert row.closed and row.recorded_until == after == started + 4_500
    samples = decoded(row.path, tmp_path)
    assert len(samples) / RATE == pytest.approx(4.5, abs=0.05)
    assert loud(samples, 0.05, 1.45) > 0.1
    assert loud(samples, 1.6, 3.45) < 0.01  # the gap is silence, where it was
    assert loud(samples, 3.55, 4.45) > 0.1


async def test_a_killed_encoder_leaves_a_readable_file_and_says_so(
    sqlite_db: Database, tmp_path: Path
) -> None:
    store = TrackStore(sqlite_db)
    sink = MeetingTrackSink(MEETING, ROOM, store, str(tmp_path), "bridge", ManualClock())
    writer = await sink.open(ALICE, 1_000)
    await write_frames(writer, tone(4.0), 1_000)
    path = Path(writer.track.path)
    # ffmpeg writes each Ogg page as it completes: wait for three seconds' worth (~3 kB/s).
    deadline = time.monotonic() + 10
    while path.stat().st_size < 9_000:
        assert time.monotonic() < deadline, f"ffmpeg wrote only {path.stat().st_size} bytes"
        await asyncio.sleep(0.05)
    os.kill(writer.encoder_pid, signal.SIGKILL)  # as a crash, or the OOM killer, would

    samples = decoded(str(path), tmp_path)  # no end-of-stream page, still readable
    assert len(samples) / RATE > 2.5
    assert loud(samples, 0.1, 2.4) > 0.1

    with pytest.raises(EncoderFailed, match="ffmpeg exited"):
        for _ in range(100):  # the pipe may take a write or two to report it
            await writer.write(tone(0.01), 6_000)
            await asyncio.sleep(0.01)
    with pytest.raises(EncoderFailed):
        await writer.close()
    [row] = await store.of_meeting(MEETING)
    assert row.closed  # its row is closed all the same, the file kept


async def test_without_ffmpeg_nothing_is_recorded_and_open_says_why(
    sqlite_db: Database, tmp_path: Path
) -> None:
    store = TrackStore(sqlite_db)
    missing = str(tmp_path / "no-ffmpeg-here")
    sink = MeetingTrackSink(MEETING, ROOM, store, str(tmp_path), "b", ManualClock(), ffmpeg=missing)
    with pytest.raises(EncoderFailed, match="ffmpeg did not start"):
        await sink.open(ALICE, 1_000)
    assert await store.of_meeting(MEETING) == []
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".ogg"] == []


async def test_an_encoder_that_dies_makes_write_fail(sqlite_db: Database, tmp_path: Path) -> None:
    store = TrackStore(sqlite_db)
    dies = "/bin/false"  # starts, reads nothing, exits 1
    sink = MeetingTrackSink(MEETING, ROOM, store, str(tmp_path), "b", ManualClock(), ffmpeg=dies)
    writer = await sink.open(ALICE, 1_000)
    with pytest.raises(EncoderFailed, match=r"ffmpeg exited \(1\)"):
        for n in range(200):
            await writer.write(tone(0.01), 1_000 + 10 * n)
            await asyncio.sleep(0.01)


# ---- the retention sweep knows these names -------------------------------------------------


def test_the_sweep_recognises_track_files_and_nothing_more(tmp_path: Path) -> None:
    base = f"{ROOM}-{MEETING}"
    ours = [f"{base}.ogg", f"{base}.json", f"{base}-t0a1b2c3d.ogg"]
    not_ours = [
        f"{base}-t0a1b2c3d.json",  # tracks are only ever Ogg
        f"{base}-t0a1b2c3.ogg",  # seven hex digits
        f"{base}-t0a1b2c3d4.ogg",
        f"{base}-tZZZZZZZZ.ogg",
        f"{base}-t0a1b2c3d.ogg.bak",
        f"notes-{MEETING}-t0a1b2c3d.ogg",
    ]
    assert [name for name in ours if files.is_recording_name(name)] == ours
    assert [name for name in not_ours if files.is_recording_name(name)] == []
    for name in ours + not_ours:
        (tmp_path / name).write_bytes(b"x")
    deleted = files.sweep(str(tmp_path), older_than_s=time.time() + 60, keep=[])
    assert sorted(Path(path).name for path in deleted) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(not_ours)
