"""Synthetic people in a real LiveKit call, through the `livekit` rtc SDK (real WebRTC on loopback).

A `CallPerson` joins with a token the bridge minted (join page or `/api/token`), can speak
(espeak-ng speech pushed through an `AudioSource` on one microphone track, which it can mute
and unmute), drop out and come back (`rejoin`: a new connection, so a new track), types in the
chat with either protocol LiveKit's apps speak (`lk.chat` text streams, the legacy
`lk-chat-topic` packet), and records what it hears in the chat, so tests assert on what a
person in the call would see.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import rtc

# Everyone who joined, so that a test's teardown disconnects them before the server stops
# (otherwise their SDKs keep retrying against a dead server, noisily).
_everyone: list[CallPerson] = []

CHAT_STREAM = "lk.chat"
LEGACY_CHAT = "lk-chat-topic"
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class HeardChat:
    """One chat line as a LiveKit app would show it."""

    protocol: str  # "stream" or "legacy"
    sender: str  # identity; "" when the server itself sent it (SendData)
    id: str
    text: str
    ignore_legacy: bool = False


@dataclass(frozen=True)
class Spoken:
    """When a sentence went out, wall-clock ms: its first sample, and the end of its playout."""

    start_ms: int
    end_ms: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class CallPerson:
    identity: str = ""
    room: rtc.Room = field(default_factory=rtc.Room)
    heard: list[HeardChat] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _url: str = ""
    _token: str = ""
    _microphone: rtc.LocalAudioTrack | None = None
    _source: rtc.AudioSource | None = None

    async def join(self, url: str, token: str) -> CallPerson:
        self._url, self._token = url, token
        self.room.on("data_received", self._on_data)
        self.room.register_text_stream_handler(CHAT_STREAM, self._on_stream)
        if self not in _everyone:
            _everyone.append(self)
        await self.room.connect(url, token)
        self.identity = self.room.local_participant.identity
        return self

    async def rejoin(self) -> CallPerson:
        """Drop out of the call and come back with the same token, as after a lost network:
        a new connection, and a new microphone track at the next `speak`."""
        await self.leave()
        self.room = rtc.Room()
        self._microphone = self._source = None
        return await self.join(self._url, self._token)

    async def leave(self) -> None:
        await self.room.disconnect()

    @property
    def connected(self) -> bool:
        return self.room.connection_state == rtc.ConnectionState.CONN_CONNECTED

    def others(self) -> dict[str, str]:
        """Identity → name of everyone else this person sees in the call."""
        return {p.identity: p.name for p in self.room.remote_participants.values()}

    # ---- chat ------------------------------------------------------------------------------

    async def say(self, text: str) -> str:
        """Type a message as LiveKit's current apps do (a text stream); returns its id."""
        info = await self.room.local_participant.send_text(text, topic=CHAT_STREAM)
        return str(info.stream_id)

    async def say_legacy(self, text: str, message_id: str | None = None) -> str:
        """Type (or, with a known id, edit) a message as older LiveKit apps do."""
        message_id = message_id or f"legacy-{secrets.token_hex(4)}"
        packet = {"id": message_id, "timestamp": int(time.time() * 1000), "message": text}
        await self.room.local_participant.publish_data(
            json.dumps(packet).encode(), reliable=True, topic=LEGACY_CHAT
        )
        return message_id

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != LEGACY_CHAT:
            return
        body = json.loads(packet.data)
        sender = packet.participant.identity if packet.participant else ""
        self.heard.append(
            HeardChat(
                "legacy",
                sender,
                str(body.get("id")),
                str(body.get("message")),
                bool(body.get("ignoreLegacy")),
            )
        )

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            self.heard.append(HeardChat("stream", identity, reader.info.stream_id, text))

        task = asyncio.create_task(read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_heard(
        self, predicate: Callable[[HeardChat], bool], *, timeout: float = 10.0
    ) -> HeardChat:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.heard:
                if predicate(line):
                    return line
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.identity} never heard it; heard {self.heard}")

    # ---- audio -----------------------------------------------------------------------------

    async def publish_microphone(self) -> str:
        """Publish this person's microphone track (once); its track sid."""
        if self._microphone is None or self._source is None:
            self._source = rtc.AudioSource(SAMPLE_RATE, 1)
            self._microphone = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(self._microphone, options)
        return str(self._microphone.sid)

    def mute(self) -> None:
        """Mute the microphone, as the call page's button does (the track stays published)."""
        assert self._microphone is not None, "nothing to mute: no microphone published"
        self._microphone.mute()

    def unmute(self) -> None:
        assert self._microphone is not None, "nothing to unmute: no microphone published"
        self._microphone.unmute()

    async def speak(self, sentence: str, workdir: Path, *, voice: str = "fr") -> Spoken:
        """Say `sentence` (espeak-ng) in real time on the microphone (published if need be);
        when it went out.

        The source queues up to a second ahead and plays out in real time, so the first
        sample goes out as it is captured and the last when `wait_for_playout` returns."""
        samples = spoken(sentence, workdir / f"{self.identity}.wav", voice=voice)
        await self.publish_microphone()
        source = self._source
        assert source is not None
        frame_len = SAMPLE_RATE // 100  # 10 ms frames, as WebRTC wants them
        start_ms = _now_ms()
        for start in range(0, len(samples) - frame_len + 1, frame_len):
            frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, frame_len)
            np.frombuffer(frame.data, dtype=np.int16)[:] = samples[start : start + frame_len]
            await source.capture_frame(frame)
        await source.wait_for_playout()
        return Spoken(start_ms, _now_ms())


def spoken(sentence: str, path: Path, *, voice: str = "fr") -> np.ndarray:
    """`sentence` spoken by espeak-ng, as 48 kHz mono int16 samples (sox resamples)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise RuntimeError("espeak-ng and sox are needed to make speech (apt-get install)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run([espeak, "-v", voice, "-w", str(raw), sentence], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [sox, str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path)], check=True
    )
    with wave.open(str(path)) as audio:
        return np.frombuffer(audio.readframes(audio.getnframes()), dtype=np.int16)


async def leave_everyone() -> None:
    while _everyone:
        person = _everyone.pop()
        if person.connected:
            await person.leave()
