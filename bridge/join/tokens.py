"""Join tokens: a short-lived LiveKit token for one identity in one room, and the front-end URL.

Tokens are minted per visit of the join page and never written to a Matrix room: the room only
ever sees a slug (ARCHITECTURE invariant 4).
"""

from __future__ import annotations

import datetime
import re
import secrets
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from livekit import api

from bridge.ids import LiveKitRoomName, ParticipantIdentity

MAX_DISPLAY_NAME = 48


class InvalidDisplayName(ValueError):
    pass


@dataclass(frozen=True)
class JoinSettings:
    livekit_url: str  # what browsers connect to (wss://…)
    api_key: str
    api_secret: str
    frontend_url: str  # template with {livekit_url}, {token}, {room}
    token_ttl_s: int = 600


# A guest's name is shown inside the bot's own notices and in participant lists, so it must not
# be able to pass for something else: another person's Matrix id (`@…:…`), a link, a second
# name in a comma-separated list, or text spilling onto new lines.
_FORBIDDEN = frozenset("@:,;<>/\\|[]{}`")
# With ":" and "/" refused no scheme can be written; what clients still turn into a link is a
# bare domain ("mairie-paris.fr.evil.com"), so a dot between letters refuses ("J. Martin" passes).
_URL_LIKE = re.compile(r"(?i)www\.|\w\.[a-z]{2,}")
_MAX_COMBINING_IN_A_ROW = 2


def clean_display_name(raw: str) -> str:
    """A guest's name as the room will see it, or `InvalidDisplayName`.

    NFKC folds look-alikes (fullwidth at signs, ligatures, odd spaces) onto what they imitate before
    the checks; runs of spaces become one; control, format and line/paragraph separator
    characters, the characters above, anything link-like and floods of combining marks refuse.
    """
    folded = unicodedata.normalize("NFKC", raw)
    combining = 0
    for ch in folded:
        category = unicodedata.category(ch)
        if category[0] == "C" or category in ("Zl", "Zp") or ch in _FORBIDDEN:
            raise InvalidDisplayName(f"character U+{ord(ch):04X}")
        combining = combining + 1 if category[0] == "M" else 0
        if combining > _MAX_COMBINING_IN_A_ROW:
            raise InvalidDisplayName("combining marks")
    name = " ".join(folded.split())
    if not name:
        raise InvalidDisplayName("empty")
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidDisplayName("too long")
    if _URL_LIKE.search(name):
        raise InvalidDisplayName("looks like a link")
    return name


def new_guest_identity() -> ParticipantIdentity:
    return ParticipantIdentity(f"guest-{secrets.token_hex(6)}")


def mint_token(
    settings: JoinSettings,
    room: LiveKitRoomName,
    identity: ParticipantIdentity,
    display_name: str,
    *,
    room_admin: bool = False,
    agent: bool = False,
) -> str:
    """A token for one person (or, with `agent`, the bridge itself) in one room.

    The bridge joins as an agent: LiveKit then neither counts it as a person nor lets it keep
    the room alive, so `empty_timeout` and `departure_timeout` still close a room that only the
    bridge is left in (a standard participant would hold every call open forever).
    """
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        room_admin=room_admin,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        agent=agent,
    )
    token = (
        api.AccessToken(settings.api_key, settings.api_secret)
        .with_identity(identity)
        .with_name(display_name)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=settings.token_ttl_s))
    )
    if agent:
        token = token.with_kind("agent")
    return token.to_jwt()


def frontend_url(settings: JoinSettings, room: LiveKitRoomName, token: str) -> str:
    return settings.frontend_url.format(
        livekit_url=quote(settings.livekit_url, safe=""),
        token=quote(token, safe=""),
        room=quote(room, safe=""),
    )
