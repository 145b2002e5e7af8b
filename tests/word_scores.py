"""How close a transcript's words are to a reference: shared by the model tests."""

from __future__ import annotations

import re


def normalise(text: str) -> list[str]:
    """Lower-case words, hyphens as spaces, typographic apostrophes as plain ones."""
    text = text.lower().replace("-", " ").replace("\u2019", "'")
    return re.findall(r"[\w']+", text)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1] / max(len(ref), 1)
