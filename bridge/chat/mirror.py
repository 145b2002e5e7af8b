"""Chat mirrored both ways between a Matrix room and its live call.

Room → call: each `m.text` / `m.notice` / `m.emote` (not the bridge's own, not a command) is sent
into the call as LiveKit's legacy chat packet, "Name : text", with the Matrix event id as the
message id, so an edit (`m.replace`) arrives as an edit and a redaction as "(message deleted)".

Call → room: the bridge's participant hears the call's chat; each message is stored in an
outbox first, then posted in order: a verified member (identity = Matrix user id) is relayed by
the bot with their name as a pill; a guest speaks through a ghost user ("Zoé (invité)"). A
message id seen again with new text is an edit of the event it became. Nothing echoes: what
the bridge posts in the room comes from its own users, which the dispatcher ignores, and what
it sends into the call comes from the server or the bridge participant, which is skipped here.
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
from bridge.ids import MeetingID, ParticipantIdentity, RoomID
from bridge.join.tokens import JoinSettings, mint_token
from bridge.meetings.lifecycle import matrix_user_of
from bridge.meetings.service import MeetingService
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.messages import i18n
from bridge.messages.render import Notice
from bridge.ports import (
    CallConnection,
    CallMessage,
    CallParticipant,
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
        meeting_service: MeetingService,
        chat: ChatStore,
        livekit: LiveKitRooms,
        call_chat: CallParticipant,
        matrix: Matrix,
        room_settings: RoomSettings,
        join_settings: JoinSettings,
        clock: Clock,
        *,
        rtc_url: str,
        ghost_prefix: str,
        server_name: str,
        retry_base_ms: int = 1000,
        max_attempts: int = 8,
        rejoin_first_delay_s: float = 0.5,
    ) -> None:
        self._meetings = meetings
        self._meeting_service = meeting_service
        self._chat = chat
        self._livekit = livekit
        self._call_chat = call_chat
        self._matrix = matrix
        self._room_settings = room_settings
        self._join_settings = join_settings
        self._clock = clock
        self._rtc_url = rtc_url
        self._ghost_prefix = ghost_prefix
        self._server_name = server_name
        self._retry_base_ms = retry_base_ms
        self._max_attempts = max_attempts
        self._rejoin_first_delay_s = rejoin_first_delay_s
        self._connections: dict[MeetingID, CallConnection] = {}
        self._connecting: set[MeetingID] = set()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

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
        if message.sender_identity == BRIDGE_IDENTITY:
            return  # our own messages into the call
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

    # ---- the bridge's participant in each live call ------------------------------------------

    async def sync(self, meeting_id: MeetingID) -> None:
        """Be in the meeting's call while it is live and mirrored; leave it otherwise."""
        meeting = await self._meetings.by_id(meeting_id)
        wanted = meeting is not None and await self._live_meeting(meeting.room_id) is not None
        connection = self._connections.get(meeting_id)
        if not wanted:
            if connection is not None:
                del self._connections[meeting_id]
                await connection.leave()
            return
        if connection is not None or meeting_id in self._connecting or meeting is None:
            return
        self._connecting.add(meeting_id)
        try:
            token = mint_token(
                self._join_settings,
                meeting.livekit_room,
                ParticipantIdentity(BRIDGE_IDENTITY),
                "Tchap",
                agent=True,
            )

            async def heard(message: CallMessage) -> None:
                await self.on_call_message(meeting_id, message)

            self._connections[meeting_id] = await self._call_chat.join(
                self._rtc_url,
                token,
                meeting.livekit_room,
                heard,
                on_lost=lambda: self._lost(meeting_id),
            )
        finally:
            self._connecting.discard(meeting_id)

    def _lost(self, meeting_id: MeetingID) -> None:
        self._connections.pop(meeting_id, None)
        task = asyncio.create_task(self._rejoin(meeting_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rejoin(self, meeting_id: MeetingID) -> None:
        """Come back into a call whose server went away, for as long as the meeting is live
        (the server may also have forgotten the room: it is made again first)."""
        delay = self._rejoin_first_delay_s
        while True:
            await asyncio.sleep(delay)
            meeting = await self._meetings.by_id(meeting_id)
            if meeting is None or await self._live_meeting(meeting.room_id) is None:
                return
            try:
                config = await self._room_settings.effective(meeting.room_id)
                await self._meeting_service.restore_room(meeting, config.max_participants)
                await self.sync(meeting_id)
                return
            except Exception as err:
                log.info("Meeting %s: call not rejoined yet (%r)", meeting_id, err)
                delay = min(delay * 2, 30.0)

    async def ensure_all(self) -> None:
        """(Re)connect to every live meeting: at start-up and with each reconcile pass."""
        for meeting in await self._meetings.open_meetings():
            try:
                await self.sync(meeting.id)
            except Exception as err:
                log.warning("Chat participant for meeting %s not connected: %r", meeting.id, err)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for connection in self._connections.values():
            with contextlib.suppress(Exception):
                await connection.leave()
        self._connections.clear()
