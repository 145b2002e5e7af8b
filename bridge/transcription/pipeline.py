"""One recording in, speaker-attributed utterances out: decode → diarize → recognise → attribute.

The two model stages arrive as arguments (built once per worker: loading them takes seconds)
and are typed as protocols, so this module imports no ML library and tests can hand in fakes.
CPU-bound from start to finish: call it from a worker process or a thread, never the event loop.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bridge.transcription.attribution import (
    Presence,
    Turn,
    Utterance,
    Word,
    label_words,
    name_labels,
    utterances,
)
from bridge.transcription.audio import load_wav, to_wav_16k_mono

log = logging.getLogger(__name__)

# Peak amplitude (of full scale) under which a recording counts as silent: below the noise
# floor of any microphone, so nothing would be heard, and no model is woken up for it.
SILENCE_PEAK = 1e-3


class DiarizerLike(Protocol):
    def diarize(self, waveform: npt.NDArray[np.float32], sample_rate: int) -> list[Turn]: ...


class RecogniserLike(Protocol):
    def recognise(
        self,
        waveform: npt.NDArray[np.float32],
        sample_rate: int = ...,
        *,
        language: str | None = None,
    ) -> list[Word]: ...


def transcribe(
    audio_path: Path,
    language: str | None,
    presences: Sequence[Presence],
    diarizer: DiarizerLike,
    recogniser: RecogniserLike,
    unknown_name: str,
) -> list[Utterance]:
    """The recording's utterances, in order, each with a participant's name or `unknown_name`.

    Raises `AudioError` for a recording that cannot be decoded. A silent recording, or one in
    which nothing is recognised, gives an empty list.
    """
    with tempfile.TemporaryDirectory(prefix="visio-transcribe-") as tmp:
        wav = Path(tmp) / "audio.wav"
        duration = to_wav_16k_mono(audio_path, wav)
        samples, rate = load_wav(wav)
    if samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
        log.info("%s: silent (%.1f s), no transcript", audio_path.name, duration)
        return []
    started = time.monotonic()
    turns = diarizer.diarize(samples, rate)
    diarized = time.monotonic()
    words = recogniser.recognise(samples, rate, language=language)
    recognised = time.monotonic()
    log.info(
        "%s: %.1f s of audio, %d speakers, %d words; diarization %.1f s, recognition %.1f s",
        audio_path.name,
        duration,
        len({turn.label for turn in turns}),
        len(words),
        diarized - started,
        recognised - diarized,
    )
    if not words:
        return []
    labels = label_words(words, turns)
    names = name_labels(turns, presences)
    return utterances(words, labels, names, unknown_name)
