"""One speaker's words cut into utterances a reader can follow. Pure.

A transcript line should be one thought: a new utterance starts after a pause, after a sentence
once the utterance is long, and in any case before it grows past `MAX_S` (a monologue otherwise
became one 37 s paragraph).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class _Timed(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...


W = TypeVar("W", bound=_Timed)  # a recognised word (attribution.Word)

PAUSE_S = 1.5  # a longer silence between two words starts a new utterance
LONG_S = 12.0  # an utterance this long ends at the next sentence end
MAX_S = 25.0  # no utterance is longer: cut before the word that would pass it
_SENTENCE_END = (".", "?", "!", "…", "。")


def ends_sentence(text: str) -> bool:
    return text.rstrip("\"'»”)]").endswith(_SENTENCE_END)


def phrases(words: Sequence[W]) -> list[list[W]]:
    """`words` (one speaker's, in time order) in groups, each one utterance."""
    groups: list[list[W]] = []
    for word in words:
        if groups:
            current = groups[-1]
            first, last = current[0], current[-1]
            if not (
                word.start - last.end > PAUSE_S
                or (ends_sentence(last.text) and last.end - first.start >= LONG_S)
                or word.end - first.start > MAX_S
            ):
                current.append(word)
                continue
        groups.append([word])
    return groups
