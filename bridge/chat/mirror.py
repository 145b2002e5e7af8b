"""Chat mirrored both ways between a Matrix room and its live call.

Room → call: each `m.text` / `m.notice` / `m.emote` (not the bridge's own, not a command) is sent
into the call as LiveKit's legacy chat packet, "Name : text", with the Matrix event id as the
message id, so an edit (`m.replace`) arrives as an edit and a redaction as "(message deleted)".

Call → room: the bridge's participant (`bridge/calls/agent.py`) hears the call's chat; each
message is stored in an outbox first, then posted in order: a verified member (identity = Matrix
user id) is relayed by the bot with their name as a pill; a guest speaks through a ghost user
("Zoé (invité)"). A message id seen again with new text is an edit of the event it became.
Nothing echoes: what the bridge posts in the room comes from its own users, which the
dispatcher ignores, and what it sends into the call comes from the server or the bridge
participant, which is skipped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
from collections.abc import Mapping
from typing import Any

from bridge.chat.messages import (
    BRIDGE_IDENTITY,
    LEGACY_CHAT_TOPIC,
    ChatStore,
    OutboxItem,
    legacy_packet,
    plain_text_of,
)
from bridge.ids import MeetingID, RoomID
from bridge.meetings.lifecycle import matrix_user_of
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.messages import i18n
from bridge.messages.render import Notice
from bridge.ports import (
    CallMessage,
    Clock,
    LiveKitRooms,
    Matrix,
    txn_id_for,
)
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)

MIRRORED_TYPES = frozenset({"m.text", "m.notice", "m.emote"})


class ChatMirror:
    def __init__(
        self,
        meetings: MeetingStore,
        chat: ChatStore,
        livekit: LiveKitRooms,
        matrix: Matrix,
        room_settings: RoomSettings,
        clock: Clock,
        *,
        ghost_prefix: str,
        server_name: str,
        retry_base_ms: int = 1000,
        max_attempts: int = 8,
    ) -> None:
        self._meetings = meetings
        self._chat = chat
        self._livekit = livekit
        self._matrix = matrix
        self._room_settings = room_settings
        self._clock = clock
        self._ghost_prefix = ghost_prefix
        self._server_name = server_name
        self._retry_base_ms = retry_base_ms
        self._max_attempts = max_attempts
        self._wakeup = asyncio.Event()

    # ---- room → call ---------------------------------------------------------------------

    async def on_room_message(self, event: Mapping[str, Any]) -> None:
        content = event.get("content") or {}
        relation = content.get("m.relates_to") or {}
        edit = relation.get("rel_type") == "m.replace" and isinstance(
            content.get("m.new_content"), dict
        )
        shown = content["m.new_content"] if edit else content
        if shown.get("msgtype") not in MIRRORED_TYPES:
            return
        meeting = await self._live_meeting(str(event["room_id"]))
        if meeting is None:
            return
        message_id = str(relation.get("event_id")) if edit else str(event["event_id"])
        if await self._chat.is_mirrored_event(message_id):
            return  # an edit of something the mirror itself posted: it came from the call
        text = plain_text_of(shown)
        if text is None:
            return
        language = await self._room_settings.language(meeting.room_id)
        name = await self._matrix.display_name(meeting.room_id, str(event["sender"]))
        key = "chat_emote" if shown.get("msgtype") == "m.emote" else "chat_line"
        line = i18n.text(language, key, name=name, text=text)
        await self._send_to_call(meeting, message_id, line)
        if not edit:
            await self._chat.link(
                meeting.id, "", message_id, str(event["event_id"]), "to_call", self._clock.now_ms()
            )

    async def on_redaction(self, event: Mapping[str, Any]) -> None:
        redacted = event.get("redacts") or (event.get("content") or {}).get("redacts")
        if not isinstance(redacted, str):
            return
        meeting = await self._live_meeting(str(event["room_id"]))
        if meeting is None or await self._chat.event_for(meeting.id, "", redacted) != redacted:
            return
        language = await self._room_settings.language(meeting.room_id)
        await self._send_to_call(meeting, redacted, i18n.text(language, "chat_deleted"))

    async def _send_to_call(self, meeting: Meeting, message_id: str, text: str) -> None:
        packet = legacy_packet(message_id, text, self._clock.now_ms())
        await self._livekit.send_data(meeting.livekit_room, packet, LEGACY_CHAT_TOPIC)

    async def _live_meeting(self, room_id: str) -> Meeting | None:
        meeting = await self._meetings.open_in_room(RoomID(room_id))
        if meeting is None or meeting.state is not MeetingState.LIVE:
            return None
        config = await self._room_settings.effective(room_id)
        return meeting if config.room.chat_mirror and config.room.enabled else None

    # ---- call → room ---------------------------------------------------------------------

    async def on_call_message(self, meeting_id: MeetingID, message: CallMessage) -> None:
        """A message heard in the call (by this process's participant, or a worker's)."""
        if message.sender_identity == BRIDGE_IDENTITY:
            return  # our own messages into the call
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None or await self._live_meeting(meeting.room_id) is None:
            return  # the participant is there to record; the room does not mirror its chat
        if await self._chat.enqueue(meeting_id, message, self._clock.now_ms()):
            self._wakeup.set()

    async def run_outbox(self) -> None:
        """Post queued call messages in order, forever (cancelled at shutdown)."""
        while True:
            self._wakeup.clear()
            try:
                delivered = await self.drain_outbox()
            except Exception:
                log.exception("Chat outbox pass failed")
                delivered = 0
            if not delivered:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)

    async def drain_outbox(self) -> int:
        items = await self._chat.due(self._clock.now_ms())
        failed_meetings: set[MeetingID] = set()
        for item in items:
            if item.meeting_id in failed_meetings:
                continue  # keep each meeting's order: wait for the failed one's retry
            try:
                await self._deliver(item)
            except Exception as err:
                failed_meetings.add(item.meeting_id)
                attempts = item.attempts + 1
                retry = (
                    None
                    if attempts >= self._max_attempts
                    else self._clock.now_ms() + self._retry_base_ms * 2 ** (attempts - 1)
                )
                log.warning("Chat message %s not posted (attempt %d): %r", item.seq, attempts, err)
                await self._chat.mark_failed(item.seq, repr(err), retry)
                continue
            await self._chat.mark_sent(item.seq)
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        meeting = await self._meetings.by_id(item.meeting_id)
        if meeting is None:
            return
        previous = await self._chat.event_for(meeting.id, item.sender_identity, item.message_id)
        txn = txn_id_for(meeting.id, item.sender_identity, item.message_id, item.text)
        member = matrix_user_of(item.sender_identity)
        if member is not None:
            # An appservice cannot speak as a real user: the bot relays, naming them.
            name = html.escape(item.sender_name)
            link = f'<a href="https://matrix.to/#/{html.escape(member)}">{name}</a>'
            language = await self._room_settings.language(meeting.room_id)
            colon = "\u00a0: " if language == "fr" else ": "
            message = Notice(
                plain=f"{item.sender_name}{colon}{item.text}",
                html=f"{link}{colon}{html.escape(item.text)}",
            )
            event_id = await self._matrix.send_text(
                meeting.room_id, message, txn_id=txn, edit_of=previous
            )
        else:
            message = Notice(plain=item.text, html=html.escape(item.text))
            event_id = await self._matrix.send_text(
                meeting.room_id,
                message,
                txn_id=txn,
                sender=self.ghost_for(item.sender_identity),
                sender_name=item.sender_name,
                edit_of=previous,
            )
        if previous is None:
            await self._chat.link(
                meeting.id,
                item.sender_identity,
                item.message_id,
                event_id,
                "to_room",
                self._clock.now_ms(),
            )

    def ghost_for(self, identity: str) -> str:
        """The ghost user a guest of the call speaks through: stable per LiveKit identity."""
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return f"@{self._ghost_prefix}{digest}:{self._server_name}"
