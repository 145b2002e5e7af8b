"""Each participant's own audio tracks into one transcript: who said what is known, not guessed.

Per participant (all their tracks: a mute or a reconnect gives several), the tracks are decoded,
voice activity keeps the speech (`vad`), each stretch is recognised in its own language
(`stretches`), and every word belongs to that participant, unless their microphone carried
several voices (`voices`). All words then go into utterances per speaker and in time order:
when two people talk at once, both are kept.

CPU-bound from start to finish: call it from a worker thread, never the event loop. One
participant's speech is in memory at a time, not the meeting's audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from bridge.transcription import phrasing
from bridge.transcription.attribution import Utterance, Word, is_hallucination, joined
from bridge.transcription.audio import AudioError, decode, is_silent
from bridge.transcription.language import ranked
from bridge.transcription.ports import (
    DiarizerLike,
    LanguageDetectorLike,
    RecogniserLike,
    VoiceActivityLike,
    VoiceEmbedderLike,
)
from bridge.transcription.speech import Piece, cut, speech_seconds
from bridge.transcription.stretches import hear
from bridge.transcription.timing import Stages
from bridge.transcription.transcript import TrackAudio, Transcript
from bridge.transcription.voices import speakers_of

log = logging.getLogger(__name__)


def transcribe_tracks(
    tracks: Sequence[TrackAudio],
    language: str | None,
    *,
    vad: VoiceActivityLike,
    detector: LanguageDetectorLike | None,
    recogniser_for: Callable[[str], RecogniserLike],
    embedder: VoiceEmbedderLike,
    diarizer: DiarizerLike,
    voice_name: str,
) -> Transcript:
    """The meeting's utterances from its participants' tracks.

    `language` (the room's transcript language, or None) is used where detection is unsure;
    `detector` None means an English-only model. `voice_name` ("{name} — voix {n}") names the
    voices of a track that carries several. A track that cannot be decoded is left out (and
    logged); `AudioError` only when no track can be.
    """
    stages = Stages()
    said: list[tuple[str, Word]] = []
    languages: list[str] = []
    failures: list[AudioError] = []
    for speaker, own in _by_speaker(tracks).items():
        pieces: list[Piece] = []
        for track in own:
            try:
                with stages.timing("decode"):
                    samples, rate = decode(track.path)
            except AudioError as err:
                log.warning("Track %s of %s left out: %s", track.path.name, speaker, err)
                failures.append(err)
                continue
            if is_silent(samples):
                continue
            with stages.timing("vad"):
                regions = vad.speech(samples, rate)
            pieces += cut(samples, rate, regions, track.offset)
            # The pieces are copies: the track's silence need not stay while the next decodes.
            del samples
        pieces.sort(key=lambda piece: piece.start)
        heard = hear(
            pieces, language, detector=detector, recogniser_for=recogniser_for, stages=stages
        )
        with stages.timing("voices"):
            names = speakers_of(
                heard.words, pieces, speaker, voice_name, embedder=embedder, diarizer=diarizer
            )
        said += zip(names, heard.words, strict=True)
        languages += heard.languages
        log.info(
            "%s: %d track(s), %.1f s of speech, %d words, %d voice(s)",
            speaker,
            len(own),
            speech_seconds(pieces),
            len(heard.words),
            len(set(names)),
        )
    if failures and len(failures) == len(tracks):
        raise failures[0]
    with stages.timing("merge"):
        utterances = merge(said)
    return Transcript(utterances, ranked(languages), stages.seconds)


def _by_speaker(tracks: Sequence[TrackAudio]) -> dict[str, list[TrackAudio]]:
    grouped: dict[str, list[TrackAudio]] = {}
    for track in sorted(tracks, key=lambda track: track.offset):
        grouped.setdefault(track.speaker, []).append(track)
    return grouped


def merge(said: Iterable[tuple[str, Word]]) -> list[Utterance]:
    """Words with their speakers as utterances in time order; overlapping speakers both kept."""
    by_speaker: dict[str, list[Word]] = {}
    for speaker, word in said:
        by_speaker.setdefault(speaker, []).append(word)
    result = [
        joined(speaker, phrase)
        for speaker, words in by_speaker.items()
        for phrase in phrasing.phrases(sorted(words, key=lambda word: (word.start, word.end)))
    ]
    result.sort(key=lambda u: (u.start, u.end, u.speaker))
    return [u for u in result if u.text and not is_hallucination(u.text)]
