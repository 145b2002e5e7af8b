"""A fast bridge that records and transcribes, with the models played by a script.

Shared by the transcript tests and the recording clean-up tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fast import FastBridge
from livekit_double import LiveKitDouble

from appservice.wiring import Options
from bridge.transcription.attribution import Presence, Utterance
from bridge.transcription.transcript import TrackAudio, Transcript

AUDIO = b"OggS fake audio"


class ScriptedTranscriber:
    """Stands in for the models: notes what it was given, then answers the next scripted
    outcome (a transcript, or an exception to raise); a fixed two-line transcript by default."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, list[Presence]]] = []
        self.track_calls: list[tuple[list[TrackAudio], str | None, str]] = []
        self.script: list[list[Utterance] | Transcript | BaseException] = []

    def _next(self) -> Transcript | None:
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, BaseException):
            raise outcome
        return Transcript(outcome) if isinstance(outcome, list) else outcome

    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> Transcript:
        self.calls.append((audio, language, list(presences)))
        outcome = self._next()
        if outcome is not None:
            return outcome
        assert audio.read_bytes() == AUDIO
        return Transcript(
            [
                Utterance("Alice", 0.5, 4.0, "Bonjour à tous."),
                Utterance(unknown_name.format(n=1), 4.5, 9.0, "Bonjour Alice, on commence ?"),
            ]
        )

    def transcribe_tracks(
        self, tracks: Sequence[TrackAudio], language: str | None, voice_name: str
    ) -> Transcript:
        """By default, one line per track file (which must be there), said by its speaker."""
        self.track_calls.append((list(tracks), language, voice_name))
        outcome = self._next()
        if outcome is not None:
            return outcome
        assert all(t.path.is_file() for t in tracks)
        lines = [
            Utterance(t.speaker, t.offset, t.offset + 1.0, f"Bonjour, ici {t.speaker}.")
            for t in tracks
        ]
        return Transcript(sorted(lines, key=lambda u: u.start), languages=["fr"])


def recording_overrides(tmp_path: Path, **transcription: Any) -> dict[str, Any]:
    """Config allowing transcripts, with recordings under `tmp_path/recordings`; LiveKit's
    egress records unless `recorder="participant"` is given."""
    recordings = tmp_path / "recordings"
    recordings.mkdir(exist_ok=True)
    return {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(recordings), "recorder": "egress", **transcription},
    }


@asynccontextmanager
async def transcribing_bridge(
    tmp_path: Path, livekit: LiveKitDouble, transcriber: ScriptedTranscriber, **transcription: Any
) -> AsyncIterator[FastBridge]:
    async with FastBridge(
        tmp_path,
        livekit,
        config_overrides=recording_overrides(tmp_path, **transcription),
        options=Options(transcriber=transcriber),
    ) as fast:
        yield fast
