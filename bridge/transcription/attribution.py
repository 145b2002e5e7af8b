"""Who said what: words onto diarization turns, speaker labels onto participants' names. Pure.

Speech-to-text gives timed words; diarization gives timed turns with anonymous labels
(`SPEAKER_00`…). Each word goes to the label it overlaps most. Each label gets a participant's
name when the participant's presence covers at least `threshold` of that label's speech and no
one else's does as well (La Suite Meet's overlap approach, adapted: the bridge knows presence
intervals, not speaking times, so a tie leaves the label unnamed rather than guessing). Several
labels of one person merge into that person; unnamed labels become "Intervenant 1, 2…".
Consecutive words of one speaker form one utterance.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Phrases Whisper produces from silence or music, learnt from subtitled videos.
_HALLUCINATIONS = re.compile(
    r"^(sous-titr\w+ (réalisés? )?par .*|merci d'avoir regardé.*|thank you for watching.*"
    r"|thanks for watching.*|sous-titrage .*|amara\.org.*)$",
    re.IGNORECASE,
)


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
    """The diarization label of each word: most overlap, else the nearest turn within `max_gap`."""
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
                turns,
                key=lambda turn: min(abs(middle - turn.start), abs(middle - turn.end)),
                default=None,
            )
            if (
                nearest is not None
                and min(abs(middle - nearest.start), abs(middle - nearest.end)) <= max_gap
            ):
                best = nearest.label
        labels.append(best)
    return labels


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
    """Consecutive words of one speaker as one utterance; hallucinated lines dropped.

    `unknown_name` is a template such as "Intervenant {n}", numbered by first appearance.
    """
    numbers: dict[str, int] = {}

    def speaker_of(label: str | None) -> str:
        key = label or "?"
        if label in names:
            return names[label]
        if key not in numbers:
            numbers[key] = len(numbers) + 1
        return unknown_name.format(n=numbers[key])

    result: list[Utterance] = []
    for word, label in zip(words, labels, strict=True):
        speaker = speaker_of(label)
        if result and result[-1].speaker == speaker:
            last = result[-1]
            result[-1] = Utterance(
                speaker, last.start, word.end, f"{last.text} {word.text.strip()}"
            )
        else:
            result.append(Utterance(speaker, word.start, word.end, word.text.strip()))
    return [u for u in result if u.text and not _HALLUCINATIONS.match(u.text.strip())]


def speaking_time(items: Iterable[Utterance]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        totals[item.speaker] += item.end - item.start
    return dict(totals)
