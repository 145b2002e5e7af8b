"""Stretches of speech cut from recordings, grouped into windows and spliced for a model. Pure.

A `Piece` is one stretch of speech (what voice activity found) with its place on the meeting's
time line. Models get pieces spliced end to end with a short silence between them, so that
silence costs nothing; a `Splice` maps the model's times back to the meeting's.
Whisper reads 30 s at a time, so recognition windows hold at most `WINDOW_S` of audio; a window
is cut between pieces, never inside one, so no word is cut in two.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bridge.transcription.ports import Samples

GAP_S = 0.3  # silence between spliced pieces: Whisper ends a segment there
WINDOW_S = 28.0  # a recognition window, gaps included: under Whisper's 30 s, with a margin


@dataclass(frozen=True, eq=False)
class Piece:
    start: float  # seconds on the meeting's time line
    samples: Samples
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def end(self) -> float:
        return self.start + self.duration


def cut(
    samples: Samples, sample_rate: int, regions: Sequence[tuple[float, float]], offset: float
) -> list[Piece]:
    """The pieces of `samples` in `regions` (seconds in the file), placed at `offset` + start."""
    pieces = []
    for start, end in regions:
        first, last = round(start * sample_rate), min(samples.size, round(end * sample_rate))
        if last > first:
            # A copy, not a view: the track's own samples (mostly silence) can then be freed.
            part = samples[first:last].copy()
            pieces.append(Piece(offset + first / sample_rate, part, sample_rate))
    return pieces


def speech_seconds(pieces: Sequence[Piece]) -> float:
    return sum(piece.duration for piece in pieces)


def windows(
    pieces: Sequence[Piece], *, limit: float = WINDOW_S, target: float | None = None
) -> list[list[Piece]]:
    """Consecutive pieces grouped, each group spliced at most `limit` seconds long.

    With `target`, a group closes as soon as it holds that much speech (a group for language
    detection needs ~10 s to be sure, and more only costs time). A piece longer than `limit`
    is a group of its own.
    """
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    length = 0.0
    for piece in pieces:
        extra = piece.duration + (GAP_S if current else 0.0)
        if current and length + extra > limit:
            groups.append(current)
            current, length, extra = [], 0.0, piece.duration
        current.append(piece)
        length += extra
        if target is not None and speech_seconds(current) >= target:
            groups.append(current)
            current, length = [], 0.0
    if current:
        groups.append(current)
    return groups


class Splice:
    """Pieces end to end with `gap` seconds of silence between them, and the way back."""

    def __init__(self, pieces: Sequence[Piece], gap: float = GAP_S) -> None:
        if not pieces:
            raise ValueError("nothing to splice")
        rate = pieces[0].sample_rate
        silence = np.zeros(round(gap * rate), dtype=np.float32)
        parts: list[Samples] = []
        self._at: list[float] = []  # where each piece starts in the splice
        cursor = 0
        for index, piece in enumerate(pieces):
            if index:
                parts.append(silence)
                cursor += silence.size
            self._at.append(cursor / rate)
            parts.append(piece.samples.astype(np.float32, copy=False))
            cursor += piece.samples.size
        self.samples: Samples = np.concatenate(parts)
        self.sample_rate = rate
        self._pieces = list(pieces)

    def word_to_meeting(self, start: float, end: float) -> tuple[float, float]:
        """A recognised word's times in the splice as times in the meeting, inside one piece.

        Whisper's word timings are aligned after the fact and often stretch a piece's last
        word over the silence into the next piece: mapped as they are, "again." said at 4.9 s
        ended at 13 s, after a reconnection, and glued the next sentence to it. A word is
        said within one piece: the one it starts in (after a gap, the next one)."""
        index = self._piece_at(start)
        piece = self._pieces[index]
        if start - self._at[index] > piece.duration and index + 1 < len(self._pieces):
            index += 1  # starts in the silence after a piece: the next piece's first word
            piece = self._pieces[index]
        into_start = min(max(0.0, start - self._at[index]), piece.duration)
        into_end = min(max(into_start, end - self._at[index]), piece.duration)
        return piece.start + into_start, piece.start + into_end

    def _piece_at(self, at: float) -> int:
        return max(0, bisect.bisect_right(self._at, at) - 1)

    def to_meeting(self, at: float, *, is_end: bool = False) -> float:
        """A time in the splice as a time on the meeting's time line.

        A time in a gap goes to the end of the piece before (an end) or to the start of the
        piece after (a start): a word never spans the silence that was cut out.
        """
        index = self._piece_at(at)
        piece, into = self._pieces[index], at - self._at[index]
        if into <= piece.duration:
            return piece.start + max(0.0, into)
        if is_end or index + 1 == len(self._pieces):
            return piece.end
        return self._pieces[index + 1].start
