"""Typed identifiers, and the one place where new meeting slugs and LiveKit room names are made."""

from __future__ import annotations

import re
import secrets
from typing import NewType

RoomID = NewType("RoomID", str)
UserID = NewType("UserID", str)
EventID = NewType("EventID", str)
MeetingID = NewType("MeetingID", str)
MeetingSlug = NewType("MeetingSlug", str)
LiveKitRoomName = NewType("LiveKitRoomName", str)
ParticipantIdentity = NewType("ParticipantIdentity", str)

_SLUG_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# La Suite Meet's shape, abc-defg-hij: 10 letters from 26 give log2(26**10) ≈ 47 bits,
# enough that a link cannot be guessed by enumerating the join page (which is rate limited too).
_SLUG_GROUPS = (3, 4, 3)
SLUG_PATTERN = re.compile(r"^[a-z]{3}-[a-z]{4}-[a-z]{3}$")


def new_slug() -> MeetingSlug:
    """A fresh, unguessable meeting slug in the `abc-defg-hij` shape."""
    groups = ("".join(secrets.choice(_SLUG_ALPHABET) for _ in range(n)) for n in _SLUG_GROUPS)
    return MeetingSlug("-".join(groups))


def is_slug(text: str) -> bool:
    return SLUG_PATTERN.fullmatch(text) is not None


def new_meeting_id() -> MeetingID:
    return MeetingID(secrets.token_hex(12))


def livekit_room_for(slug: MeetingSlug) -> LiveKitRoomName:
    """The LiveKit room of a meeting: derived from its slug so logs on both sides line up."""
    return LiveKitRoomName(f"visio-{slug}")
