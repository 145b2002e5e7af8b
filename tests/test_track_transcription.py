"""The per-participant path and its stages, with hand-made audio and model doubles (no models).

The doubles read a code out of the audio: each "word" is a burst of constant loudness, its code
the loudness in thousandths of full scale. The recogniser double writes the code and the
language it was asked for ("w101-en"), the detector double calls codes from 500 up German, and
the voice doubles put codes with an odd hundreds digit on one voice, even on another. So a test
knows which word is which, where it was said, which language it went through, and whose voice
it is, and checks what the pipeline did with them.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import transcription_audio as synth

from bridge.transcription import language, phrasing
from bridge.transcription.attribution import Turn, Utterance, Word
from bridge.transcription.audio import AudioError
from bridge.transcription.language import Detection, decide, ranked, settle, switches
from bridge.transcription.pipeline import transcribe
from bridge.transcription.ports import Samples
from bridge.transcription.speech import Piece, Splice, cut, windows
from bridge.transcription.tracks import merge, transcribe_tracks
from bridge.transcription.transcript import TrackAudio
from bridge.transcription.vad import loud_spans
from bridge.transcription.voices import clusters, name_voices, several_voices

RATE = 16_000
VOICE = "{name} — voix {n}"
STAGES = {"decode", "vad", "language", "recognition", "voices", "merge"}


# ---------------------------------------------------------------- phrasing and merging


def w(start: float, end: float, text: str = "mot") -> Word:
    return Word(start, end, text)


def test_a_pause_starts_a_new_utterance() -> None:
    words = [w(0, 0.5), w(0.6, 1.0), w(2.6, 3.0), w(3.1, 3.5)]
    assert [len(group) for group in phrasing.phrases(words)] == [2, 2]


def test_a_long_utterance_ends_at_a_sentence_end_a_short_one_does_not() -> None:
    short = [w(0, 0.5, "Oui."), w(0.6, 1.0, "Bien")]
    assert len(phrasing.phrases(short)) == 1
    long = [w(i * 0.5, i * 0.5 + 0.4) for i in range(26)] + [w(13.0, 13.4, "fin.")]
    long += [w(13.5, 13.9, "Suite")]
    groups = phrasing.phrases(long)
    assert [g[-1].text for g in groups] == ["fin.", "Suite"]


def test_no_utterance_passes_the_maximum_length() -> None:
    words = [w(i * 0.4, i * 0.4 + 0.3) for i in range(200)]  # 80 s, no sentence end
    groups = phrasing.phrases(words)
    assert all(g[-1].end - g[0].start <= phrasing.MAX_S for g in groups)
    assert sum(len(g) for g in groups) == 200


def test_merging_keeps_both_speakers_when_they_overlap_and_orders_by_time() -> None:
    said = [
        ("Alice", w(0.0, 0.5, "Bonjour")),
        ("Alice", w(0.6, 1.2, "à")),
        ("Alice", w(1.3, 2.0, "tous.")),
        ("Bob", w(0.9, 1.4, "Salut")),  # while Alice talks
        ("Alice", w(30.0, 30.5, "Ensuite")),  # a later track of Alice's, after a reconnect
    ]
    assert merge(said) == [
        Utterance("Alice", 0.0, 2.0, "Bonjour à tous."),
        Utterance("Bob", 0.9, 1.4, "Salut"),
        Utterance("Alice", 30.0, 30.5, "Ensuite"),
    ]


# ---------------------------------------------------------------- speech pieces


def piece(start: float, seconds: float, value: float = 0.1) -> Piece:
    return Piece(start, np.full(round(seconds * RATE), value, dtype=np.float32), RATE)


def test_windows_are_cut_between_pieces_and_stay_under_the_limit() -> None:
    pieces = [piece(i * 10.0, 8.0) for i in range(5)]
    groups = windows(pieces, limit=28.0)
    assert [len(g) for g in groups] == [
        3,
        2,
    ]  # 3 pieces of 8 s and 2 gaps fit in 28 s; a 4th does not
    assert [len(g) for g in windows(pieces, target=10.0)] == [2, 2, 1]


def test_a_splice_maps_its_times_back_to_the_meeting() -> None:
    splice = Splice([piece(10.0, 2.0), piece(50.0, 1.0)], gap=0.5)
    assert splice.samples.size == round(3.5 * RATE)
    assert splice.to_meeting(1.0) == pytest.approx(11.0)
    assert splice.to_meeting(2.7) == pytest.approx(50.2)
    # In the gap: an end stays with the piece before, a start goes to the piece after.
    assert splice.to_meeting(2.2, is_end=True) == pytest.approx(12.0)
    assert splice.to_meeting(2.2) == pytest.approx(50.0)


def test_a_word_stays_inside_the_piece_it_starts_in() -> None:
    splice = Splice([piece(10.0, 2.0), piece(50.0, 1.0)], gap=0.5)
    # Whisper stretched the first piece's last word over the gap into the second piece.
    assert splice.word_to_meeting(1.8, 2.7) == pytest.approx((11.8, 12.0))
    # A word starting in the gap is the second piece's first word.
    assert splice.word_to_meeting(2.3, 2.8) == pytest.approx((50.0, 50.3))
    assert splice.word_to_meeting(2.6, 2.9) == pytest.approx((50.1, 50.4))
    # A word timed past the end of the last piece stays in it.
    assert splice.word_to_meeting(3.3, 3.9) == pytest.approx((50.8, 51.0))


def test_cut_places_pieces_at_the_tracks_offset() -> None:
    samples = np.zeros(10 * RATE, dtype=np.float32)
    pieces = cut(samples, RATE, [(1.0, 2.0), (5.0, 7.5)], offset=100.0)
    assert [(p.start, p.duration) for p in pieces] == [(101.0, 1.0), (105.0, 2.5)]


def test_the_loudness_gate_keeps_sound_with_a_margin_and_skips_silence() -> None:
    samples = np.zeros(20 * RATE, dtype=np.float32)
    samples[5 * RATE : 6 * RATE] = 0.05
    spans = loud_spans(samples, RATE, pad=0.5)
    assert len(spans) == 1
    start, end = spans[0]
    assert 4.4 * RATE <= start <= 4.6 * RATE and 6.4 * RATE <= end <= 6.6 * RATE
    assert loud_spans(np.zeros(RATE, dtype=np.float32), RATE) == []


# ---------------------------------------------------------------- languages


def detection(best: str, p: float, speech: float = 10.0) -> Detection:
    return Detection([(best, p), ("xx", 1 - p)], speech)


def test_sure_detections_count_unsure_ones_follow_the_nearest_sure_one() -> None:
    found = [detection("en", 0.9), detection("de", 0.4), detection("de", 0.95, speech=2.0)]
    assert decide(found, "fr") == ["en", "en", "de"]
    assert settle([None, "en", None, None, "de"], [None] * 5, "fr") == [
        "en",
        "en",
        "en",
        "de",
        "de",
    ]


def test_short_speech_needs_a_near_certain_detection() -> None:
    # 2 s of French were once read as English at 0.64: not enough to believe it.
    assert decide([detection("en", 0.64, speech=2.0)], "fr") == ["fr"]
    assert decide([detection("en", 0.64, speech=2.0)], None) == ["en"]
    assert decide([detection("en", 0.64, speech=8.0)], "fr") == ["en"]


def test_switches_and_ranking() -> None:
    assert switches(["en", "en", "de", "de"]) == {1, 2}
    assert switches(["fr", "fr"]) == set()
    assert ranked(["fr", "en", "fr", "de", "en", "fr"]) == ["fr", "en", "de"]
    assert language.ranked([]) == []


# ---------------------------------------------------------------- voices


def unit(*values: float) -> Samples:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_two_voices_are_found_and_one_voice_is_never_split() -> None:
    rng = np.random.default_rng(3)
    a, b = unit(1, 0, 0, 0), unit(0, 1, 0, 0)
    jitter = [rng.normal(0, 0.15, 4).astype(np.float32) for _ in range(20)]
    one = np.stack([unit(*(a + j)) for j in jitter])
    two = np.stack([unit(*((a if i % 2 else b) + j)) for i, j in enumerate(jitter)])
    assert not several_voices(one)
    assert len(set(clusters(one))) == 1
    assert several_voices(two)
    # A second voice in one window of twenty: too little to tell.
    rare = np.concatenate([one[:19], b[None, :]])
    assert not several_voices(rare)


def test_voices_are_numbered_by_first_words_and_a_slight_one_is_folded() -> None:
    words = [w(1, 2, "a"), w(5, 6, "b"), w(9, 10, "c"), w(20.2, 20.4, "d")]
    turns = [Turn(4, 8, "SPEAKER_01"), Turn(0, 3, "SPEAKER_00"), Turn(8.5, 11, "SPEAKER_01")]
    turns.append(Turn(20.0, 20.5, "SPEAKER_02"))  # half a second: folded into its neighbours
    names = name_voices(words, sorted(turns, key=lambda t: t.start), "Salle", VOICE)
    assert names == ["Salle — voix 1", "Salle — voix 2", "Salle — voix 2", "Salle — voix 2"]
    one = [Turn(0, 30, "SPEAKER_00")]
    assert name_voices(words, one, "Salle", VOICE) == ["Salle"] * 4


# ---------------------------------------------------------------- the path, with doubles


def codes(samples: Samples) -> npt.NDArray[np.int64]:
    return np.rint(np.abs(samples) * 1000).astype(np.int64)


def runs(samples: Samples, sample_rate: int) -> list[tuple[float, float, int]]:
    """(start, end, code) of each stretch of one nonzero code."""
    found: list[tuple[float, float, int]] = []
    values = codes(samples)
    edges = np.flatnonzero(np.diff(values)) + 1
    for first, last in zip([0, *edges], [*edges, values.size], strict=True):
        if values[first] > 1 and last - first >= sample_rate // 10:
            found.append((first / sample_rate, last / sample_rate, int(values[first])))
    return found


class Vad:
    def speech(self, samples: Samples, sample_rate: int) -> list[tuple[float, float]]:
        return [(start, end) for start, end, _ in runs(samples, sample_rate)]


class Detector:
    def __init__(self, sure: bool = True) -> None:
        self.sure = sure

    def detect_language(self, waveform: Samples, sample_rate: int) -> list[tuple[str, float]]:
        if not self.sure:
            return [("en", 0.4), ("fr", 0.3)]
        spoken = codes(waveform)
        german = np.count_nonzero(spoken >= 500)
        share = german / max(german + np.count_nonzero((spoken > 1) & (spoken < 500)), 1)
        if 0.4 <= share <= 0.6:  # half and half: the vote is split, as Whisper's is
            return [("de", 0.46), ("en", 0.45)]
        return [("de", 0.95), ("en", 0.03)] if share > 0.5 else [("en", 0.95), ("de", 0.03)]


class Recogniser:
    """`smear` seconds added to each word's end: Whisper's alignment lets a piece's last word
    run on into the silence after it, and past the silence spliced between pieces."""

    def __init__(self, smear: float = 0.0) -> None:
        self.languages: list[str] = []
        self.smear = smear

    def recognise(
        self,
        waveform: Samples,
        sample_rate: int = RATE,
        *,
        language: str | None = None,
        vad: bool = True,
    ) -> list[Word]:
        assert not vad  # the pipelines hand over speech only
        self.languages.append(language or "?")
        found = runs(waveform, sample_rate)
        return [Word(s, e + self.smear, f"w{code}-{language}") for s, e, code in found]


def voice_of(code: int) -> int:
    return (code // 100) % 2


class Embedder:
    def embed(self, windows: Sequence[Samples], sample_rate: int) -> Samples:
        rows = []
        for window in windows:
            heard = codes(window)
            rows.append(unit(1, 0) if voice_of(int(np.max(heard))) else unit(0, 1))
        return np.stack(rows)


class Diarizer:
    def __init__(self) -> None:
        self.calls = 0

    def diarize(self, waveform: Samples, sample_rate: int) -> list[Turn]:
        self.calls += 1
        return [Turn(s, e, f"SPK{voice_of(c)}") for s, e, c in runs(waveform, sample_rate)]


class Refuses:
    """A model stage that must not be reached."""

    def speech(self, samples: Samples, sample_rate: int) -> list[tuple[float, float]]:
        raise AssertionError("voice activity run on silence")

    def diarize(self, waveform: Samples, sample_rate: int) -> list[Turn]:
        raise AssertionError("diarizer called")

    def embed(self, windows: Sequence[Samples], sample_rate: int) -> Samples:
        raise AssertionError("embedder called")


def track(path: Path, bursts: list[tuple[float, float, int]], seconds: float) -> Path:
    """A WAV with a burst of each code from start to end (seconds), silence elsewhere."""
    samples = np.zeros(round(seconds * RATE))
    for start, end, code in bursts:
        first, last = round(start * RATE), round(end * RATE)
        sign = np.where(np.arange(last - first) % 2, -1.0, 1.0)  # no DC: an audio codec's shape
        samples[first:last] = sign * code / 1000
    synth.write_wav(path, np.rint(samples * 32768).clip(-32768, 32767))
    return path


@pytest.fixture
def ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        synth.ensure_tools()


def run_tracks(
    tracks: Sequence[TrackAudio],
    language: str | None = "en",
    *,
    detector: Detector | None = None,
    embedder: Embedder | Refuses | None = None,
    diarizer: Diarizer | Refuses | None = None,
) -> tuple[list[Utterance], list[str], dict[str, float]]:
    recogniser = Recogniser()
    result = transcribe_tracks(
        tracks,
        language,
        vad=Vad(),
        detector=detector or Detector(),
        recogniser_for=lambda _language: recogniser,
        embedder=embedder or Embedder(),
        diarizer=diarizer or Diarizer(),
        voice_name=VOICE,
    )
    return result.utterances, result.languages, result.stages


@pytest.mark.usefixtures("ffmpeg")
def test_each_word_belongs_to_its_track_at_its_offset_and_overlap_keeps_both(
    tmp_path: Path,
) -> None:
    alice = track(tmp_path / "alice.wav", [(1.0, 1.5, 101), (1.6, 2.2, 102)], 5.0)
    bob = track(tmp_path / "bob.wav", [(1.8, 2.6, 111)], 5.0)  # while Alice talks
    rejoined = track(tmp_path / "alice2.wav", [(0.5, 1.0, 103)], 2.0)  # Alice after a reconnect
    utterances, languages, stages = run_tracks(
        [
            TrackAudio("Alice", alice, 0.0),
            TrackAudio("Bob", bob, 0.0),
            TrackAudio("Alice", rejoined, 30.0),
        ]
    )
    assert [(u.speaker, u.text) for u in utterances] == [
        ("Alice", "w101-en w102-en"),
        ("Bob", "w111-en"),
        ("Alice", "w103-en"),
    ]
    assert [u.start for u in utterances] == pytest.approx([1.0, 1.8, 30.5], abs=0.01)
    assert utterances[-1].end == pytest.approx(31.0, abs=0.01)
    assert languages == ["en"]
    assert STAGES <= set(stages) and all(seconds >= 0 for seconds in stages.values())


@pytest.mark.usefixtures("ffmpeg")
def test_a_sentence_before_a_reconnection_is_not_glued_to_the_one_after(tmp_path: Path) -> None:
    before = track(tmp_path / "before.wav", [(0.5, 2.0, 101)], 2.5)  # then her worker died
    after = track(tmp_path / "after.wav", [(1.0, 2.0, 102)], 2.5)  # recorded by another
    recogniser = Recogniser(smear=1.0)
    result = transcribe_tracks(
        [TrackAudio("Alice", before, 3.0), TrackAudio("Alice", after, 12.0)],
        "en",
        vad=Vad(),
        detector=Detector(),
        recogniser_for=lambda _language: recogniser,
        embedder=Embedder(),
        diarizer=Diarizer(),
        voice_name=VOICE,
    )
    assert [(u.text, u.start, u.end) for u in result.utterances] == [
        ("w101-en", pytest.approx(3.5), pytest.approx(5.0)),
        ("w102-en", pytest.approx(13.0), pytest.approx(14.0)),
    ]


@pytest.mark.usefixtures("ffmpeg")
def test_a_speaker_who_switches_language_is_heard_in_both(tmp_path: Path) -> None:
    # Three English words, then German: the detection group that holds the switch is mostly
    # English, and only the check of each piece next to the switch moves "w701" to German.
    bursts = [(1 + 3.5 * i, 4 + 3.5 * i, code) for i, code in enumerate([101, 102, 103, 701])]
    bursts += [(15 + 3.5 * i, 18 + 3.5 * i, code) for i, code in enumerate([702, 703, 704])]
    path = track(tmp_path / "hans.wav", bursts, 30.0)
    utterances, languages, _ = run_tracks([TrackAudio("Hans", path, 0.0)], "fr")
    said = " ".join(u.text for u in utterances).split()
    assert said == ["w101-en", "w102-en", "w103-en", "w701-de", "w702-de", "w703-de", "w704-de"]
    assert languages == ["de", "en"]  # most words first


@pytest.mark.usefixtures("ffmpeg")
def test_a_switch_in_the_middle_of_a_detection_group_is_found(tmp_path: Path) -> None:
    # Two English pieces and two German ones make one group, whose detection is split; each
    # piece is then checked on its own. The last German piece, alone in its group, follows.
    codes_said = [101, 102, 701, 702, 703]
    bursts = [(1 + 3.5 * i, 4 + 3.5 * i, code) for i, code in enumerate(codes_said)]
    path = track(tmp_path / "hans.wav", bursts, 20.0)
    utterances, languages, _ = run_tracks([TrackAudio("Hans", path, 0.0)], "fr")
    said = " ".join(u.text for u in utterances).split()
    assert said == ["w101-en", "w102-en", "w701-de", "w702-de", "w703-de"]
    assert languages == ["de", "en"]


@pytest.mark.usefixtures("ffmpeg")
def test_an_unsure_detection_falls_back_to_the_rooms_language(tmp_path: Path) -> None:
    path = track(tmp_path / "a.wav", [(1.0, 3.0, 101)], 4.0)
    utterances, languages, _ = run_tracks(
        [TrackAudio("A", path, 0.0)], "fr", detector=Detector(sure=False)
    )
    assert [u.text for u in utterances] == ["w101-fr"] and languages == ["fr"]
    utterances, _, _ = run_tracks([TrackAudio("A", path, 0.0)], None, detector=Detector(sure=False))
    assert [u.text for u in utterances] == ["w101-en"]


@pytest.mark.usefixtures("ffmpeg")
def test_two_voices_on_a_track_are_named_apart(tmp_path: Path) -> None:
    # A meeting room: two voices take turns, 2.5 s each, on one microphone.
    bursts = [(1 + 3 * i, 3.5 + 3 * i, (101 if i % 2 == 0 else 201) + i) for i in range(8)]
    path = track(tmp_path / "room.wav", bursts, 26.0)
    diarizer = Diarizer()
    utterances, _, _ = run_tracks([TrackAudio("Salle", path, 0.0)], diarizer=diarizer)
    assert diarizer.calls == 1
    by_voice = {(u.speaker, u.text.split("-")[0][1]) for u in utterances}
    assert by_voice == {("Salle — voix 1", "1"), ("Salle — voix 2", "2")}


@pytest.mark.usefixtures("ffmpeg")
def test_one_voice_keeps_its_name_and_pyannote_is_not_run(tmp_path: Path) -> None:
    bursts = [(1 + 3 * i, 3.5 + 3 * i, 101 + i) for i in range(10)]
    path = track(tmp_path / "bob.wav", bursts, 32.0)
    utterances, _, _ = run_tracks([TrackAudio("Bob", path, 0.0)], diarizer=Refuses())
    assert {u.speaker for u in utterances} == {"Bob"}
    assert sum(len(u.text.split()) for u in utterances) == 10


@pytest.mark.usefixtures("ffmpeg")
def test_a_silent_track_wakes_no_model_and_a_corrupt_one_is_left_out(tmp_path: Path) -> None:
    silent = track(tmp_path / "silent.wav", [], 5.0)
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(b"OggS" + bytes(range(256)) * 40)
    result = transcribe_tracks(
        [TrackAudio("A", silent, 0.0), TrackAudio("B", corrupt, 0.0)],
        "en",
        vad=Refuses(),
        detector=Detector(),
        recogniser_for=lambda _language: Recogniser(),
        embedder=Refuses(),
        diarizer=Refuses(),
        voice_name=VOICE,
    )
    assert result.utterances == [] and result.languages == []
    with pytest.raises(AudioError, match=r"corrupt\.ogg"):
        run_tracks([TrackAudio("B", corrupt, 0.0)])


@pytest.mark.usefixtures("ffmpeg")
def test_the_mixed_path_gives_a_transcript_with_its_stages(tmp_path: Path) -> None:
    mixed = track(tmp_path / "mixed.wav", [(1.0, 2.0, 101), (10.0, 11.0, 202)], 12.0)
    recogniser = Recogniser()
    result = transcribe(
        mixed,
        "en",
        [],
        "Intervenant {n}",
        vad=Vad(),
        detector=Detector(),
        recogniser_for=lambda _language: recogniser,
        diarizer=Diarizer(),
    )
    assert [(u.speaker, u.text) for u in result.utterances] == [
        ("Intervenant 1", "w101-en"),
        ("Intervenant 2", "w202-en"),
    ]
    assert result.languages == ["en"]
    assert {"decode", "vad", "language", "recognition", "diarization", "merge"} <= set(
        result.stages
    )
