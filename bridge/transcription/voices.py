"""More than one voice on one participant's track (a meeting room on one microphone)?

Almost every track carries one voice, and diarizing each would cost pyannote's full price per
second of speech. So a cheap check comes first: CAM++ embeddings of 2 s windows spread over
the speaker's speech (at most `MAX_WINDOWS`, so the check's cost stops growing), clustered.
Only when two clusters each hold a fair share of the windows does pyannote diarize that
speaker's speech; its voices are then named "{name} — voix 1, 2…" in order of first words,
and a voice with too little speech to be sure of is folded into the others. One voice keeps
the plain name: splitting one person in two is worse than missing a rare second voice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bridge.transcription.attribution import Turn, Word, fill_gaps, label_words
from bridge.transcription.ports import DiarizerLike, Samples, VoiceEmbedderLike
from bridge.transcription.speech import Piece, Splice, speech_seconds

WINDOW_S = 2.0  # CAM++ tells voices apart on 2 s of speech
MAX_WINDOWS = 60
MIN_SPEECH_S = 12.0  # under this, a track is taken as one voice: too little to tell
# Average-linkage clustering of cosine distances between window embeddings. Measured on
# espeak-ng voices: one voice's windows sit 0.12-0.19 apart (median), two voices 0.33-0.64;
# real voices differ far more than one synthesiser's. 0.4 errs towards one voice.
THRESHOLD = 0.4
MIN_SHARE = 0.15  # a second voice holds at least this share of the windows…
MIN_WINDOWS = 3  # …and at least this many
MIN_VOICE_S = 3.0  # a diarized voice with less speech than this is folded into the others


def sample_windows(pieces: Sequence[Piece], limit: int = MAX_WINDOWS) -> list[Samples]:
    """Non-overlapping `WINDOW_S` windows inside the pieces, evenly spread, at most `limit`."""
    candidates: list[tuple[Piece, int]] = []
    for piece in pieces:
        size = round(WINDOW_S * piece.sample_rate)
        candidates += [(piece, first) for first in range(0, piece.samples.size - size + 1, size)]
    if len(candidates) > limit:
        keep = np.linspace(0, len(candidates) - 1, limit).round().astype(int)
        candidates = [candidates[int(index)] for index in keep]
    return [
        piece.samples[first : first + round(WINDOW_S * piece.sample_rate)]
        for piece, first in candidates
    ]


def clusters(embeddings: npt.NDArray[np.float32], threshold: float = THRESHOLD) -> list[int]:
    """Average-linkage agglomerative clustering on cosine distance; a cluster number per row.

    Merges the two closest clusters while their mean distance is under `threshold`, keeping
    cluster-to-cluster means up to date (Lance-Williams), so each merge costs O(n).
    """
    count = len(embeddings)
    distance = (1.0 - embeddings @ embeddings.T).astype(np.float64)
    np.fill_diagonal(distance, np.inf)
    sizes = np.ones(count)
    owner = list(range(count))  # each row's cluster, named by one of its rows
    alive = np.ones(count, dtype=bool)
    while alive.sum() > 1:
        masked = np.where(alive[:, None] & alive[None, :], distance, np.inf)
        a, b = np.unravel_index(int(np.argmin(masked)), masked.shape)
        if masked[a, b] >= threshold:
            break
        merged = (sizes[a] * distance[a] + sizes[b] * distance[b]) / (sizes[a] + sizes[b])
        distance[a, :] = merged
        distance[:, a] = merged
        distance[a, a] = np.inf
        sizes[a] += sizes[b]
        alive[b] = False
        owner = [int(a) if cluster == b else cluster for cluster in owner]
    numbers: dict[int, int] = {}
    return [numbers.setdefault(cluster, len(numbers)) for cluster in owner]


def several_voices(embeddings: npt.NDArray[np.float32]) -> bool:
    """Whether the windows hold two voices or more, each with a fair share."""
    labels = clusters(embeddings)
    sizes = np.bincount(labels) if labels else np.zeros(0, dtype=int)
    enough = max(MIN_WINDOWS, MIN_SHARE * len(labels))
    return int(np.sum(sizes >= enough)) >= 2


def name_voices(
    words: Sequence[Word], turns: Sequence[Turn], speaker: str, voice_name: str
) -> list[str]:
    """Each word's speaker: `voice_name` numbered by first words when the turns hold several
    voices with enough speech each, else the plain `speaker`."""
    speech: dict[str, float] = {}
    for turn in turns:
        speech[turn.label] = speech.get(turn.label, 0.0) + turn.end - turn.start
    kept = [turn for turn in turns if speech[turn.label] >= MIN_VOICE_S]
    if len({turn.label for turn in kept}) < 2:
        return [speaker] * len(words)
    numbers: dict[str, int] = {}
    names: list[str] = []
    for label in fill_gaps(label_words(words, kept)):
        if label is None:  # no turn near any word: nothing to tell them apart by
            return [speaker] * len(words)
        numbers.setdefault(label, len(numbers) + 1)
        names.append(voice_name.format(name=speaker, n=numbers[label]))
    if len(numbers) < 2:
        return [speaker] * len(words)
    return names


def speakers_of(
    words: Sequence[Word],
    pieces: Sequence[Piece],
    speaker: str,
    voice_name: str,
    *,
    embedder: VoiceEmbedderLike,
    diarizer: DiarizerLike,
) -> list[str]:
    """Who said each of `words` (one participant's words, said in `pieces`)."""
    if not words or speech_seconds(pieces) < MIN_SPEECH_S:
        return [speaker] * len(words)
    windows = sample_windows(pieces)
    if len(windows) < 2 * MIN_WINDOWS:
        return [speaker] * len(words)
    if not several_voices(embedder.embed(windows, pieces[0].sample_rate)):
        return [speaker] * len(words)
    splice = Splice(pieces)
    turns = [
        Turn(splice.to_meeting(turn.start), splice.to_meeting(turn.end, is_end=True), turn.label)
        for turn in diarizer.diarize(splice.samples, splice.sample_rate)
    ]
    return name_voices(words, turns, speaker, voice_name)
