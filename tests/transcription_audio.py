"""Synthetic meetings for the model tests: espeak-ng voices joined with sox, with a known reference.

Each line of a script is spoken by one espeak-ng voice, resampled to 16 kHz mono and trimmed of
its leading and trailing silence by sox, then laid end to end with a pause between speakers. The
reference says who spoke when (to the sample) and what, so tests can compute DER, WER and the
share of words put on the right speaker. Not a test module: the model tests import it.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16_000

# espeak-ng's voices share one synthesiser, so two of them sound far more alike than two people
# do; a sox pitch shift (which moves the formants too, as a different vocal tract would) and an
# equaliser (a different microphone) set them apart as much as real participants are.
# name -> (espeak-ng voice, pitch 0-99, words per minute, sox effects).
VOICES: dict[str, tuple[str, int, int, tuple[str, ...]]] = {
    "alice": ("en-us+f3", 70, 165, ()),
    "bob": ("en-gb+m3", 35, 160, ("pitch", "-250", "bass", "+6")),
    "carol": ("en-gb-scotland+klatt", 40, 150, ("treble", "+4")),
    "dan": ("en+m7", 20, 155, ("pitch", "-400", "bass", "+6")),
    "amelie": ("fr+f3", 65, 160, ()),
    "bruno": ("fr+m3", 30, 155, ("pitch", "-250", "bass", "+6")),
    # One person who speaks English, then German: the same voice and pitch in both languages.
    "hans_en": ("en-us+m3", 40, 155, ("pitch", "-150")),
    "hans_de": ("de+m3", 40, 150, ("pitch", "-150")),
}

TWO_SPEAKERS: list[tuple[str, str]] = [
    ("alice", "Good morning everyone, thank you for joining the weekly project meeting."),
    ("bob", "Thanks Alice. I finished the new login page and the tests are passing now."),
    ("alice", "That is great news. Did you also check the mobile version of the page?"),
    ("bob", "Yes, it works on phones, but the menu still needs some small changes."),
    ("alice", "Then please write a short note so the design team can review it today."),
    ("bob", "I will send it before lunch and ask them for their comments."),
]

THREE_SPEAKERS: list[tuple[str, str]] = [
    ("carol", "Let us start with the budget for the next quarter."),
    ("dan", "The travel costs went down because most meetings are now online."),
    ("alice", "We should use that money to hire another developer for the mobile team."),
    ("carol", "I agree, but we need approval from the finance office first."),
    ("dan", "I can prepare the numbers and send them to finance this afternoon."),
    ("alice", "Perfect. Please include the cost of the new computers as well."),
    ("carol", "Good. Is there anything else before we close the meeting?"),
    ("dan", "No, that is all from me. Thank you both."),
]

FRENCH: list[tuple[str, str]] = [
    ("amelie", "Bonjour à tous, merci d'être venus à la réunion de ce matin."),
    ("bruno", "Merci Amélie. Le projet avance bien et le rapport sera prêt demain."),
    ("amelie", "Très bien, nous pourrons donc le présenter au comité la semaine prochaine."),
]


GERMAN: list[tuple[str, str]] = [
    ("hans_de", "Guten Morgen, ich möchte heute über die Zukunft unserer Firma sprechen."),
    ("hans_de", "Die Kunden in Berlin und München sind sehr zufrieden mit dem neuen Angebot."),
    ("hans_de", "Nächste Woche fahren wir nach Hamburg, um den Vertrag zu unterschreiben."),
]

# Sentences built from parts, so a long meeting never says the same line twice: Whisper judges
# a window by how well its text compresses, and a looped script would compress like a loop.
_PARTS: dict[str, dict[str, list[str]]] = {
    "en": {
        "who": [
            "Alice",
            "Bob",
            "the team",
            "our manager",
            "the client",
            "the designer",
            "the finance office",
            "my colleague",
            "the new intern",
            "the support desk",
        ],
        "verb": [
            "review",
            "send",
            "finish",
            "prepare",
            "check",
            "present",
            "update",
            "discuss",
            "translate",
            "print",
        ],
        "what": [
            "the report",
            "the budget",
            "the new website",
            "the customer list",
            "the test plan",
            "the contract",
            "the schedule",
            "the slides",
            "the press release",
            "the training material",
        ],
        "when": [
            "tomorrow morning",
            "before Friday",
            "next week",
            "after lunch",
            "this afternoon",
            "on Monday",
            "at the end of the month",
            "before the holidays",
            "in two days",
            "tonight",
        ],
    },
    "fr": {
        "who": [
            "Amélie",
            "Bruno",
            "l'équipe",
            "notre directrice",
            "le client",
            "la graphiste",
            "le service financier",
            "mon collègue",
            "la stagiaire",
            "le support",
        ],
        "verb": [
            "relire",
            "envoyer",
            "terminer",
            "préparer",
            "vérifier",
            "présenter",
            "corriger",
            "traduire",
            "imprimer",
            "signer",
        ],
        "what": [
            "le rapport",
            "le budget",
            "le nouveau site",
            "la liste des clients",
            "le plan de test",
            "le contrat",
            "le calendrier",
            "les diapositives",
            "le communiqué",
            "le support de formation",
        ],
        "when": [
            "demain matin",
            "avant vendredi",
            "la semaine prochaine",
            "après le déjeuner",
            "cet après-midi",
            "lundi",
            "à la fin du mois",
            "avant les vacances",
            "dans deux jours",
            "ce soir",
        ],
    },
}
_FORMS = {
    "en": [
        "{who} will {verb} {what} {when}.",
        "Can {who} {verb} {what} {when}?",
        "I think {who} should {verb} {what} {when}.",
    ],
    "fr": [
        "{who} va {verb} {what} {when}.",
        "Est-ce que {who} peut {verb} {what} {when} ?",
        "Je pense que {who} doit {verb} {what} {when}.",
    ],
}


def varied_script(
    speakers: list[str], lines: int, language: str = "en", *, seed: int = 0
) -> list[tuple[str, str]]:
    """`lines` lines of two generated sentences each, the speakers taking turns."""
    rng = np.random.default_rng(seed)
    parts, forms = _PARTS[language], _FORMS[language]

    def sentence() -> str:
        chosen = {key: str(rng.choice(values)) for key, values in parts.items()}
        text = str(rng.choice(forms)).format(**chosen)
        return text[0].upper() + text[1:]

    return [(speakers[i % len(speakers)], f"{sentence()} {sentence()}") for i in range(lines)]


@dataclass(frozen=True)
class Line:
    speaker: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Meeting:
    wav: Path
    lines: list[Line]
    duration: float

    @property
    def speakers(self) -> set[str]:
        return {line.speaker for line in self.lines}

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)


def ensure_tools() -> None:
    """Installs Debian's espeak-ng, sox and ffmpeg if one is missing (the machines run as root)."""
    missing = [tool for tool in ("espeak-ng", "sox", "ffmpeg") if shutil.which(tool) is None]
    if not missing:
        return
    apt = shutil.which("apt-get") or "/usr/bin/apt-get"
    subprocess.run([apt, "update", "-qq"], check=True)  # noqa: S603 - fixed argv
    subprocess.run(  # noqa: S603 - fixed argv, tool names from the constant tuple above
        [apt, "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)  # noqa: S603 - argv built here


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.astype("<i2").tobytes())


def speak(text: str, speaker: str, dst: Path) -> np.ndarray:
    """One line in one voice: 16 kHz mono int16 samples without leading or trailing silence."""
    voice, pitch, speed, effects = VOICES[speaker]
    raw = dst.with_suffix(".raw.wav")
    _run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(raw), text])
    # Trim silence at both ends (silence effect, reversed, again) so that the reference turn
    # starts and ends with the voice, then resample to the pipeline's rate. No dither (-D): it
    # is random, and the same script must give the same audio on every run.
    _run(
        [
            "sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(dst),
            *effects,
            "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
            "norm", "-3",
        ]
    )  # fmt: skip
    raw.unlink()
    return _read(dst)


def build_meeting(
    directory: Path,
    script: list[tuple[str, str]],
    *,
    lead: float = 0.8,
    pause: float = 0.7,
    tail: float = 0.8,
    repeat: int = 1,
) -> Meeting:
    """Speaks `script` (`repeat` times over) into `directory`/meeting.wav; its reference."""
    ensure_tools()
    directory.mkdir(parents=True, exist_ok=True)
    parts: list[np.ndarray] = [np.zeros(int(lead * RATE), dtype=np.int16)]
    lines: list[Line] = []
    cursor = int(lead * RATE)
    rng = np.random.default_rng(7)
    for index, (speaker, text) in enumerate(script * repeat):
        samples = speak(text, speaker, directory / f"line{index:03d}.wav")
        lines.append(Line(speaker, cursor / RATE, (cursor + len(samples)) / RATE, text))
        gap = np.zeros(int(pause * RATE), dtype=np.int16)
        parts += [samples, gap]
        cursor += len(samples) + len(gap)
    parts.append(np.zeros(int(tail * RATE), dtype=np.int16))
    audio = np.concatenate(parts)
    # A little noise, as a room has: a mathematically silent background is not realistic.
    audio = np.clip(audio + rng.normal(0, 20, len(audio)), -32768, 32767).astype(np.int16)
    wav = directory / "meeting.wav"
    write_wav(wav, audio)
    for part in directory.glob("line*.wav"):
        part.unlink()
    return Meeting(wav, lines, len(audio) / RATE)


def to_ogg(meeting: Meeting, dst: Path) -> Path:
    """The meeting as Ogg/Opus, the container LiveKit's egress writes."""
    _run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(meeting.wav),
          "-c:a", "libopus", "-b:a", "32k", str(dst)])  # fmt: skip
    return dst


@dataclass(frozen=True)
class Track:
    speaker: str
    wav: Path
    offset: float  # seconds from the meeting's start to the file's first sample


@dataclass(frozen=True)
class TrackMeeting:
    """A meeting recorded per participant: each one's own files, and the mix for comparison."""

    tracks: list[Track]
    mixed: Meeting


def build_tracks(
    directory: Path,
    script: list[tuple[str, str]],
    *,
    overlap: float = 0.0,
    split: dict[str, float] | None = None,
    pause: float = 0.7,
) -> TrackMeeting:
    """Speaks `script` into one file per speaker (silence where others speak) and their mix.

    Each line after the first starts `overlap` seconds before the previous one ends (0: after a
    `pause`), so two people talk at once. `split` cuts a speaker's track in two files at that
    time, as a reconnect does: the second file starts there (its offset).
    """
    ensure_tools()
    directory.mkdir(parents=True, exist_ok=True)
    clips = [
        speak(text, who, directory / f"line{i:03d}.wav") for i, (who, text) in enumerate(script)
    ]
    lines: list[Line] = []
    cursor = int(0.8 * RATE)
    for (who, text), clip in zip(script, clips, strict=True):
        if lines and overlap > 0:
            cursor = int(lines[-1].end * RATE - overlap * RATE)
        lines.append(Line(who, cursor / RATE, (cursor + len(clip)) / RATE, text))
        cursor += len(clip) + (0 if overlap > 0 else int(pause * RATE))
    total = cursor + int(0.8 * RATE)
    rng = np.random.default_rng(11)
    voices: dict[str, np.ndarray] = {}
    for line, clip in zip(lines, clips, strict=True):
        voice = voices.setdefault(line.speaker, np.zeros(total, dtype=np.float64))
        first = int(line.start * RATE)
        voice[first : first + len(clip)] += clip
    tracks: list[Track] = []
    for who, voice in voices.items():
        noisy = np.clip(voice + rng.normal(0, 20, total), -32768, 32767).astype(np.int16)
        cuts = sorted({0, int((split or {}).get(who, 0) * RATE), total})
        for number, (first, last) in enumerate(itertools.pairwise(cuts)):
            wav = directory / f"{who}-{number}.wav"
            write_wav(wav, noisy[first:last])
            tracks.append(Track(who, wav, first / RATE))
    mix = np.clip(sum(voices.values()) + rng.normal(0, 20, total), -32768, 32767)
    write_wav(directory / "mixed.wav", mix.astype(np.int16))
    for part in directory.glob("line*.wav"):
        part.unlink()
    return TrackMeeting(tracks, Meeting(directory / "mixed.wav", lines, total / RATE))


def add_noise(meeting: Meeting, start: float, end: float, level: float, *, until: float) -> Meeting:
    """The meeting with loud noise from `start` to `end` (a window open on the street: SNR of a
    few dB at `level` 2000) and cut at `until` seconds; its lines past `until` are dropped."""
    audio = _read(meeting.wav).astype(np.float64)
    first, last = int(start * RATE), int(end * RATE)
    audio[first:last] += np.random.default_rng(2).normal(0, level, last - first)
    audio = audio[: int(until * RATE)]
    write_wav(meeting.wav, np.clip(audio, -32768, 32767))
    lines = [line for line in meeting.lines if line.end <= until]
    return Meeting(meeting.wav, lines, len(audio) / RATE)
