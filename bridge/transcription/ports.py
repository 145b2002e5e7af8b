"""What the transcript pipelines need from each model, as protocols.

The pipelines (`pipeline.py` for one mixed recording, `tracks.py` for per-participant tracks)
take their models as arguments typed by these protocols: they import no ML library, a worker
builds the models once and reuses them, and tests hand in fakes. Audio is 16 kHz mono float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bridge.transcription.attribution import Turn, Word

Samples = npt.NDArray[np.float32]


class VoiceActivityLike(Protocol):
    def speech(self, samples: Samples, sample_rate: int) -> list[tuple[float, float]]:
        """(start, end) seconds of each stretch of speech, in order."""
        ...


class LanguageDetectorLike(Protocol):
    def detect_language(self, waveform: Samples, sample_rate: int) -> list[tuple[str, float]]:
        """ISO 639-1 codes with their probabilities, most likely first."""
        ...


class RecogniserLike(Protocol):
    def recognise(
        self,
        waveform: Samples,
        sample_rate: int = ...,
        *,
        language: str | None = None,
        vad: bool = ...,
    ) -> list[Word]:
        """Timed words; `vad=False` when the caller has already kept only speech."""
        ...


class VoiceEmbedderLike(Protocol):
    def embed(self, windows: Sequence[Samples], sample_rate: int) -> npt.NDArray[np.float32]:
        """One unit-length speaker embedding per window (rows)."""
        ...


class DiarizerLike(Protocol):
    def diarize(self, waveform: Samples, sample_rate: int) -> list[Turn]: ...
