"""Transcripts after the call, from each participant's own tracks or from one mixed recording.

Per-participant tracks (`tracks`): decode → voice activity → language and speech-to-text per
stretch → a shared microphone's voices → utterances in time order. One mixed recording
(`pipeline`): the same speech stages, then diarization and attribution of words to speakers.
Each step is a small module; the model-free ones (speech pieces, languages, phrasing,
attribution, rendering) are pure, and the models (Silero VAD, faster-whisper, CAM++, pyannote)
arrive as arguments typed by `ports`. The work runs in worker threads or processes.
"""


class UnusableRecording(Exception):
    """The recording cannot be transcribed (corrupt, unreadable): retrying will not help."""
