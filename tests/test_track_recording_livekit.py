"""Each participant's own audio, as the bridge's participant hears it in a real LiveKit call.

The real livekit-server on loopback, the bridge's real rtc participant (`LiveKitCallParticipant`,
joined as an agent with the token the bridge mints), synthetic people speaking espeak-ng
sentences over real WebRTC (`call_people.CallPerson`), and `MeetingTrackSink` writing real
files through ffmpeg into SQLite rows. Each file is decoded by the transcription pipeline's
decoder and its loud stretches compared with when each person spoke, on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from call_people import CallPerson, Spoken, leave_everyone
from harness import DatabaseTarget
from live_calls import require_livekit_server
from livekit import api
from mautrix.util.async_db import Database
from test_track_recording import MEETING, ROOM, decoded, open_database

from appservice.local.livekit import LocalLiveKit
from bridge.calls.participant import LiveKitCallParticipant
from bridge.chat.messages import BRIDGE_IDENTITY
from bridge.clock import SystemClock
from bridge.ids import ParticipantIdentity
from bridge.join.tokens import JoinSettings, mint_token
from bridge.ports import CallConnection, CallMessage, HeardTrack, TrackSink, TrackWriter
from bridge.recording.tracks import GAP_MS, MeetingTrackSink, RecordedTrack, TrackStore

RATE = 16_000
WINDOW_MS = 50
# Loud: speech; espeak-ng's voice is ~0.1 RMS, silence decodes to nearly nothing.
LOUD = 0.02
# How far a loud stretch in a file may be from when its speaker spoke (network, jitter buffer).
TOLERANCE_MS = 500


@dataclass
class Call:
    server: LocalLiveKit
    store: TrackStore
    sink: MeetingTrackSink
    folder: Path
    workdir: Path

    def token(self, identity: str, name: str, *, agent: bool = False) -> str:
        settings = JoinSettings(
            livekit_url=self.server.rtc_url,
            api_key=self.server.api_key,
            api_secret=self.server.api_secret,
            frontend_url="unused",
        )
        return mint_token(settings, ROOM, ParticipantIdentity(identity), name, agent=agent)

    async def person(self, identity: str, name: str, *, agent: bool = False) -> CallPerson:
        return await CallPerson().join(self.server.rtc_url, self.token(identity, name, agent=agent))

    async def bridge(self) -> CallConnection:
        """The bridge's participant, joined as the bridge joins (`bridge/calls/agent.py`)."""

        async def no_chat(message: CallMessage) -> None:
            raise AssertionError(f"no chat in these calls: {message}")

        token = self.token(BRIDGE_IDENTITY, "Tchap", agent=True)
        return await LiveKitCallParticipant().join(self.server.rtc_url, token, ROOM, no_chat)

    async def wait_tracks(
        self, wanted: Callable[[list[RecordedTrack]], bool], what: str, timeout: float = 10
    ) -> list[RecordedTrack]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not wanted(tracks := await self.store.of_meeting(MEETING)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting until {what}; tracks: {tracks}")
            await asyncio.sleep(0.05)
        return tracks

    def envelope(self, track: RecordedTrack) -> Envelope:
        return Envelope(track.started_at, decoded(track.path, self.workdir))


@dataclass
class Envelope:
    """A decoded track file, on the wall clock: where it is loud."""

    started_at: int
    samples: npt.NDArray[np.float32]

    def loud_at(self) -> list[int]:
        """Wall-clock ms of the start of each loud 50 ms window."""
        size = RATE * WINDOW_MS // 1000
        windows = self.samples[: len(self.samples) // size * size].reshape(-1, size)
        rms = np.sqrt(np.mean(windows**2, axis=1))
        return [self.started_at + i * WINDOW_MS for i in np.flatnonzero(rms > LOUD)]

    def loud_within(self, start_ms: int, end_ms: int) -> list[int]:
        return [at for at in self.loud_at() if start_ms <= at < end_ms]

    def assert_speech_at(self, spoken: Spoken) -> None:
        """Loud from when the sentence went out to when it ended (give or take the tolerance),
        and not loud around it."""
        loud = self.loud_within(spoken.start_ms - 2_000, spoken.end_ms + 2_000)
        assert loud, f"no speech near {spoken} (file from {self.started_at})"
        assert abs(loud[0] - spoken.start_ms) < TOLERANCE_MS, (loud[0], spoken)
        assert abs(loud[-1] + WINDOW_MS - spoken.end_ms) < TOLERANCE_MS, (loud[-1], spoken)

    def assert_quiet(self, start_ms: int, end_ms: int) -> None:
        assert self.loud_within(start_ms, end_ms) == [], (start_ms, end_ms, self.started_at)


@dataclass
class Frames:
    """What a sink was handed for one track: each frame's arrival and whether it was silent."""

    heard: list[tuple[int, bool]]
    writer: TrackWriter

    async def write(self, pcm: bytes, at_ms: int) -> None:
        self.heard.append((at_ms, not any(pcm)))
        await self.writer.write(pcm, at_ms)

    async def close(self) -> None:
        await self.writer.close()


@dataclass
class Tap:
    """A `TrackSink` in front of the real one, keeping what each track delivered."""

    sink: TrackSink
    tracks: list[Frames]

    async def open(self, track: HeardTrack, at_ms: int) -> Frames:
        frames = Frames([], await self.sink.open(track, at_ms))
        self.tracks.append(frames)
        return frames


@pytest.fixture
async def call(tmp_path: Path) -> AsyncIterator[Call]:
    require_livekit_server()
    folder = tmp_path / "recordings"
    folder.mkdir()
    db: Database = await open_database(DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {}))
    store = TrackStore(db)
    sink = MeetingTrackSink(MEETING, ROOM, store, str(folder), "bridge", SystemClock())
    try:
        async with LocalLiveKit(tmp_path / "livekit") as server:
            async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
                await lk.room.create_room(api.CreateRoomRequest(name=ROOM))
            try:
                yield Call(server, store, sink, folder, tmp_path)
            finally:
                await leave_everyone()
    finally:
        await db.stop()


async def test_each_person_is_recorded_to_a_file_of_their_own(call: Call) -> None:
    alice = await call.person("@alice:localhost", "Alice")
    await alice.publish_microphone()  # there before the bridge records
    helper = await call.person("notes-agent", "Notes", agent=True)  # another agent, not a person
    bridge = await call.bridge()
    await bridge.record(call.sink)
    await bridge.record(call.sink)  # idempotent
    await call.wait_tracks(lambda ts: len(ts) == 1, "Alice's microphone is recorded")

    alice_spoke, _ = await asyncio.gather(
        alice.speak("Bonjour à tous, je suis Alice.", call.workdir),
        helper.speak("Je prends des notes.", call.workdir),
    )
    bob = await call.person("guest-b0b", "Bob (personne invitée)")  # after recording began
    bob_spoke = await bob.speak("Bonjour Alice.", call.workdir, voice="en")
    await bridge.record(None)

    tracks = await call.store.of_meeting(MEETING)
    assert sorted((t.identity, t.name) for t in tracks) == [
        ("@alice:localhost", "Alice"),
        ("guest-b0b", "Bob (personne invitée)"),
    ]
    assert all(t.closed for t in tracks)  # record(None) closed every file
    alice_track, bob_track = sorted(tracks, key=lambda t: t.identity)
    assert alice_track.started_at < alice_spoke.start_ms < bob_track.started_at
    alice_heard, bob_heard = call.envelope(alice_track), call.envelope(bob_track)
    alice_heard.assert_speech_at(alice_spoke)
    alice_heard.assert_quiet(bob_spoke.start_ms, bob_spoke.end_ms)  # Bob is not in her file
    bob_heard.assert_speech_at(bob_spoke)
    assert alice_track.recorded_until >= bob_spoke.end_ms - TOLERANCE_MS
    await bridge.leave()


async def test_a_mute_is_a_gap_and_a_rejoin_a_new_file(call: Call) -> None:
    alice = await call.person("@alice:localhost", "Alice")
    bridge = await call.bridge()
    tap = Tap(call.sink, [])
    await bridge.record(tap)
    await alice.publish_microphone()  # after recording began
    await call.wait_tracks(lambda ts: len(ts) == 1, "Alice's microphone is recorded")
    before = await alice.speak("Première phrase.", call.workdir)
    alice.mute()
    muted_at = before.end_ms
    await asyncio.sleep(2.5)  # the scenario itself: Alice stays muted a while
    alice.unmute()
    after = await alice.speak("Deuxième phrase.", call.workdir)
    [first] = await call.store.open_tracks(MEETING)  # the mute closed nothing

    await alice.rejoin()  # as after a lost network: a new connection, a new track
    again = await alice.speak("Me revoilà.", call.workdir)
    tracks = await call.wait_tracks(lambda ts: len(ts) == 2, "Alice's second track is recorded")
    assert [t.identity for t in tracks] == ["@alice:localhost"] * 2
    second = tracks[1]
    assert second.started_at > first.started_at and second.path != first.path
    assert tracks[0].closed  # she left: her first track ended

    await bridge.leave()
    assert [t.closed for t in await call.store.of_meeting(MEETING)] == [True, True]
    # What the SDK does on mute: frames keep coming, and they are silence.
    frames = tap.tracks[0].heard
    muted = [silent for at, silent in frames if muted_at + 300 <= at < after.start_ms - 300]
    assert len(muted) >= 15 and all(muted), f"{len(muted)} frames while muted"
    arrivals = [at for at, _ in frames]
    assert max(b - a for a, b in pairwise(arrivals)) < GAP_MS

    heard = call.envelope(first)
    heard.assert_speech_at(before)
    heard.assert_quiet(muted_at + TOLERANCE_MS, after.start_ms - TOLERANCE_MS)
    heard.assert_speech_at(after)  # still on the wall clock after the gap
    call.envelope(second).assert_speech_at(again)
