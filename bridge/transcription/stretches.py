"""Speech into words, each stretch in its own language: detect, then recognise window by window.

Shared by both paths: one speaker's pieces of speech (per-participant tracks), or all the speech
of a mixed recording. Language is detected on groups of ~10 s of speech (what detection needs
to be sure); where two neighbouring groups differ, or a group's detection is not clear-cut, the
speaker may have switched inside it, so each long enough piece of it is checked on its own. A
piece still undecided takes the language of the nearest decided one, else the room's. Then
consecutive pieces in one language are recognised together, in windows under Whisper's 30 s,
each window decoded on its own: a window that fails cannot take the next one with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.transcription.attribution import Word
from bridge.transcription.language import Detection, decide, settle, switches
from bridge.transcription.ports import LanguageDetectorLike, RecogniserLike
from bridge.transcription.speech import Piece, Splice, speech_seconds, windows
from bridge.transcription.timing import Stages

DETECT_S = 10.0  # speech per language detection
PIECE_CHECK_S = 3.0  # a piece this long is checked on its own where a switch may hide
PIECE_SURE = 0.8  # …and takes the language it is detected in this surely; a group detected
# less surely than this may hold two languages


@dataclass(frozen=True)
class Heard:
    words: list[Word]  # on the meeting's time line, in order
    languages: list[str]  # each word's language


def languages_of(
    pieces: Sequence[Piece], fallback: str | None, detector: LanguageDetectorLike | None
) -> list[str]:
    """The language of each piece."""
    if detector is None:  # an English-only model: nothing else can be recognised
        return ["en"] * len(pieces)
    groups = windows(pieces, target=DETECT_S)
    detections = []
    for group in groups:
        splice = Splice(group)
        found = detector.detect_language(splice.samples, splice.sample_rate)
        detections.append(Detection(found, speech_seconds(group)))
    # A group is checked piece by piece where a switch may hide in it: when its detection is
    # not clear-cut (two languages in one group split the vote: 0.49 English, 0.41 German), or
    # when a neighbouring group is in another language.
    settled = decide(detections, fallback)
    near_switch = switches(settled)
    decided: list[str | None] = []
    guesses: list[str | None] = []
    for number, (group, detection) in enumerate(zip(groups, detections, strict=True)):
        check = number in near_switch or detection.top < PIECE_SURE
        for piece in group:
            language = detection.best if detection.sure else None
            if check and piece.duration >= PIECE_CHECK_S:
                found = detector.detect_language(piece.samples, piece.sample_rate)
                if found and found[0][1] >= PIECE_SURE:
                    language = found[0][0]
            decided.append(language)
            guesses.append(detection.best)
    return settle(decided, guesses, fallback)


def hear(
    pieces: Sequence[Piece],
    fallback: str | None,
    *,
    detector: LanguageDetectorLike | None,
    recogniser_for: Callable[[str], RecogniserLike],
    stages: Stages,
) -> Heard:
    """The words said in `pieces` (in time order), with the language each was recognised in."""
    if not pieces:
        return Heard([], [])
    with stages.timing("language"):
        languages = languages_of(pieces, fallback, detector)
    words: list[Word] = []
    spoken: list[str] = []
    with stages.timing("recognition"):
        for language, run in _runs(pieces, languages):
            recogniser = recogniser_for(language)
            for window in windows(run):
                splice = Splice(window)
                for word in recogniser.recognise(
                    splice.samples, splice.sample_rate, language=language, vad=False
                ):
                    words.append(Word(*splice.word_to_meeting(word.start, word.end), word.text))
                    spoken.append(language)
    order = sorted(range(len(words)), key=lambda i: (words[i].start, words[i].end))
    return Heard([words[i] for i in order], [spoken[i] for i in order])


def _runs(pieces: Sequence[Piece], languages: Sequence[str]) -> list[tuple[str, list[Piece]]]:
    """Consecutive pieces in one language, together."""
    runs: list[tuple[str, list[Piece]]] = []
    for piece, language in zip(pieces, languages, strict=True):
        if runs and runs[-1][0] == language:
            runs[-1][1].append(piece)
        else:
            runs.append((language, [piece]))
    return runs
