"""The status message's text, from hand-made meetings and presences (no Matrix, no LiveKit)."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from bridge.ids import EventID, LiveKitRoomName, MeetingID, MeetingSlug, RoomID, UserID
from bridge.meetings.participants import Presence
from bridge.meetings.store import Meeting, MeetingState
from bridge.status.message import StatusContext, status_notice

# 2026-11-23 13:05 UTC is 14:05 in Paris.
STARTED = 1_795_352_700_000
LIVE = Meeting(
    id=MeetingID("m1"),
    room_id=RoomID("!r:x"),
    slug=MeetingSlug("abc-defg-hij"),
    livekit_room=LiveKitRoomName("visio-abc-defg-hij"),
    state=MeetingState.LIVE,
    started_by=UserID("@alice:x"),
    command_event_id=EventID("$c"),
    created_at=STARTED,
    started_at=STARTED,
)


def ctx(language: str = "fr", ender: str | None = None) -> StatusContext:
    return StatusContext(language, ZoneInfo("Europe/Paris"), "https://v.test/m/abc", "Alice", ender)


def here(sid: str, name: str, identity: str | None = None) -> Presence:
    return Presence(sid, identity or sid, name, None, STARTED + 1000, None)


def gone(sid: str, name: str) -> Presence:
    return Presence(sid, sid, name, None, STARTED + 1000, STARTED + 5000)


def test_nobody_in_yet_shows_the_start_message() -> None:
    text = status_notice(LIVE, [], ctx()).plain
    assert text == "Visio démarrée par Alice — rejoindre\u00a0: https://v.test/m/abc"


def test_live_lists_who_is_in_with_local_start_time() -> None:
    text = status_notice(LIVE, [here("a", "Bob"), here("b", "alice"), gone("c", "Carl")], ctx())
    assert text.plain == (
        "Visio en cours, démarrée par Alice à 14\u00a0h\u00a005 — 2 personnes\u00a0: alice, Bob "
        "— rejoindre\u00a0: https://v.test/m/abc"
    )


def test_long_lists_are_bounded() -> None:
    people = [here(f"s{n}", f"P{n:02d}") for n in range(9)]
    text = status_notice(LIVE, people, ctx("en")).plain
    assert "9 participants: P00, P01, P02, P03, P04 +4 more" in text


def test_one_person_rejoining_counts_once() -> None:
    again = [gone("s1", "Bob"), here("s2", "Bob", identity="s1")]
    assert "1 personne\u00a0:" in status_notice(LIVE, again, ctx()).plain


def test_ended_gives_duration_and_headcount_in_both_languages() -> None:
    ended = replace(LIVE, state=MeetingState.ENDED, ended_at=STARTED + 42 * 60_000)
    people = [gone("a", "Bob"), gone("b", "Zoé"), gone("c", "Ali")]
    assert status_notice(ended, people, ctx()).plain == "Visio terminée — 42\u00a0min, 3 personnes."
    assert (
        status_notice(ended, people[:1], ctx("en", ender="Bob")).plain
        == "Video call ended by Bob — 42 min, 1 participant."
    )
    assert status_notice(ended, [], ctx()).plain.endswith("0 personne.")
    assert status_notice(ended, [], ctx("en")).plain.endswith("0 participants.")
