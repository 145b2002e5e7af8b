"""The lobby as the room sees it: "Zoé (invité) attend l'entrée — ✅ / ⛔", decided by reactions.

The bot posts one notice per waiting guest (and reacts ✅ and ⛔ itself, so members only have to
click). Only an `m.annotation` of that notice, sent in the meeting's own room by someone joined
to it at or above the room's start power level, decides; anything else is ignored. The notice
is then edited to say what happened, including when nobody answered in time or the call ended
first (the desk follows the meeting: `sync`). An admitted guest gets a token only while the
meeting is open and the room still lets guests in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bridge.ids import MeetingID, ParticipantIdentity
from bridge.join.tokens import JoinSettings, frontend_url, mint_token
from bridge.lobby.requests import Lobby, LobbyRequest, LobbyState
from bridge.meetings.store import Meeting, MeetingStore
from bridge.messages.render import notice
from bridge.ports import Matrix, txn_id_for
from bridge.room_settings.config import Access
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)

ADMIT_KEYS = frozenset({"✅", "✔️", "✔", "👍", "👍️"})
REFUSE_KEYS = frozenset({"⛔", "❌", "👎", "👎️", "🚫"})
# An admitted guest's page may fetch its token for this long after the decision.
TOKEN_WINDOW_MS = 10 * 60_000


class LobbyDesk:
    def __init__(
        self,
        lobby: Lobby,
        meetings: MeetingStore,
        matrix: Matrix,
        room_settings: RoomSettings,
        join_settings: JoinSettings,
    ) -> None:
        self._lobby = lobby
        self._meetings = meetings
        self._matrix = matrix
        self._room_settings = room_settings
        self._join_settings = join_settings

    async def announce(self, meeting: Meeting, request: LobbyRequest) -> None:
        language = await self._room_settings.language(meeting.room_id)
        event_id = await self._matrix.send_notice(
            meeting.room_id,
            notice(language, "lobby_waiting", guest=request.display_name),
            txn_id=txn_id_for(request.id, "lobby"),
        )
        await self._lobby.attach_message(request.id, event_id)
        for key in ("✅", "⛔"):
            await self._matrix.react(
                meeting.room_id, event_id, key, txn_id=txn_id_for(request.id, "lobby", key)
            )
        log.info("Guest %s waiting in the lobby of meeting %s", request.identity, meeting.id)

    async def on_reaction(self, event: Mapping[str, Any]) -> None:
        content = event.get("content")
        relation = content.get("m.relates_to") if isinstance(content, Mapping) else None
        if not isinstance(relation, Mapping) or relation.get("rel_type") != "m.annotation":
            return
        key = relation.get("key")
        target = relation.get("event_id")
        if not isinstance(target, str) or key not in ADMIT_KEYS | REFUSE_KEYS:
            return
        request = await self._lobby.by_message(target)
        if request is None or request.state is not LobbyState.WAITING:
            return
        meeting = await self._meetings.by_id(request.meeting_id)
        if meeting is None:
            return
        sender = str(event["sender"])
        if event.get("room_id") != meeting.room_id:
            # A reaction names its target by event id only: the same id "reacted to" from
            # another room the bot is in must not decide this room's lobby.
            log.warning("Ignoring a lobby reaction by %s sent from another room", sender)
            return
        if not await self._matrix.is_joined(meeting.room_id, sender):
            log.info("Ignoring lobby reaction by %s, not joined to %s", sender, meeting.room_id)
            return
        config = await self._room_settings.effective(meeting.room_id)
        level = await self._matrix.power_level(meeting.room_id, sender)
        if level < config.room.start_power_level:
            log.info(
                "Ignoring lobby reaction by %s (level %d) in %s", sender, level, meeting.room_id
            )
            return
        decided = await self._lobby.decide(request.id, key in ADMIT_KEYS, sender)
        if decided is not None:
            await self._show_outcome(meeting, decided)

    async def sync(self, meeting_id: MeetingID) -> None:
        """A meeting changed: once it is over, close the requests still waiting in it."""
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None or meeting.is_open:
            return
        for request in await self._lobby.end_meeting(meeting_id):
            await self._show_outcome(meeting, request)

    async def expire(self) -> int:
        """Close what nobody answered in time; returns how many. Also catches up on calls that
        ended while their requests were still waiting (a crash before `sync` ran)."""
        expired = await self._lobby.expire_due()
        for request in expired:
            meeting = await self._meetings.by_id(request.meeting_id)
            if meeting is not None:
                await self._show_outcome(meeting, request)
        for meeting_id in await self._lobby.meetings_waited_on():
            await self.sync(meeting_id)
        return len(expired)

    async def _show_outcome(self, meeting: Meeting, request: LobbyRequest) -> None:
        if request.message_event_id is None:
            return
        language = await self._room_settings.language(meeting.room_id)
        if request.state is LobbyState.EXPIRED:
            text = notice(language, "lobby_expired", guest=request.display_name)
        elif request.state is LobbyState.ENDED:
            text = notice(language, "lobby_ended", guest=request.display_name)
        else:
            member = await self._matrix.display_name(meeting.room_id, request.decided_by or "")
            key = "lobby_admitted" if request.state is LobbyState.ADMITTED else "lobby_refused"
            text = notice(language, key, guest=request.display_name, member=member)
        await self._matrix.edit_notice(
            meeting.room_id,
            request.message_event_id,
            text,
            txn_id=txn_id_for(request.id, "lobby-outcome"),
        )
        log.info(
            "Lobby request of %s in meeting %s: %s", request.identity, meeting.id, request.state
        )

    async def token_url(self, request: LobbyRequest, now_ms: int) -> str | None:
        """The front-end URL with a fresh token, for an admitted request still in its window."""
        if request.state is not LobbyState.ADMITTED:
            return None
        meeting = await self._meetings.by_id(request.meeting_id)
        if meeting is None or not meeting.is_open or now_ms > request.expires_at + TOKEN_WINDOW_MS:
            return None
        # The room may have closed to guests since the admission: its settings now decide.
        config = await self._room_settings.effective(meeting.room_id)
        if config.room.access is Access.MEMBERS or not config.room.enabled:
            log.info("Admitted guest %s refused: the room no longer takes guests", request.identity)
            return None
        token = mint_token(
            self._join_settings,
            meeting.livekit_room,
            ParticipantIdentity(request.identity),
            request.display_name,
        )
        return frontend_url(self._join_settings, meeting.livekit_room, token)
