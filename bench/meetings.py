"""Synthetic multi-track meetings for the benchmarks: one audio file per participant, plus the mix.

A meeting of a given length is spoken by 4-6 espeak-ng voices, English and French (the voice
table and `speak` of tests/transcription_audio.py): turns of one to three sentences from a
small corpus, pauses of varying length (now and then a long one), and some overlap — a listener's
short acknowledgement over someone's turn, or the next speaker starting before the previous one
has finished. Each participant's track covers their own time in the call, as a per-participant
recording does: one participant joins late (their file starts late), one reconnects (two files),
one leaves early; room noise only where they do not speak. The mixed file is the sum of the
tracks on the meeting's time line, clipped. The reference says who said what, in which language,
and when (per sentence, to the sample; per word, estimated, by `reference_words`).

Synthesis is cheap (espeak-ng runs ~100 times faster than real time; each distinct sentence of each
voice is spoken once and reused), but a meeting is also cached under
~/.cache/visio-bridge/bench/, keyed by its parameters, so benchmark runs share it.

    .venv/bin/python bench/meetings.py --minutes 10 [--voices 4] [--seed 1] [--codec wav|opus]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import transcription_audio as synth

RATE = synth.RATE
FORMAT_VERSION = 1  # bump when generation changes: cached meetings are then built afresh

# The voices in the order a meeting takes them: 4 voices give two English and two French
# speakers, 5 and 6 add English ones. Display names are what the room would show.
CAST: tuple[tuple[str, str], ...] = (
    ("alice", "Alice"),
    ("amelie", "Amélie"),
    ("bob", "Bob"),
    ("bruno", "Bruno"),
    ("carol", "Carol"),
    ("dan", "Dan"),
)
MIN_VOICES, MAX_VOICES = 4, len(CAST)

# Written for these benchmarks: meeting talk without digits or names, whose spelling by the
# recogniser ("3" / "three") would count as errors that are not.
ENGLISH = (
    "Good morning everyone, let us get started with the weekly review.",
    "I looked at the report yesterday and most of the numbers look fine.",
    "We still need an answer from the security team about the new server.",
    "Can you share your screen so that everyone can see the plan?",
    "The last release went well, but the support desk had a busy week.",
    "I would rather wait until the tests are finished before we decide.",
    "That sounds reasonable to me, as long as the client agrees.",
    "Could we move this topic to the end of the meeting?",
    "The training session was useful and people asked good questions.",
    "We should write down the decisions so that nobody forgets them.",
    "I am not sure the budget allows for another contractor this year.",
    "Let me check my notes, I think we discussed this last month.",
    "The new office will be ready after the summer.",
    "Please send me the slides when you have a moment.",
    "I have a question about the timeline for the second phase.",
    "Most of the feedback from the users was positive.",
    "We found a small problem in the login page, but it is fixed now.",
    "It would help if the documentation were shorter and clearer.",
    "Shall we take a short break before the next item?",
    "Thank you, that was very clear.",
)
ENGLISH_OPENERS = ("", "", "I think", "To be honest,", "As far as I know,", "Just to be clear,")
ENGLISH_SUBJECTS = (
    "the design team",
    "our manager",
    "the support desk",
    "the new intern",
    "the legal department",
    "the mobile team",
    "the client",
    "the finance office",
)
ENGLISH_PREDICATES = (
    "will review the document",
    "has finished the first draft",
    "needs more time for the tests",
    "wants to move the deadline",
    "is waiting for an answer",
    "should update the shared calendar",
    "can present the results",
    "has asked for a short demonstration",
)
ENGLISH_TIMES = ("", "before Friday", "next week", "this afternoon", "by the end of the month")
ENGLISH_ACKS = ("Yes.", "Right.", "Okay.", "Exactly.", "I agree.", "Sure.", "Good point.")

FRENCH = (
    "Bonjour à tous, on peut commencer la réunion.",
    "J'ai relu le compte rendu hier soir et tout me semble correct.",
    "Nous attendons encore la réponse du service informatique.",
    "Est-ce que tu peux partager ton écran, s'il te plaît ?",
    "La dernière version a été bien reçue par les utilisateurs.",
    "Je préférerais attendre la fin des tests avant de décider.",
    "Cela me paraît raisonnable, si le client est d'accord.",
    "On pourrait garder ce sujet pour la fin de la réunion.",
    "La formation était utile et les questions étaient pertinentes.",
    "Il faudrait noter les décisions pour que personne ne les oublie.",
    "Je ne suis pas certain que le budget permette un recrutement cette année.",
    "Attends, je vérifie mes notes, nous en avons parlé le mois dernier.",
    "Les nouveaux bureaux seront prêts après l'été.",
    "Tu peux m'envoyer la présentation quand tu auras un moment ?",
    "J'ai une question sur le calendrier de la deuxième phase.",
    "Les retours des utilisateurs sont plutôt positifs.",
    "Nous avons trouvé un petit problème sur la page de connexion, il est corrigé.",
    "La documentation serait plus utile si elle était plus courte.",
    "On fait une petite pause avant le point suivant ?",
    "Merci, c'était très clair.",
)
FRENCH_OPENERS = ("", "", "Je pense que", "À mon avis,", "Si je me souviens bien,", "Pour résumer,")
FRENCH_SUBJECTS = (
    "l'équipe de design",
    "notre responsable",
    "le support",
    "le nouveau stagiaire",
    "le service juridique",
    "l'équipe mobile",
    "le client",
    "la direction financière",
)
FRENCH_PREDICATES = (
    "va relire le document",
    "a terminé la première version",
    "a besoin de plus de temps pour les tests",
    "veut décaler la date limite",
    "attend encore une réponse",
    "doit mettre à jour le calendrier partagé",
    "peut présenter les résultats",
    "a demandé une courte démonstration",
)
FRENCH_TIMES = (
    "",
    "avant vendredi",
    "la semaine prochaine",
    "cet après-midi",
    "d'ici la fin du mois",
)
FRENCH_ACKS = ("Oui.", "D'accord.", "Tout à fait.", "Exactement.", "Bien sûr.", "C'est vrai.")

# Turn-taking: how many sentences a turn holds, the pauses, and how often people overlap. With
# these, overlapped speech is 3-5 % of the speech time (measured, and stored in the reference).
SENTENCES_PER_TURN = ((1, 0.45), (2, 0.35), (3, 0.20))
BARGE_IN = 0.15  # the next turn starts before the previous one ends…
BARGE_IN_S = (0.4, 1.2)  # …by this much
ACKNOWLEDGE = 0.25  # someone says "yes" / "d'accord" during a turn
LONG_PAUSE = 0.04  # someone looks something up: a few seconds of silence
LEAD_S, TAIL_S = 1.0, 1.5

_CORPUS = (
    ENGLISH, ENGLISH_OPENERS, ENGLISH_SUBJECTS, ENGLISH_PREDICATES, ENGLISH_TIMES, ENGLISH_ACKS,
    FRENCH, FRENCH_OPENERS, FRENCH_SUBJECTS, FRENCH_PREDICATES, FRENCH_TIMES, FRENCH_ACKS,
)  # fmt: skip


@dataclass(frozen=True)
class Line:
    """One sentence (or acknowledgement) spoken by one participant, on the meeting's time line."""

    speaker: str
    language: str
    start: float
    end: float
    text: str
    ack: bool = False


@dataclass(frozen=True)
class Track:
    """One participant's file: it starts `offset` seconds into the meeting."""

    speaker: str
    path: Path
    offset: float
    duration: float


@dataclass(frozen=True)
class Presence:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class RefWord:
    speaker: str
    language: str
    text: str  # normalised (see `normalise`)
    start: float  # estimated: the line's time shared out by the words' lengths
    end: float
    overlapped: bool  # said while someone else was speaking too
    line: int  # index into the meeting's lines


@dataclass(frozen=True)
class Meeting:
    directory: Path
    duration: float
    lines: list[Line]
    tracks: list[Track]
    mixed: Path
    presences: list[Presence]  # who was in the call when: what the bridge knows
    params: dict[str, object]
    generation_s: float

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(line.speaker for line in self.lines))

    def overlaps(self) -> list[tuple[float, float]]:
        """The intervals in which two or more people speak at once."""
        events = sorted(
            [(line.start, 1) for line in self.lines] + [(line.end, -1) for line in self.lines]
        )
        spans: list[tuple[float, float]] = []
        active, since = 0, 0.0
        for at, step in events:
            if step == 1:
                active += 1
                if active == 2:
                    since = at
            else:
                if active == 2 and at > since:
                    spans.append((since, at))
                active -= 1
        return spans

    def speech_s(self) -> float:
        """Seconds during which at least one person speaks."""
        total, reach = 0.0, 0.0
        for line in sorted(self.lines, key=lambda line: line.start):
            if line.end > reach:
                total += line.end - max(line.start, reach)
                reach = line.end
        return total

    def overlap_share(self) -> float:
        return sum(end - start for start, end in self.overlaps()) / max(self.speech_s(), 1e-9)


def normalise(text: str) -> list[str]:
    """Words for scoring: lower case, no punctuation; hyphens and apostrophes split words, as the
    recogniser's word timings do ("s'il" comes out as "s 'il", "après-midi" as "après -midi")."""
    return re.findall(r"\w+", text.lower())


def reference_words(meeting: Meeting) -> list[RefWord]:
    """Every reference word in time order, with estimated times and whether it was overlapped."""
    overlaps = meeting.overlaps()
    starts = [start for start, _ in overlaps]

    def overlapped(at: float) -> bool:
        index = bisect.bisect_right(starts, at) - 1
        return index >= 0 and overlaps[index][0] <= at <= overlaps[index][1]

    words: list[RefWord] = []
    for index, line in enumerate(meeting.lines):
        tokens = normalise(line.text)
        weights = np.array([len(token) + 1 for token in tokens], dtype=float)
        edges = line.start + (line.end - line.start) * np.concatenate(
            ([0.0], np.cumsum(weights) / weights.sum())
        )
        for token, start, end in zip(tokens, edges[:-1], edges[1:], strict=True):
            middle = (start + end) / 2
            words.append(
                RefWord(
                    line.speaker,
                    line.language,
                    token,
                    float(start),
                    float(end),
                    overlapped(middle),
                    index,
                )
            )
    words.sort(key=lambda word: word.start)
    return words


# ---------------------------------------------------------------- generation


@dataclass
class _Participant:
    voice: str
    name: str
    language: str
    weight: float  # how much they talk, relative to the others
    gain: float  # their microphone's level
    noise: float  # their room's noise, in int16 units
    spans: list[tuple[float, float]]  # in the call from… to… (one file each)
    free_at: float = 0.0  # end of their last line: nobody overlaps themselves

    def present(self, start: float, end: float) -> bool:
        return any(a + 0.2 <= start and end <= b - 0.2 for a, b in self.spans)


class _Voices:
    """Each (voice, sentence) spoken once by espeak-ng + sox, then reused."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self._clips: dict[tuple[str, str], np.ndarray] = {}

    def say(self, voice: str, text: str) -> np.ndarray:
        key = (voice, text)
        if key not in self._clips:
            self._clips[key] = synth.speak(text, voice, self._scratch / f"{len(self._clips)}.wav")
        return self._clips[key]


def _sentence(rng: np.random.Generator, language: str) -> str:
    """Half the time a fixed sentence, half the time one assembled from parts (more variety)."""
    fixed, parts = (
        (ENGLISH, (ENGLISH_OPENERS, ENGLISH_SUBJECTS, ENGLISH_PREDICATES, ENGLISH_TIMES))
        if language == "en"
        else (FRENCH, (FRENCH_OPENERS, FRENCH_SUBJECTS, FRENCH_PREDICATES, FRENCH_TIMES))
    )
    if rng.random() < 0.5:
        return str(fixed[rng.integers(len(fixed))])
    words = " ".join(str(part[rng.integers(len(part))]) for part in parts).split()
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _participants(rng: np.random.Generator, voices: int, duration: float) -> list[_Participant]:
    people: list[_Participant] = []
    weights = rng.dirichlet(np.full(voices, 2.0))
    for index, (voice, name) in enumerate(CAST[:voices]):
        join = 0.0 if index == 0 else round(float(rng.uniform(0.0, 3.0)), 2)
        spans = [(join, duration)]
        if index == voices - 1:  # joins late
            spans = [(round(0.08 * duration, 2), duration)]
        elif index == 1 and duration >= 60:  # drops out and reconnects: a second file
            gap = 0.55 * duration
            spans = [(join, round(gap, 2)), (round(gap + 6.0, 2), duration)]
        elif index == 2 and duration >= 60:  # leaves before the end
            spans = [(join, round(0.93 * duration, 2))]
        people.append(
            _Participant(
                voice=voice,
                name=name,
                language="fr" if synth.VOICES[voice][0].startswith("fr") else "en",
                weight=float(weights[index]) + (0.15 if index == 0 else 0.0),  # the chair
                gain=float(rng.uniform(0.55, 0.9)),
                noise=float(rng.uniform(15.0, 35.0)),
                spans=spans,
            )
        )
    return people


def _schedule(
    rng: np.random.Generator, people: list[_Participant], voices: _Voices, duration: float
) -> list[tuple[_Participant, Line, np.ndarray]]:
    """Who says what, when: the meeting's lines with their audio, in time order."""
    placed: list[tuple[_Participant, Line, np.ndarray]] = []
    cursor = LEAD_S  # end of the latest turn
    previous: _Participant | None = None
    previous_start = 0.0
    stuck = 0
    while cursor < duration - TAIL_S - 2.0 and stuck < 200:
        choices = [p for p in people if p is not previous]
        weights = np.array([p.weight for p in choices])
        speaker = choices[rng.choice(len(choices), p=weights / weights.sum())]
        count = int(
            rng.choice(
                [n for n, _ in SENTENCES_PER_TURN], p=[share for _, share in SENTENCES_PER_TURN]
            )
        )
        texts = [_sentence(rng, speaker.language) for _ in range(count)]
        clips = [voices.say(speaker.voice, text) for text in texts]
        inner = [float(rng.uniform(0.25, 0.6)) for _ in clips[1:]]
        length = sum(len(clip) for clip in clips) / RATE + sum(inner)
        if previous is not None and rng.random() < BARGE_IN:
            start = max(previous_start + 1.0, cursor - float(rng.uniform(*BARGE_IN_S)))
        elif rng.random() < LONG_PAUSE:
            start = cursor + float(rng.uniform(3.0, 8.0))
        else:
            start = cursor + 0.25 + float(rng.gamma(2.0, 0.35))
        start = max(start, speaker.free_at + 0.3)
        if start + length > duration - TAIL_S:
            stuck += 1  # too long for what is left: a shorter turn may still fit
            continue
        if not speaker.present(start, start + length):
            stuck += 1
            if stuck % 20 == 0:
                cursor += 1.0  # nobody fits here (someone's gap): let time pass
            continue
        stuck = 0
        at = start
        for clip, text, pause in zip(clips, texts, [*inner, 0.0], strict=True):
            sample = round(at * RATE)
            line = Line(
                speaker.name, speaker.language, sample / RATE, (sample + len(clip)) / RATE, text
            )
            placed.append((speaker, line, clip))
            at = line.end + pause
        speaker.free_at = start + length
        turn_end = start + length
        if rng.random() < ACKNOWLEDGE and length > 2.0:
            _acknowledge(rng, people, speaker, voices, start, turn_end, placed)
        previous, previous_start = speaker, start
        cursor = max(cursor, turn_end)
    placed.sort(key=lambda item: item[1].start)
    return placed


def _acknowledge(
    rng: np.random.Generator,
    people: list[_Participant],
    speaker: _Participant,
    voices: _Voices,
    start: float,
    end: float,
    placed: list[tuple[_Participant, Line, np.ndarray]],
) -> None:
    """A listener's short "yes" somewhere in the middle of someone else's turn."""
    at = start + (end - start) * float(rng.uniform(0.3, 0.8))
    listeners = [p for p in people if p is not speaker and p.free_at + 0.3 <= at]
    if not listeners:
        return
    listener = listeners[rng.integers(len(listeners))]
    acks = ENGLISH_ACKS if listener.language == "en" else FRENCH_ACKS
    text = str(acks[rng.integers(len(acks))])
    clip = voices.say(listener.voice, text)
    sample = round(at * RATE)
    line = Line(
        listener.name, listener.language, sample / RATE, (sample + len(clip)) / RATE, text, ack=True
    )
    if not listener.present(line.start, line.end):
        return
    placed.append((listener, line, clip))
    listener.free_at = line.end


def _write(path: Path, samples: np.ndarray, codec: str) -> Path:
    wav = path.with_suffix(".wav")
    synth.write_wav(wav, samples)
    if codec == "wav":
        return wav
    # Ogg/Opus, as LiveKit's egress writes: the decoding stage then does its real work.
    ogg = path.with_suffix(".ogg")
    subprocess.run(  # noqa: S603 - fixed argv, paths built here
        [
            shutil.which("ffmpeg") or "ffmpeg",
            "-nostdin", "-loglevel", "error", "-y", "-i", str(wav),
            "-c:a", "libopus", "-b:a", "32k", str(ogg),
        ],
        check=True,
    )  # fmt: skip
    wav.unlink()
    return ogg


def _render(
    directory: Path,
    people: list[_Participant],
    placed: list[tuple[_Participant, Line, np.ndarray]],
    duration: float,
    codec: str,
    rng: np.random.Generator,
) -> tuple[list[Track], Path]:
    total = round(duration * RATE)
    mix = np.zeros(total, dtype=np.float32)
    tracks: list[Track] = []
    for person_index, person in enumerate(people):
        for span_index, (begin, end) in enumerate(person.spans):
            first, last = round(begin * RATE), round(end * RATE)
            track = rng.standard_normal(last - first, dtype=np.float32) * person.noise
            for who, line, clip in placed:
                if who is person and begin <= line.start < end:
                    at = round(line.start * RATE) - first
                    track[at : at + len(clip)] += clip.astype(np.float32) * person.gain
            samples = np.clip(track, -32768, 32767).astype(np.int16)
            del track
            mix[first:last] += samples
            path = _write(directory / f"track{person_index}-{span_index}", samples, codec)
            tracks.append(Track(person.name, path, first / RATE, (last - first) / RATE))
    mixed = _write(directory / "mixed", np.clip(mix, -32768, 32767).astype(np.int16), codec)
    return tracks, mixed


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "visio-bridge" / "bench"


def meeting(
    minutes: float,
    voices: int = 4,
    *,
    seed: int = 1,
    codec: str = "wav",
    cache_dir: Path | None = None,
) -> Meeting:
    """The synthetic meeting with these parameters: from the cache, or generated into it."""
    if not MIN_VOICES <= voices <= MAX_VOICES:
        raise ValueError(f"{voices} voices: between {MIN_VOICES} and {MAX_VOICES}")
    if codec not in ("wav", "opus"):
        raise ValueError(f"codec {codec!r}: wav or opus")
    params: dict[str, object] = {
        "format": FORMAT_VERSION,
        "minutes": float(minutes),
        "voices": voices,
        "seed": seed,
        "codec": codec,
        # A change to the voices or the corpus is a different meeting.
        "cast": [[voice, *map(str, synth.VOICES[voice])] for voice, _ in CAST[:voices]],
        "corpus": hashlib.sha256(repr(_CORPUS).encode()).hexdigest()[:16],
    }
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    folder = (cache_dir or cache_root()) / f"{minutes:g}min-{voices}v-seed{seed}-{codec}-{key}"
    if (folder / "meeting.json").is_file():
        return load(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    synth.ensure_tools()
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        rng = np.random.default_rng(seed)
        duration = round(minutes * 60.0, 2)
        people = _participants(rng, voices, duration)
        with tempfile.TemporaryDirectory(prefix="speak-", dir=building) as scratch:
            placed = _schedule(rng, people, _Voices(Path(scratch)), duration)
        tracks, mixed = _render(building, people, placed, duration, codec, rng)
        document = {
            "params": params,
            "duration": duration,
            "generation_s": round(time.monotonic() - started, 2),
            "lines": [asdict(line) for _, line, _ in placed],
            "tracks": [
                {
                    "speaker": t.speaker,
                    "file": t.path.name,
                    "offset": t.offset,
                    "duration": t.duration,
                }
                for t in tracks
            ],
            "mixed": mixed.name,
            "presences": [
                {"name": p.name, "start": a, "end": b} for p in people for a, b in p.spans
            ],
        }
        (building / "meeting.json").write_text(json.dumps(document, ensure_ascii=False, indent=1))
        try:
            os.replace(
                building, folder
            )  # whole, or not at all: a killed run leaves no half meeting
        except OSError:
            if not (folder / "meeting.json").is_file():
                raise
            shutil.rmtree(building)  # another run built it at the same time
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return load(folder)


def load(folder: Path) -> Meeting:
    document = json.loads((folder / "meeting.json").read_text())
    return Meeting(
        directory=folder,
        duration=float(document["duration"]),
        lines=[Line(**line) for line in document["lines"]],
        tracks=[
            Track(t["speaker"], folder / t["file"], float(t["offset"]), float(t["duration"]))
            for t in document["tracks"]
        ],
        mixed=folder / document["mixed"],
        presences=[Presence(**p) for p in document["presences"]],
        params=document["params"],
        generation_s=float(document["generation_s"]),
    )


def describe(meeting: Meeting) -> str:
    speakers = ", ".join(
        f"{name} ({next(line.language for line in meeting.lines if line.speaker == name)})"
        for name in meeting.speakers
    )
    words = sum(len(normalise(line.text)) for line in meeting.lines)
    return (
        f"{meeting.duration / 60:.1f} min, {len(meeting.lines)} lines, {words} words; {speakers}; "
        f"speech {meeting.speech_s() / meeting.duration:.0%} of the time, overlapped "
        f"{meeting.overlap_share():.1%} of the speech; {len(meeting.tracks)} track files; "
        f"generated in {meeting.generation_s:.1f} s; {meeting.directory}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0])
    parser.add_argument("--voices", type=int, default=4, choices=range(MIN_VOICES, MAX_VOICES + 1))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--codec", default="wav", choices=["wav", "opus"])
    args = parser.parse_args()
    for minutes in args.minutes:
        print(describe(meeting(minutes, args.voices, seed=args.seed, codec=args.codec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
