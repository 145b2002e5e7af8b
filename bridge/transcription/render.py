"""Transcripts as text: Markdown paragraphs (`**Name** [hh:mm:ss]: text`) and WebVTT. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.transcription.attribution import Utterance


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def markdown(items: Sequence[Utterance]) -> str:
    return "\n\n".join(f"**{u.speaker}** [{clock(u.start)}]: {u.text}" for u in items) + "\n"


def webvtt(items: Sequence[Utterance]) -> str:
    cues = [
        f"{_vtt_time(u.start)} --> {_vtt_time(u.end)}\n"
        f"<v {_vtt_voice(u.speaker)}>{_vtt_text(u.text)}"
        for u in items
    ]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def _vtt_voice(name: str) -> str:
    # A voice annotation ends at ">"; names cannot carry markup into the cue.
    return name.replace(">", "&gt;").replace("<", "&lt;").replace("\n", " ")


def _vtt_text(text: str) -> str:
    # "-->" would end the cue timing line's meaning if it started a line; escape markup too.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "→")
