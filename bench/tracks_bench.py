"""Per-participant tracks against the mixed recording: cost, memory and accuracy on one meeting.

Finds in the cache, or builds, synthetic meetings of the asked lengths (bench/meetings.py: 4-6
English and French espeak-ng voices, turns with pauses and a few % of overlapped speech; one file
per participant, with its offset, and the mix), then transcribes each meeting twice, each path in
a process of its own so that its peak memory is its own:

- tracks: `BundledTranscriber.transcribe_tracks` on the participants' files;
- mixed (the baseline): `BundledTranscriber.transcribe` on the mixed file, with everyone's
  presences (when each participant was in the call: what the bridge knows).

Models load in each process on a short warm-up meeting, outside the timings. Reported per path
and length: real-time factor (seconds of work per second of audio; the audio's own duration is
the baseline) of each stage (`Transcript.stages`) and of the whole (wall clock and CPU time: the
machine may be shared, CPU time is steadier), peak memory, the share of reference words found
and put on the right speaker (overall, and for words said while someone else was speaking), WER
of the English and of the French lines, the speakers found, and how the cost grows with length.

    .venv/bin/python bench/tracks_bench.py --minutes 10 [30 60] [--voices 4] [--language auto]
        [--model-dir DIR] [--pipeline-dir DIR] [--device cpu|cuda] [--threads 2] [--json out.json]
        [--transcripts DIR] [--paths tracks mixed] [--codec wav|opus] [--seed 1]
"""

from __future__ import annotations

import argparse
import bisect
import inspect
import itertools
import json
import logging
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import meetings

PATHS = ("tracks", "mixed")
STAGES = ("decode", "vad", "language", "recognition", "voices", "diarization", "merge")
UNKNOWN_NAME = "Intervenant {n}"  # the mixed path's name for a voice no presence names
VOICE_NAME = "{name} — voix {n}"  # the tracks path's names for the voices of a shared microphone
WARMUP_MINUTES = 1.0


# ---------------------------------------------------------------- one path, in its own process


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg decoding
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _transcriber(args: argparse.Namespace) -> Any:
    from bridge.transcription.bundled import BundledTranscriber

    options: dict[str, Any] = {
        "pipeline_dir": args.pipeline_dir,
        "model_dir": args.model_dir,
        "threads": args.threads,
    }
    if "device" in inspect.signature(BundledTranscriber).parameters:
        options["device"] = args.device
    elif args.device != "cpu":
        raise SystemExit(
            f"BundledTranscriber takes no device: --device {args.device} cannot be honoured "
            "(Recogniser and Diarizer accept one; the transcriber does not pass it on)"
        )
    return BundledTranscriber(**options)


def _run_tracks(transcriber: Any, meeting: meetings.Meeting, language: str | None) -> Any:
    from bridge.transcription.transcript import TrackAudio

    tracks = [TrackAudio(t.speaker, t.path, t.offset) for t in meeting.tracks]
    return transcriber.transcribe_tracks(tracks, language, VOICE_NAME)


def _run_mixed(transcriber: Any, meeting: meetings.Meeting, language: str | None) -> Any:
    from bridge.transcription.attribution import Presence

    presences = [Presence(p.name, p.start, p.end) for p in meeting.presences]
    return transcriber.transcribe(meeting.mixed, language, presences, UNKNOWN_NAME)


def warmup_meeting(voices: int, seed: int, codec: str) -> meetings.Meeting:
    """A short meeting that wakes every model either path loads lazily: both languages, and
    someone speaking long enough for the tracks path's voice check (12 s; 15 s here)."""
    for warmup_seed in range(seed + 1, seed + 50):
        meeting = meetings.meeting(WARMUP_MINUTES, voices, seed=warmup_seed, codec=codec)
        speech: dict[str, float] = defaultdict(float)
        for line in meeting.lines:
            speech[line.speaker] += line.end - line.start
        if max(speech.values()) >= 15.0 and {line.language for line in meeting.lines} == {
            "en",
            "fr",
        }:
            return meeting
    raise RuntimeError("no warm-up meeting found")  # not with these generator settings


def child(args: argparse.Namespace) -> int:
    """Transcribes one meeting by one path; writes what it found and what it cost to --out."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    language = None if args.language == "auto" else args.language
    run: Callable[[Any, meetings.Meeting, str | None], Any] = (
        _run_tracks if args.child == "tracks" else _run_mixed
    )
    transcriber = _transcriber(args)
    if args.child == "tracks" and not hasattr(transcriber, "transcribe_tracks"):
        args.out.write_text(json.dumps({"error": "no BundledTranscriber.transcribe_tracks yet"}))
        return 0
    meeting, warmup = meetings.load(args.meeting_dir), meetings.load(args.warmup_dir)
    started, cpu = time.monotonic(), _cpu_s()
    run(transcriber, warmup, language)  # loads every model this path uses
    load_s, load_cpu = time.monotonic() - started, _cpu_s() - cpu
    started, cpu = time.monotonic(), _cpu_s()
    result = run(transcriber, meeting, language)
    wall_s, cpu_s = time.monotonic() - started, _cpu_s() - cpu
    # Until both paths return a Transcript, the mixed path returns its list of utterances.
    utterances = getattr(result, "utterances", result)
    record = {
        "load_s": load_s,
        "load_cpu_s": load_cpu,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "stages": dict(getattr(result, "stages", {})),
        "languages": list(getattr(result, "languages", [])),
        "utterances": [[u.speaker, u.start, u.end, u.text] for u in utterances],
    }
    args.out.write_text(json.dumps(record, ensure_ascii=False))
    return 0


def run_path(
    path: str, meeting: meetings.Meeting, warmup: meetings.Meeting, args: argparse.Namespace
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tracks-bench-") as tmp:
        out = Path(tmp) / "result.json"
        argv = [
            sys.executable, str(Path(__file__).resolve()), "--child", path,
            "--meeting-dir", str(meeting.directory), "--warmup-dir", str(warmup.directory),
            "--language", args.language, "--threads", str(args.threads),
            "--device", args.device, "--out", str(out),
        ]  # fmt: skip
        for option in ("model_dir", "pipeline_dir"):
            if getattr(args, option):
                argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
        # The child's stderr (model warnings, errors) goes straight to ours.
        done = subprocess.run(argv, check=False)  # noqa: S603 - our own script, argv built here
        if done.returncode != 0 or not out.is_file():
            return {"error": f"the {path} process exited with {done.returncode}"}
        record: dict[str, Any] = json.loads(out.read_text())
        return record


# ---------------------------------------------------------------- scoring


@dataclass(frozen=True)
class HypWord:
    speaker: str
    text: str
    time: float  # estimated: the utterance's time shared out by the words' lengths
    slack: float  # how far from `time` the word may really have been said


def hypothesis_words(utterances: Sequence[Sequence[Any]]) -> list[HypWord]:
    """The transcript's words in time order. Utterances carry no word times: a word's time is
    placed within its utterance by character count, with a slack that grows with the utterance's
    length (pauses inside it shift the estimate)."""
    words: list[HypWord] = []
    for speaker, start, end, text in utterances:
        tokens = meetings.normalise(text)
        if not tokens:
            continue
        total = sum(len(token) + 1 for token in tokens)
        slack = min(1.5 + 0.15 * (end - start), 8.0)
        done = 0
        for token in tokens:
            middle = start + (end - start) * (done + (len(token) + 1) / 2) / total
            done += len(token) + 1
            words.append(HypWord(str(speaker), token, middle, slack))
    words.sort(key=lambda word: word.time)
    return words


def _lcs(
    refs: Sequence[meetings.RefWord], hyps: Sequence[HypWord], indices: Sequence[int]
) -> list[tuple[int, int]]:
    """Longest common subsequence of a line's words and nearby transcript words (same text,
    close enough in time): (position in `refs`, index into the transcript) pairs."""
    m, n = len(refs), len(indices)
    table = [[0] * (n + 1) for _ in range(m + 1)]

    def same(i: int, j: int) -> bool:
        ref, hyp = refs[i], hyps[indices[j]]
        return ref.text == hyp.text and abs((ref.start + ref.end) / 2 - hyp.time) <= hyp.slack + 1

    for i in range(m - 1, -1, -1):
        for j in range(n - 1, -1, -1):
            if same(i, j):
                table[i][j] = table[i + 1][j + 1] + 1
            else:
                table[i][j] = max(table[i + 1][j], table[i][j + 1])
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < m and j < n:
        if same(i, j) and table[i][j] == table[i + 1][j + 1] + 1:
            pairs.append((i, indices[j]))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _distance(at: float, start: float, end: float) -> float:
    return max(0.0, start - at, at - end)


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]


def score(meeting: meetings.Meeting, utterances: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Words found and on the right speaker (all, and overlapped), WER per language, speakers.

    Reference words are matched to transcript words line by line (same text, in order, close in
    time). A transcript speaker that is a participant's name counts as that participant; an
    anonymous one ("Intervenant 2") as the participant most of its matched words belong to.
    WER: each transcript word goes to the line it matched, else to the nearest line in time (its
    speaker's, between lines said at that moment), and each line is compared with what it got.
    """
    refs = meetings.reference_words(meeting)
    hyps = hypothesis_words(utterances)
    lines = meeting.lines
    times = [word.time for word in hyps]
    by_line: dict[int, list[int]] = defaultdict(list)
    for index, ref in enumerate(refs):
        by_line[ref.line].append(index)
    matched: dict[int, int] = {}  # reference word → transcript word
    used: set[int] = set()
    for line_index in sorted(by_line, key=lambda i: lines[i].start):
        line = lines[line_index]
        ref_indices = sorted(by_line[line_index], key=lambda i: refs[i].start)
        low = bisect.bisect_left(times, line.start - 8.0)
        high = bisect.bisect_right(times, line.end + 8.0)
        nearby = [
            j
            for j in range(low, high)
            if j not in used and _distance(hyps[j].time, line.start, line.end) <= hyps[j].slack
        ]
        line_refs = [refs[i] for i in ref_indices]
        for position, j in _lcs(line_refs, hyps, nearby):
            matched[ref_indices[position]] = j
            used.add(j)

    names = set(meeting.speakers)
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for i, j in matched.items():
        votes[hyps[j].speaker][refs[i].speaker] += 1
    mapping = {
        speaker: speaker if speaker in names else counts.most_common(1)[0][0]
        for speaker, counts in votes.items()
    }
    right = {i for i, j in matched.items() if mapping[hyps[j].speaker] == refs[i].speaker}
    named = {i for i, j in matched.items() if hyps[j].speaker == refs[i].speaker}
    overlapped = [i for i, ref in enumerate(refs) if ref.overlapped]

    # WER: every transcript word lands on one line.
    line_starts = [line.start for line in lines]
    line_of = {j: refs[i].line for i, j in matched.items()}
    got: dict[int, list[int]] = defaultdict(list)
    for j, hyp in enumerate(hyps):
        if j not in line_of:
            low = max(0, bisect.bisect_left(line_starts, hyp.time - 30.0))
            high = bisect.bisect_right(line_starts, hyp.time + hyp.slack)
            near = range(low, high) if high > low else range(max(0, low - 1), low + 1)
            candidates = [k for k in near if k < len(lines)]
            if not candidates:
                continue
            line_of[j] = min(
                candidates,
                # Nearest first; between lines said at that very moment, its speaker's.
                key=lambda k: (
                    round(_distance(hyp.time, lines[k].start, lines[k].end), 1),
                    mapping.get(hyp.speaker) != lines[k].speaker,
                ),
            )
        got[line_of[j]].append(j)
    errors: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for k, line in enumerate(lines):
        reference = meetings.normalise(line.text)
        hypothesis = [hyps[j].text for j in sorted(got.get(k, []), key=lambda j: hyps[j].time)]
        errors[line.language] += edit_distance(reference, hypothesis)
        counts[line.language] += len(reference)

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "words": len(refs),
        "found": share(len(matched), len(refs)),
        "right_speaker": share(len(right), len(matched)),
        "named": share(len(named), len(matched)),
        "overlap_words": len(overlapped),
        "overlap_found": share(sum(i in matched for i in overlapped), len(overlapped)),
        "overlap_right": share(sum(i in right for i in overlapped), len(overlapped)),
        "wer_en": share(errors["en"], counts["en"]),
        "wer_fr": share(errors["fr"], counts["fr"]),
        "wer": share(sum(errors.values()), sum(counts.values())),
        "speakers_found": len({str(u[0]) for u in utterances}),
        "speakers": len(names),
    }


# ---------------------------------------------------------------- report


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}{spec}}"


def _growth(rows: list[dict[str, Any]], path: str) -> str | None:
    """Cost between consecutive lengths: wall and CPU time ratios, and the exponent of
    cost ~ duration^k (1: linear)."""
    ok = [row for row in rows if row["path"] == path and "wall_s" in row]
    parts = []
    for a, b in itertools.pairwise(ok):
        scale = b["audio_s"] / a["audio_s"]
        if scale <= 1.0:
            continue
        wall = b["wall_s"] / a["wall_s"]
        cpu = b["cpu_s"] / a["cpu_s"]
        parts.append(
            f"{a['audio_s'] / 60:g}→{b['audio_s'] / 60:g} min (x{scale:.1f} audio): "
            f"wall x{wall:.2f} (k={math.log(wall) / math.log(scale):.2f}), "
            f"CPU x{cpu:.2f} (k={math.log(cpu) / math.log(scale):.2f})"
        )
    return f"{path}: " + "; ".join(parts) if parts else None


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\ntracks vs mixed, {args.voices} voices, language {args.language}, "
        f"{args.threads} threads, device {args.device}"
        + (f", model {args.model_dir}" if args.model_dir else "")
    )
    print(
        "cost: RTF (seconds of work per second of meeting; the meeting's duration is the baseline)"
    )
    heads = ("decode", "vad", "lang", "recog", "voices", "diar", "merge")
    print(
        f"{'meeting':>8} {'path':>6} "
        + " ".join(f"{h:>6}" for h in heads)
        + f" {'stages':>7} {'wall':>7} {'cpu':>7} {'peak MB':>8} {'load s':>7}"
    )
    for row in rows:
        lead = f"{row['audio_s'] / 60:6.1f}mn {row['path']:>6}"
        if "error" in row:
            print(f"{lead} {row['error']}")
            continue
        audio = row["audio_s"]
        stages = row["stages"]
        cells = " ".join(_fmt(stages[s] / audio if s in stages else None, ".3f", 6) for s in STAGES)
        stage_sum = sum(stages.values()) / audio if stages else None
        print(
            f"{lead} {cells} {_fmt(stage_sum, '.3f', 7)} {row['wall_s'] / audio:7.3f} "
            f"{row['cpu_s'] / audio:7.3f} {row['peak_mb']:8.0f} {row['load_s']:7.1f}"
        )
    print("\naccuracy: share of reference words found / on the right speaker (of those found) /")
    print("shown under the right name; the same for words said during overlaps (of all of them)")
    print(
        f"{'meeting':>8} {'path':>6} {'found':>6} {'right':>6} {'named':>6} "
        f"{'ovl n':>6} {'ovl fd':>6} {'ovl rt':>6} {'WER en':>7} {'WER fr':>7} {'WER':>6} "
        f"{'speakers':>9}  languages"
    )
    for row in rows:
        if "error" in row:
            continue
        print(
            f"{row['audio_s'] / 60:6.1f}mn {row['path']:>6} {_fmt(row['found'], '.1%', 6)} "
            f"{_fmt(row['right_speaker'], '.1%', 6)} {_fmt(row['named'], '.1%', 6)} "
            f"{row['overlap_words']:6d} {_fmt(row['overlap_found'], '.1%', 6)} "
            f"{_fmt(row['overlap_right'], '.1%', 6)} {_fmt(row['wer_en'], '.1%', 7)} "
            f"{_fmt(row['wer_fr'], '.1%', 7)} {_fmt(row['wer'], '.1%', 6)} "
            f"{row['speakers_found']:>4d} / {row['speakers']:<2d}  {','.join(row['languages'])}"
        )
    by_size: dict[float, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        if "error" not in row:
            by_size[row["audio_s"]][row["path"]] = row
    for audio, pair in by_size.items():
        if len(pair) == 2:
            tracks, mixed = pair["tracks"], pair["mixed"]
            wall = tracks["wall_s"] / mixed["wall_s"]
            print(
                f"{audio / 60:g} min, tracks / mixed: wall x{wall:.2f}, "
                f"CPU x{tracks['cpu_s'] / mixed['cpu_s']:.2f}, "
                f"peak memory x{tracks['peak_mb'] / mixed['peak_mb']:.2f}"
            )
    for path in PATHS:
        line = _growth(rows, path)
        if line:
            print("growth, " + line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    parser.add_argument("--voices", type=int, default=4, choices=range(4, 7))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--codec", default="wav", choices=["wav", "opus"])
    parser.add_argument(
        "--language", default="auto", help="en, fr, … or auto (each path detects it)"
    )
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, help="a CTranslate2 Whisper folder")
    parser.add_argument("--pipeline-dir", type=Path, help="a local pyannote pipeline folder")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where supported")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--transcripts", type=Path, help="keep each transcript in this folder")
    # Internal: one path in its own process.
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--meeting-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.device != "cpu":
        from bridge.transcription.bundled import BundledTranscriber

        if "device" not in inspect.signature(BundledTranscriber).parameters:
            parser.error(
                f"--device {args.device}: BundledTranscriber takes no device option yet "
                "(Recogniser and Diarizer do; the transcriber does not pass one on)"
            )

    warmup = warmup_meeting(args.voices, args.seed, args.codec)
    rows: list[dict[str, Any]] = []
    for minutes in args.minutes:
        started = time.monotonic()
        meeting = meetings.meeting(minutes, args.voices, seed=args.seed, codec=args.codec)
        ready = time.monotonic() - started
        print(f"meeting ready in {ready:.1f} s: {meetings.describe(meeting)}", flush=True)
        for path in args.paths:
            started = time.monotonic()
            record = run_path(path, meeting, warmup, args)
            row: dict[str, Any] = {"minutes": minutes, "path": path, "audio_s": meeting.duration}
            if "error" in record:
                row["error"] = record["error"]
            else:
                row |= {key: value for key, value in record.items() if key != "utterances"}
                row |= score(meeting, record["utterances"])
                row["utterances"] = len(record["utterances"])
                if args.transcripts:
                    args.transcripts.mkdir(parents=True, exist_ok=True)
                    kept = args.transcripts / f"{minutes:g}min-{path}.json"
                    kept.write_text(json.dumps(record["utterances"], ensure_ascii=False, indent=0))
            print(
                f"  {path}: done in {time.monotonic() - started:.0f} s "
                f"({row.get('error', 'scored')})",
                flush=True,
            )
            rows.append(row)
    report(rows, args)
    settings = {
        "voices": args.voices,
        "seed": args.seed,
        "codec": args.codec,
        "language": args.language,
        "threads": args.threads,
        "device": args.device,
        "model_dir": str(args.model_dir) if args.model_dir else None,
    }
    result = {"bench": "tracks", "settings": settings, "rows": rows}
    print(json.dumps(result, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
