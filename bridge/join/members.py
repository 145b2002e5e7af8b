"""Tokens for room members with a verified Matrix identity (`POST /api/token`).

The order of checks is the security argument. The meeting must be live first (`live_meeting`),
before anything reaches out to a homeserver: verifying a token means contacting a server the
unauthenticated caller names, which must not happen for a made-up link. Then the OpenID token
must be valid for the user it claims (their homeserver says so), the meeting must still be live,
and the user must be joined to the meeting's Matrix room right now (MSC4195 asks for this;
Element Call's service does not check it). Only then is a LiveKit token minted: identity = the
Matrix user id, name = their display name in the room, one room, short-lived, `roomAdmin` only
for moderators.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bridge.ids import ParticipantIdentity, RoomID
from bridge.join.openid import OpenIDRejected, OpenIDVerifier
from bridge.join.tokens import JoinSettings, frontend_url, mint_token
from bridge.meetings.service import MeetingService
from bridge.meetings.store import Meeting

log = logging.getLogger(__name__)


class Membership(Protocol):
    async def is_joined(self, room_id: str, user_id: str) -> bool: ...

    async def power_level(self, room_id: str, user_id: str) -> int: ...

    async def display_name(self, room_id: str, user_id: str) -> str: ...


class JoinRefused(Exception):
    """A refusal in Matrix's error shape."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(f"{errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error


@dataclass(frozen=True)
class MemberGrant:
    token: str
    livekit_url: str
    room: str
    identity: str
    frontend_url: str


class MemberJoin:
    def __init__(
        self,
        meetings: MeetingService,
        verifier: OpenIDVerifier,
        membership: Membership,
        settings: JoinSettings,
        moderator_level: Callable[[RoomID], Awaitable[int]],
    ) -> None:
        self._meetings = meetings
        self._verifier = verifier
        self._membership = membership
        self._settings = settings
        self._moderator_level = moderator_level

    async def live_meeting(self, slug: str) -> Meeting:
        """The live meeting behind `slug`; checked before any homeserver is contacted."""
        meeting = await self._meetings.by_slug(slug)
        if meeting is None or not meeting.is_open:
            raise JoinRefused(404, "M_NOT_FOUND", "No live meeting for this link")
        return meeting

    async def grant(
        self, meeting: Meeting, access_token: str, server_name: str, claimed_user: str | None
    ) -> MemberGrant:
        """A token for `meeting` (from `live_meeting`) to the user the OpenID token proves."""
        try:
            user_id = await self._verifier.verify(access_token, server_name)
        except OpenIDRejected as err:
            log.info("OpenID token refused for meeting %s: %s", meeting.id, err)
            raise JoinRefused(401, "M_UNAUTHORIZED", "Invalid or expired OpenID token") from err
        if claimed_user is not None and claimed_user != user_id:
            raise JoinRefused(401, "M_UNAUTHORIZED", "The OpenID token is for another user")
        # Verification can take seconds: the meeting may have ended meanwhile.
        meeting = await self.live_meeting(meeting.slug)
        if not await self._membership.is_joined(meeting.room_id, user_id):
            log.info(
                "Refused %s for meeting %s: not joined to %s", user_id, meeting.id, meeting.room_id
            )
            raise JoinRefused(403, "M_FORBIDDEN", "You are not a member of this meeting's room")
        name = await self._membership.display_name(meeting.room_id, user_id)
        level = await self._membership.power_level(meeting.room_id, user_id)
        admin = level >= await self._moderator_level(meeting.room_id)
        token = mint_token(
            self._settings,
            meeting.livekit_room,
            ParticipantIdentity(user_id),
            name,
            room_admin=admin,
        )
        log.info(
            "Member token minted for %s in meeting %s (%s)%s",
            user_id,
            meeting.id,
            meeting.room_id,
            " with roomAdmin" if admin else "",
        )
        return MemberGrant(
            token=token,
            livekit_url=self._settings.livekit_url,
            room=meeting.livekit_room,
            identity=user_id,
            frontend_url=frontend_url(self._settings, meeting.livekit_room, token),
        )
