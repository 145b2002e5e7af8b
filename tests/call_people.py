"""Synthetic people in a real LiveKit call, through the `livekit` rtc SDK (real WebRTC on loopback).

A `CallPerson` joins with a token the bridge minted (join page or `/api/token`), can speak
(espeak-ng speech pushed through an `AudioSource`), types in the chat with either protocol
LiveKit's apps speak (`lk.chat` text streams, the legacy `lk-chat-topic` packet), and records
what it hears in the chat, so tests assert on what a person in the call would see.
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


@dataclass
class CallPerson:
    identity: str = ""
    room: rtc.Room = field(default_factory=rtc.Room)
    heard: list[HeardChat] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def join(self, url: str, token: str) -> CallPerson:
        self.room.on("data_received", self._on_data)
        self.room.register_text_stream_handler(CHAT_STREAM, self._on_stream)
        _everyone.append(self)
        await self.room.connect(url, token)
        self.identity = self.room.local_participant.identity
        return self

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

    async def speak(self, sentence: str, workdir: Path, *, voice: str = "fr") -> None:
        """Publish a microphone track and say `sentence` (espeak-ng) in real time."""
        samples = spoken(sentence, workdir / f"{self.identity}.wav", voice=voice)
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        frame_len = SAMPLE_RATE // 100  # 10 ms frames, as WebRTC wants them
        for start in range(0, len(samples) - frame_len + 1, frame_len):
            frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, frame_len)
            np.frombuffer(frame.data, dtype=np.int16)[:] = samples[start : start + frame_len]
            await source.capture_frame(frame)
        await source.wait_for_playout()


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
