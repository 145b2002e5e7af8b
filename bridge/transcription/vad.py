"""Where someone speaks: a cheap loudness gate, then Silero VAD on what is loud enough.

A participant's track is mostly silence (others talk, or the microphone is muted), and the
models after this stage cost time per second of audio they are given: only speech goes on.
Silero VAD ships inside faster-whisper (an ONNX model run by onnxruntime). It costs little
per second, but every track lasts as long as the meeting, so a loudness gate goes first:
frames far below any voice (digital silence, a muted microphone, noise suppression's output)
never reach it, and the cost follows the sound in a track, not its length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.transcription.offline import stay_offline
from bridge.transcription.ports import Samples

FRAME_S = 0.032  # Silero's own window at 16 kHz (512 samples)
# -60 dBFS RMS: the quietest speech a microphone picks up is well above it; the noise floor of
# a quiet room recorded through WebRTC's noise suppression is below.
GATE_RMS = 1e-3
GATE_PAD_S = 0.5  # sound kept around a loud frame: the soft start and end of a word
_GATE_BLOCK = 2048  # frames measured at once (about a minute of audio)

# Silero's settings. A pause of half a second ends a stretch (most sentences end with one),
# stretches under a quarter of a second are clicks, and none is longer than 20 s, so that a
# recognition window (at most 30 s) can always be cut between two stretches.
SILERO_OPTIONS: dict[str, Any] = {
    "threshold": 0.5,
    "min_speech_duration_ms": 250,
    "min_silence_duration_ms": 500,
    "speech_pad_ms": 400,
    "max_speech_duration_s": 20.0,
}


def loud_spans(
    samples: Samples, sample_rate: int, *, gate: float = GATE_RMS, pad: float = GATE_PAD_S
) -> list[tuple[int, int]]:
    """Sample ranges [start, end) around every frame louder than `gate`, merged."""
    frame = max(1, round(FRAME_S * sample_rate))
    count = samples.size // frame
    if count == 0:
        return []
    frames = samples[: count * frame].reshape(count, frame)  # a view: no copy of the track
    # Loudness a block of frames at a time: squared in float64 at once, an hour-long track
    # took 0.9 GB of memory here, the per-track path's peak.
    power = np.empty(count, dtype=np.float64)
    for first in range(0, count, _GATE_BLOCK):
        block = frames[first : first + _GATE_BLOCK].astype(np.float64)
        power[first : first + _GATE_BLOCK] = np.mean(block * block, axis=1)
    loud = np.flatnonzero(power >= gate * gate)
    spans: list[tuple[int, int]] = []
    reach = round(pad * sample_rate)
    for index in loud:
        start = max(0, int(index) * frame - reach)
        end = min(samples.size, (int(index) + 1) * frame + reach)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


class SileroVad:
    """Silero VAD from faster-whisper's assets; `speech` gives (start, end) seconds."""

    def __init__(self) -> None:
        stay_offline()  # before onnxruntime's first session: its telemetry starts with it
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        self._options = VadOptions(**SILERO_OPTIONS)
        self._timestamps = get_speech_timestamps

    def speech(self, samples: Samples, sample_rate: int) -> list[tuple[float, float]]:
        regions: list[tuple[float, float]] = []
        for first, last in loud_spans(samples, sample_rate):
            span = np.ascontiguousarray(samples[first:last], dtype=np.float32)
            for found in self._timestamps(span, self._options, sampling_rate=sample_rate):
                regions.append(
                    ((first + found["start"]) / sample_rate, (first + found["end"]) / sample_rate)
                )
        return regions
