"""Transcripts after the call: audio → diarization → speech-to-text → attribution → render.

Each step is a small module. The model-free steps (attribution, rendering) are pure and come
first; the model-backed steps (pyannote, faster-whisper) run in worker processes.
"""


class UnusableRecording(Exception):
    """The recording cannot be transcribed (corrupt, unreadable): retrying will not help."""
