"""Per-participant recording, as the room sees it (fast tier): with the default recorder, the
bridge's participant records each person once the room has been told, the tracks become one
transcription job when the meeting ends, and the transcript names each track's speaker as the
room knows them, with the languages heard and where audio is missing.

The bridge's participant is the double (`tests/call_participant_double.py`): what it would hear
is written through the real track sink (ffmpeg, real files); the models are scripted.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from fast import ALICE, ROOM, FastBridge
from livekit_double import LiveKitDouble
from transcribing import ScriptedTranscriber, transcribing_bridge

from bridge.ports import HeardTrack, TrackSink
from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.transcription.attribution import Utterance
from bridge.transcription.transcript import Transcript

GUEST = "guest-zoe-1234"


@pytest.fixture
def transcriber() -> ScriptedTranscriber:
    return ScriptedTranscriber()


@pytest.fixture
async def fast(
    tmp_path: Path, livekit: LiveKitDouble, transcriber: ScriptedTranscriber
) -> AsyncIterator[FastBridge]:
    async with transcribing_bridge(
        tmp_path, livekit, transcriber, recorder="participant"
    ) as bridge:
        yield bridge


async def _transcripts_on(fast: FastBridge) -> None:
    await fast.event(
        {
            "type": ROOM_CONFIG_EVENT,
            "state_key": "",
            "sender": ALICE,
            "room_id": ROOM,
            "content": {"transcription": "on"},
        }
    )


async def _start(fast: FastBridge) -> str:
    """`!visio` in a room with transcripts on; the LiveKit room's name."""
    await _transcripts_on(fast)
    await fast.say("!visio")
    [status] = [s for s in fast.matrix.in_room(ROOM, "notice") if "/m/" in s.body]
    slug = re.search(r"/m/([a-z0-9-]+)", status.body)
    assert slug
    return f"visio-{slug.group(1)}"


def _sink(fast: FastBridge, livekit_room: str) -> TrackSink:
    sink = fast.call_chat.recording.get(livekit_room)
    assert sink is not None, "the bridge's participant is not recording"
    return sink


def _files(fast: FastBridge) -> dict[str, bytes]:
    return {s.content["filename"]: s.content["data"] for s in fast.matrix.sent if s.kind == "file"}


async def _speak(sink: TrackSink, identity: str, name: str, at_ms: int, seconds: float) -> None:
    """What the bridge's participant would hear of one person: a tone, 16 kHz mono."""
    writer = await sink.open(HeardTrack(identity, name, f"TR_{identity[-4:]}"), at_ms)
    t = np.arange(int(16_000 * seconds)) / 16_000
    pcm = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()
    await writer.write(pcm, at_ms)
    await writer.close()


async def test_the_participant_records_each_person_once_the_room_is_told(
    fast: FastBridge,
) -> None:
    livekit_room = await _start(fast)
    told = [s for s in fast.notices() if "enregistré pour en produire la transcription" in s]
    assert len(told) == 1
    assert fast.livekit.calls("StartRoomCompositeEgress") == []  # no egress by default
    sink = _sink(fast, livekit_room)
    await _speak(sink, ALICE, "Alice", fast.clock.now, 1.0)
    [row] = await fast.running.db.fetch("SELECT identity, path, closed FROM recorded_tracks")
    assert row["identity"] == ALICE and bool(row["closed"])
    assert Path(row["path"]).stat().st_size > 0
    assert Path(row["path"]).stat().st_mode & 0o777 == 0o600


async def test_the_transcript_names_each_track_as_the_room_knows_them(
    fast: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    livekit_room = await _start(fast)
    await fast.livekit.join(livekit_room, ALICE, "Alice Martin")
    await fast.livekit.join(livekit_room, GUEST, "Zoé (invitée)")
    await fast.settle()
    sink = _sink(fast, livekit_room)
    start = fast.clock.now
    await _speak(sink, ALICE, "alice", start + 2_000, 0.5)
    await _speak(sink, GUEST, "Zoé (invitée)", start + 5_000, 0.5)
    await fast.livekit.finish_room(livekit_room)
    await fast.settle()
    assert livekit_room not in fast.call_chat.joined  # the participant left: files closed
    transcriber.script.append(
        Transcript(
            [
                Utterance("Alice Martin", 2.0, 2.5, "Bonjour."),
                Utterance("Zoé (invitée)", 5.0, 5.5, "Hallo zusammen."),
            ],
            languages=["fr", "de"],
        )
    )
    assert fast.running.transcripts is not None
    assert await fast.running.transcripts.run_once()
    [(tracks, language, voice)] = transcriber.track_calls
    assert [(t.speaker, round(t.offset)) for t in tracks] == [
        ("Alice Martin", 2),
        ("Zoé (invitée)", 5),
    ]
    assert language == "fr" and voice == "{name} — voix {n}"
    [summary] = [s for s in fast.notices() if s.startswith("Transcription de la visio (")]
    assert "— 2 personnes\u00a0: Alice Martin" in summary
    assert "Langues entendues\u00a0: français, allemand." in summary
    files = _files(fast)
    markdown = files[f"transcription-{livekit_room.removeprefix('visio-')}.md"].decode()
    assert "**Zoé (invitée)** [00:00:05]: Hallo zusammen." in markdown
    # Privacy: the tracks are gone once the transcript is in the room.
    assert [p for p in Path(tracks[0].path).parent.iterdir()] == []


async def test_a_job_waits_for_a_track_still_being_written(
    fast: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    livekit_room = await _start(fast)
    sink = _sink(fast, livekit_room)
    writer = await sink.open(HeardTrack(ALICE, "Alice", "TR_1"), fast.clock.now)
    await writer.write(b"\x00\x00" * 1600, fast.clock.now)
    await fast.running.db.execute("UPDATE recorded_tracks SET recorded_until=$1", fast.clock.now)
    # The meeting ends while a worker elsewhere still closes its file.
    fast.call_chat.recording.pop(livekit_room)
    await fast.livekit.finish_room(livekit_room)
    await fast.settle()
    await fast.running.db.execute("UPDATE recorded_tracks SET closed=false")
    assert fast.running.transcripts is not None
    assert await fast.running.transcripts.run_once()
    assert transcriber.track_calls == []  # not transcribed yet…
    job = await fast.running.db.fetchrow("SELECT state, attempts, run_after FROM jobs")
    assert job["state"] == "queued" and job["attempts"] == 0  # …and no attempt spent
    await writer.close()
    fast.clock.now = job["run_after"]
    assert await fast.running.transcripts.run_once()
    assert len(transcriber.track_calls) == 1


async def test_transcript_off_stops_recording_and_deletes_the_tracks(fast: FastBridge) -> None:
    livekit_room = await _start(fast)
    await _speak(_sink(fast, livekit_room), ALICE, "Alice", fast.clock.now, 0.5)
    [path] = await fast.running.db.fetch("SELECT path FROM recorded_tracks")
    assert Path(path["path"]).is_file()
    await fast.say("!visio transcript off")
    assert fast.call_chat.recording.get(livekit_room) is None
    assert not Path(path["path"]).exists()


async def test_the_transcript_says_where_no_one_was_recording(
    fast: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    livekit_room = await _start(fast)
    # A two-minute recording (LiveKit's double ends the room at the wall time): the first
    # holder died 60 s in, another took the call over 20 s later.
    origin = fast.clock.now - 120_000
    await fast.running.db.execute("UPDATE meetings SET recording_started_ns=$1", origin * 10**6)
    [meeting] = await fast.running.db.fetch("SELECT id FROM meetings")
    await fast.running.db.execute("DELETE FROM call_holds")
    for owner, since, until in (("dead", origin, origin + 60_000), ("next", origin + 80_000, 0)):
        await fast.running.db.execute(
            "INSERT INTO call_holds (meeting_id, owner, since, until) VALUES ($1, $2, $3, $4)",
            meeting["id"],
            owner,
            since,
            until or origin + 120_000,
        )
    await _speak(_sink(fast, livekit_room), ALICE, "Alice", origin + 1_000, 0.5)
    await fast.livekit.finish_room(livekit_room)
    await fast.settle()
    assert fast.running.transcripts is not None
    assert await fast.running.transcripts.run_once()
    [summary] = [s for s in fast.notices() if s.startswith("Transcription de la visio (")]
    assert "Audio manquant (enregistrement interrompu)\u00a0: de 00:01:00 à 00:01:20." in summary
    files = _files(fast)
    markdown = next(data for name, data in files.items() if name.endswith(".md")).decode()
    assert "*[audio manquant de 00:01:00 à 00:01:20\u00a0: enregistrement interrompu]*" in markdown


async def test_the_sweep_spares_tracks_waiting_for_their_transcript(
    fast: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    livekit_room = await _start(fast)
    await _speak(_sink(fast, livekit_room), ALICE, "Alice", fast.clock.now, 0.5)
    [row] = await fast.running.db.fetch("SELECT path FROM recorded_tracks")
    track = Path(row["path"])
    os.utime(track, (0, 0))  # however old it looks
    await fast.livekit.finish_room(livekit_room)
    await fast.settle()
    fast.clock.now += 48 * 3_600_000
    assert (await fast.running.retention.purge()).recordings == 0
    assert track.exists()  # queued: the worker may be down
    transcriber.script = [RuntimeError("out of memory")] * 3
    assert fast.running.transcripts is not None
    for _ in range(3):
        assert await fast.running.transcripts.run_once()
        fast.clock.now += 48 * 3_600_000
    assert not track.exists()  # failed for good: nothing keeps what no transcript will use
