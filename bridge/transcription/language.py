"""Which language each stretch of speech is in: detections weighed, the room's as fallback. Pure.

Whisper's language detection is reliable on ~8 s of speech or more (measured on synthetic
English, French and German: ≥ 0.75 for the right language), unreliable on 2 s (French read as
English at 0.64). So a detection counts when it rests on enough speech and is clear, or is
near certain; an unsure one takes the language of the same speaker's nearest sure stretch
(people keep their language for a while), and with none, the room's transcript language.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ENOUGH_SPEECH_S = 6.0
CLEAR = 0.5  # top probability that counts on enough speech
CERTAIN = 0.9  # top probability that counts on any length of speech


@dataclass(frozen=True)
class Detection:
    probabilities: list[tuple[str, float]]  # most likely first
    speech_s: float  # seconds of speech it rests on

    @property
    def best(self) -> str | None:
        return self.probabilities[0][0] if self.probabilities else None

    @property
    def top(self) -> float:
        return self.probabilities[0][1] if self.probabilities else 0.0

    @property
    def sure(self) -> bool:
        top = self.top
        return top >= CERTAIN or (top >= CLEAR and self.speech_s >= ENOUGH_SPEECH_S)


def decide(detections: Sequence[Detection], fallback: str | None) -> list[str]:
    """One language per detection, in order (one speaker's stretches, in time order)."""
    return settle(
        [detection.best if detection.sure else None for detection in detections],
        [detection.best for detection in detections],
        fallback,
    )


def settle(
    decided: Sequence[str | None], guesses: Sequence[str | None], fallback: str | None
) -> list[str]:
    """Each undecided stretch takes the language of the nearest decided one (the earlier on a
    tie); with none decided, `fallback`, else its own best guess, else English."""
    known = [index for index, language in enumerate(decided) if language is not None]
    chosen: list[str] = []
    for index, language in enumerate(decided):
        if language is not None:
            chosen.append(language)
        elif known:
            nearest = min(known, key=lambda other: (abs(other - index), other > index))
            chosen.append(decided[nearest] or "en")
        else:
            chosen.append(fallback or guesses[index] or "en")
    return chosen


def switches(chosen: Sequence[str]) -> set[int]:
    """Stretches next to one in another language: where a switch may hide inside a stretch."""
    return {
        index
        for index in range(len(chosen))
        if (index > 0 and chosen[index - 1] != chosen[index])
        or (index + 1 < len(chosen) and chosen[index + 1] != chosen[index])
    }


def ranked(languages: Iterable[str]) -> list[str]:
    """Languages most frequent first (one entry per word heard), ties alphabetical."""
    counts = Counter(languages)
    return sorted(counts, key=lambda language: (-counts[language], language))
