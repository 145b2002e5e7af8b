"""Who said what: words onto diarization turns, speaker labels onto participants' names. Pure.

Speech-to-text gives timed words; diarization gives timed turns with anonymous labels
(`SPEAKER_00`…). Each word goes to the label it overlaps most. Each label gets a participant's
name when the participant's presence covers at least `threshold` of that label's speech and no
one else's does as well (La Suite Meet's overlap approach, adapted: the bridge knows presence
intervals, not speaking times, so a tie leaves the label unnamed rather than guessing). Several
labels of one person merge into that person; unnamed labels become "Intervenant 1, 2…". A word
that no turn claims goes to the speaker of the words around it: it never makes a speaker of its
own. Consecutive words of one speaker form utterances, cut at pauses and before they grow long
(`phrasing`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.transcription import phrasing

# Phrases Whisper produces from silence or music, learnt from subtitled videos.
_HALLUCINATIONS = re.compile(
    r"^(sous-titr\w+ (réalisés? )?par .*|merci d'avoir regardé.*|thank you for watching.*"
    r"|thanks for watching.*|sous-titrage .*|amara\.org.*)$",
    re.IGNORECASE,
)
# Longer than any of those phrases: text that long is speech, whatever it starts with.
_HALLUCINATION_WORDS = 12


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Presence:
    """A participant in the call from `start` to `end` (seconds from the recording's start)."""

    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    speaker: str
    start: float
    end: float
    text: str


def overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def label_words(
    words: Sequence[Word], turns: Sequence[Turn], *, max_gap: float = 1.0
) -> list[str | None]:
    """The diarization label of each word: most overlap, else the turn around or nearest it.

    A word without duration (Whisper gives many: start == end) overlaps nothing, so it goes
    to the turn it lies in, as a point; a word outside every turn, to the nearest turn within
    `max_gap`. Farther than that: None.
    """
    labels: list[str | None] = []
    for word in words:
        best: str | None = None
        best_overlap = 0.0
        for turn in turns:
            shared = overlap(word.start, word.end, turn.start, turn.end)
            if shared > best_overlap:
                best, best_overlap = turn.label, shared
        if best is None:
            middle = (word.start + word.end) / 2
            nearest = min(
                turns, key=lambda turn: _distance(middle, turn), default=None
            )  # fmt: skip
            if nearest is not None and _distance(middle, nearest) <= max_gap:
                best = nearest.label
        labels.append(best)
    return labels


def _distance(at: float, turn: Turn) -> float:
    """Seconds from `at` to `turn`: 0 inside it."""
    return max(0.0, turn.start - at, at - turn.end)


def name_labels(
    turns: Sequence[Turn], presences: Sequence[Presence], *, threshold: float = 0.5
) -> dict[str, str]:
    """Participant names for the labels that can be named with confidence."""
    speech: dict[str, float] = defaultdict(float)
    covered: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for turn in turns:
        speech[turn.label] += turn.end - turn.start
        for presence in presences:
            covered[turn.label][presence.name] += overlap(
                turn.start, turn.end, presence.start, presence.end
            )
    names: dict[str, str] = {}
    for label, total in speech.items():
        if total <= 0:
            continue
        shares = sorted(
            ((share / total, name) for name, share in covered[label].items()), reverse=True
        )
        if not shares or shares[0][0] < threshold:
            continue
        if len(shares) > 1 and shares[1][0] >= shares[0][0] - 1e-9:
            continue  # two people were there all along: presence cannot tell them apart
        names[label] = shares[0][1]
    return names


def utterances(
    words: Sequence[Word],
    labels: Sequence[str | None],
    names: dict[str, str],
    unknown_name: str,
) -> list[Utterance]:
    """Consecutive words of one speaker as utterances; hallucinated lines dropped.

    `unknown_name` is a template such as "Intervenant {n}", numbered by first appearance. A
    word without a label belongs to the speaker of the word before it (after it, at the start).
    """
    numbers: dict[str, int] = {}

    def speaker_of(label: str) -> str:
        if label in names:
            return names[label]
        if label not in numbers:
            numbers[label] = len(numbers) + 1
        return unknown_name.format(n=numbers[label])

    filled = fill_gaps(labels)
    runs: list[tuple[str, list[Word]]] = []
    for word, label in zip(words, filled, strict=True):
        speaker = speaker_of(label if label is not None else "?")
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    result = [joined(speaker, phrase) for speaker, run in runs for phrase in phrasing.phrases(run)]
    return [u for u in result if u.text and not is_hallucination(u.text)]


def fill_gaps(labels: Sequence[str | None]) -> list[str | None]:
    """Each missing label replaced by the one before it, or the first one after it."""
    filled: list[str | None] = []
    for label in labels:
        filled.append(label if label is not None else (filled[-1] if filled else None))
    following: str | None = None
    for index in range(len(filled) - 1, -1, -1):
        if filled[index] is None:
            filled[index] = following
        else:
            following = filled[index]
    return filled


def joined(speaker: str, words: Sequence[Word]) -> Utterance:
    """Words (in order, not empty) as one utterance."""
    text = ""
    for word in words:
        piece = word.text.strip()
        # Whisper splits "l'équipe" and "peut-on" into two words ("l'", "équipe"; "peut",
        # "-on"): they are written back together.
        glued = piece.startswith(_GLUE_BEFORE) or text.endswith(_GLUE_AFTER)
        text += piece if glued or not text else f" {piece}"
    return Utterance(speaker, words[0].start, max(word.end for word in words), text)


_GLUE_BEFORE = ("'", "\u2019", "-")
_GLUE_AFTER = ("'", "\u2019")


def is_hallucination(text: str) -> bool:
    """A phrase Whisper makes up from silence, said on its own (not leading a real sentence)."""
    text = text.strip()
    return len(text.split()) <= _HALLUCINATION_WORDS and bool(_HALLUCINATIONS.match(text))


_LOOP_TIMES = 3  # a phrase said this many times in a row is Whisper looping, not a person
_LOOP_LONGEST = 8  # the longest phrase looked for, in words


def without_loops(words: Sequence[Word]) -> list[Word]:
    """`words` with Whisper's loops cut to their first time: a phrase of two words or more
    said three times or more in a row ("Good morning everyone. Good morning everyone. Good
    morning everyone.", over a sentence it could not read). People repeat a word ("non, non,
    non"), hardly ever a whole phrase three times over."""
    spoken = [_bare(word.text) for word in words]
    kept: list[Word] = []
    at = 0
    while at < len(words):
        for size in range(2, _LOOP_LONGEST + 1):
            phrase = spoken[at : at + size]
            times = 1
            while spoken[at + times * size : at + (times + 1) * size] == phrase:
                times += 1
            if times >= _LOOP_TIMES:
                kept += words[at : at + size]
                at += times * size
                break
        else:
            kept.append(words[at])
            at += 1
    return kept


def _bare(text: str) -> str:
    return "".join(char for char in text.lower() if char.isalnum())


def speaking_time(items: Iterable[Utterance]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        totals[item.speaker] += item.end - item.start
    return dict(totals)
