"""What a transcription produces, and what the per-participant path takes in. Pure data.

`TrackAudio` is one participant's own audio file (one of possibly several, after a mute or a
reconnect), placed on the meeting's time line by its offset. `Transcript` is the result of
either path (per-participant tracks, or one mixed recording): the utterances in time order, the
languages heard, and how long each stage took (for the logs and the benchmark). A `Gap` marks
where audio is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bridge.transcription.attribution import Utterance


@dataclass(frozen=True)
class TrackAudio:
    speaker: str  # the name the room knows: a member's display name, a guest's name
    path: Path  # any format ffmpeg reads
    offset: float  # seconds from the transcript's origin to the file's first sample


@dataclass(frozen=True)
class Gap:
    """A stretch of the meeting no one was recording (a call-worker died before another took
    the call over): the transcript says so where it happened, in the room's language."""

    start: float
    end: float
    note: str


@dataclass(frozen=True)
class Transcript:
    utterances: list[Utterance]
    languages: list[str] = field(default_factory=list)  # ISO 639-1, most words first
    stages: dict[str, float] = field(default_factory=dict)  # stage → seconds of work
