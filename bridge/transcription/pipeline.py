"""One mixed recording in, speaker-attributed utterances out: decode → speech → words → who.

The path for a meeting recorded as one mix (the per-participant path is `tracks.py`). Voice
activity keeps the speech, each stretch is recognised in its own language (`stretches`),
pyannote finds who spoke when, and each word goes to the turn it falls in (`attribution`).
The models arrive as arguments typed by protocols (`ports`): built once per worker, faked in
tests. CPU-bound from start to finish: call it from a worker thread, never the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from bridge.transcription.attribution import Presence, label_words, name_labels, utterances
from bridge.transcription.audio import decode, is_silent
from bridge.transcription.language import ranked
from bridge.transcription.ports import (
    DiarizerLike,
    LanguageDetectorLike,
    RecogniserLike,
    VoiceActivityLike,
)
from bridge.transcription.speech import cut
from bridge.transcription.stretches import hear
from bridge.transcription.timing import Stages
from bridge.transcription.transcript import Transcript

log = logging.getLogger(__name__)


def transcribe(
    audio_path: Path,
    language: str | None,
    presences: Sequence[Presence],
    unknown_name: str,
    *,
    vad: VoiceActivityLike,
    detector: LanguageDetectorLike | None,
    recogniser_for: Callable[[str], RecogniserLike],
    diarizer: DiarizerLike,
) -> Transcript:
    """The recording's utterances, in order, each with a participant's name or `unknown_name`.

    Raises `AudioError` for a recording that cannot be decoded. A silent recording, or one in
    which nothing is recognised, gives no utterances (and pyannote is not run).
    """
    stages = Stages()
    with stages.timing("decode"):
        samples, rate = decode(audio_path)
    if is_silent(samples):
        log.info("%s: silent (%.1f s), no transcript", audio_path.name, samples.size / rate)
        return Transcript([], [], stages.seconds)
    with stages.timing("vad"):
        pieces = cut(samples, rate, vad.speech(samples, rate), 0.0)
    heard = hear(pieces, language, detector=detector, recogniser_for=recogniser_for, stages=stages)
    if not heard.words:
        return Transcript([], [], stages.seconds)
    with stages.timing("diarization"):
        turns = diarizer.diarize(samples, rate)
    with stages.timing("merge"):
        labels = label_words(heard.words, turns)
        result = utterances(heard.words, labels, name_labels(turns, presences), unknown_name)
    log.info(
        "%s: %.1f s of audio, %d speakers, %d words; %s",
        audio_path.name,
        samples.size / rate,
        len({turn.label for turn in turns}),
        len(heard.words),
        ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stages.seconds.items()),
    )
    return Transcript(result, ranked(heard.languages), stages.seconds)
