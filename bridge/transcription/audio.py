"""Recordings in, 16 kHz mono samples out: the transcript pipeline's only audio decoder.

Every recording goes through the `ffmpeg` command line to a 16 kHz mono 16-bit WAV, which the
standard `wave` module reads back. Neither torchaudio nor torchcodec ever decodes: their registry
wheels are CUDA-linked and fail on a CPU machine, and ffmpeg reads every container LiveKit's
egress writes (ogg/opus, mp4, webm).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000

# Peak amplitude (of full scale) under which a recording counts as silent: below the noise
# floor of any microphone, so nothing would be heard, and no model is woken up for it.
SILENCE_PEAK = 1e-3

# ffmpeg's stderr can be long; the tail names the cause ("Invalid data found…").
_STDERR_TAIL = 400


class AudioError(Exception):
    """A recording that cannot be decoded (corrupt, empty, not audio) or no ffmpeg to decode it."""


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise AudioError("ffmpeg is not installed: it decodes recordings (apt-get install ffmpeg)")
    return path


def to_wav_16k_mono(src: Path, dst: Path) -> float:
    """Decodes `src` (any format ffmpeg reads) into `dst` as 16 kHz mono s16 WAV; its seconds."""
    if not src.is_file():
        raise AudioError(f"no recording at {src}")
    argv = [
        _ffmpeg(),
        "-nostdin",  # a worker has no terminal; never wait on one
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        "-vn",  # egress may write video tracks too
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        str(dst),
    ]
    try:
        # Fixed argv, no shell: the paths are arguments, never parsed as options or commands.
        result = subprocess.run(argv, capture_output=True, check=False, timeout=3600)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"ffmpeg took more than an hour on {src.name}") from exc
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise AudioError(f"cannot decode {src.name}: {reason or 'ffmpeg failed'}")
    try:
        with wave.open(str(dst), "rb") as wav:
            frames = wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"cannot decode {src.name}: ffmpeg wrote no readable audio") from exc
    return frames / SAMPLE_RATE


def load_wav(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Samples of a 16-bit PCM WAV as float32 in [-1, 1], mixed down to mono; and its rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioError(f"cannot read {path.name}: {exc}") from exc
    if width != 2:
        raise AudioError(f"{path.name}: {8 * width}-bit samples; expected 16-bit PCM")
    # In place, and the bytes let go at once: an hour-long track is 115 MB of PCM and 230 MB
    # of float32; a second float32 copy would only add 230 MB more.
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    del raw
    samples /= 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples, rate


def decode(src: Path) -> tuple[npt.NDArray[np.float32], int]:
    """`src` (any format ffmpeg reads) as 16 kHz mono float32 samples, through a temporary WAV."""
    with tempfile.TemporaryDirectory(prefix="visio-decode-") as tmp:
        wav = Path(tmp) / "audio.wav"
        to_wav_16k_mono(src, wav)
        return load_wav(wav)


def is_silent(samples: npt.NDArray[np.float32]) -> bool:
    return samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK
