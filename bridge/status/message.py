"""The text of a meeting's status message, from its record and its participants. Pure.

While live: who started it and when, who is in now (a bounded list), the join link. Once ended:
how long it lasted and how many people came. The same text is used for the final edit and for
the short notice that replies to it (edits do not notify, a reply does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bridge.meetings.participants import Presence, attendance
from bridge.meetings.store import Meeting, MeetingState
from bridge.messages import i18n
from bridge.messages.render import Link, Notice, duration, notice

MAX_NAMES = 5


@dataclass(frozen=True)
class StatusContext:
    language: str
    timezone: ZoneInfo
    link: str
    starter: str
    ender: str | None


def people(language: str, count: int) -> str:
    key = "people_plural" if i18n.is_plural(language, count) else "people"
    return i18n.text(language, key, count=count)


def bounded_names(language: str, names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    hidden = len(names) - MAX_NAMES
    return f"{shown} {i18n.text(language, 'and_more', count=hidden)}" if hidden > 0 else shown


def status_notice(meeting: Meeting, presences: list[Presence], ctx: StatusContext) -> Notice:
    seen = attendance(presences)
    if meeting.state in (MeetingState.ENDED, MeetingState.FAILED):
        lasted = duration(ctx.language, (meeting.ended_at or 0) - (meeting.started_at or 0))
        count = people(ctx.language, seen.total_people)
        if ctx.ender:
            return notice(ctx.language, "ended_by", ender=ctx.ender, duration=lasted, people=count)
        return notice(ctx.language, "ended_alone", duration=lasted, people=count)
    link = Link(ctx.link)
    if not seen.present_names:
        return notice(ctx.language, "started", starter=ctx.starter, link=link)
    started = datetime.fromtimestamp((meeting.started_at or meeting.created_at) / 1000, UTC)
    local = started.astimezone(ctx.timezone)
    return notice(
        ctx.language,
        "in_call",
        starter=ctx.starter,
        time=i18n.text(ctx.language, "time_of_day", hours=local.hour, minutes=local.minute),
        people=people(ctx.language, len(seen.present_names)),
        names=bounded_names(ctx.language, seen.present_names),
        link=link,
    )
