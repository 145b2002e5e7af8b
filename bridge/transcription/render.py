"""Transcripts as text: Markdown paragraphs (`**Name** [hh:mm:ss]: text`) and WebVTT. Pure.

Where audio is missing (`Gap`), both say so in its place, in italics / as a cue of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.transcription.attribution import Utterance
from bridge.transcription.transcript import Gap


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _in_order(items: Sequence[Utterance], gaps: Sequence[Gap]) -> list[Utterance | Gap]:
    return sorted([*items, *gaps], key=lambda part: part.start)


def markdown(items: Sequence[Utterance], gaps: Sequence[Gap] = ()) -> str:
    lines = [
        f"*{part.note}*"
        if isinstance(part, Gap)
        else f"**{part.speaker}** [{clock(part.start)}]: {part.text}"
        for part in _in_order(items, gaps)
    ]
    return "\n\n".join(lines) + "\n"


def webvtt(items: Sequence[Utterance], gaps: Sequence[Gap] = ()) -> str:
    cues = [
        f"{_vtt_time(part.start)} --> {_vtt_time(part.end)}\n"
        + (
            _vtt_text(part.note)
            if isinstance(part, Gap)
            else f"<v {_vtt_voice(part.speaker)}>{_vtt_text(part.text)}"
        )
        for part in _in_order(items, gaps)
    ]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def _vtt_voice(name: str) -> str:
    # A voice annotation ends at ">"; names cannot carry markup into the cue.
    return name.replace(">", "&gt;").replace("<", "&lt;").replace("\n", " ")


def _vtt_text(text: str) -> str:
    # "-->" would end the cue timing line's meaning if it started a line; escape markup too.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "→")
