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

AUDIO = b"OggS fake audio"


class ScriptedTranscriber:
    """Stands in for the models: notes what it was given, then answers the next scripted
    outcome (a transcript, or an exception to raise); a fixed two-line transcript by default."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, list[Presence]]] = []
        self.script: list[list[Utterance] | BaseException] = []

    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> list[Utterance]:
        self.calls.append((audio, language, list(presences)))
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None:
            return outcome
        assert audio.read_bytes() == AUDIO
        return [
            Utterance("Alice", 0.5, 4.0, "Bonjour à tous."),
            Utterance(unknown_name.format(n=1), 4.5, 9.0, "Bonjour Alice, on commence ?"),
        ]


def recording_overrides(tmp_path: Path, **transcription: Any) -> dict[str, Any]:
    """Config allowing transcripts, with recordings under `tmp_path/recordings`."""
    recordings = tmp_path / "recordings"
    recordings.mkdir(exist_ok=True)
    return {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(recordings), **transcription},
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
