"""The chat mirror's domain: LiveKit's chat wire formats, the call-side port, and persistence.

LiveKit's own apps speak two chat protocols: a text stream on topic `lk.chat` (current) and a
data packet on topic `lk-chat-topic` holding `{id, timestamp, message}` (legacy, still read by
every client); a repeated id from the same sender is an edit. The server API can only send data
packets, so room → call uses the legacy packet; call → room accepts both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bridge.ids import MeetingID
from bridge.ports import CallMessage, Database

LEGACY_CHAT_TOPIC = "lk-chat-topic"
CHAT_STREAM_TOPIC = "lk.chat"
MAX_CHAT_CHARS = 4000
# The bridge's own participant in each call: its messages are never mirrored back.
BRIDGE_IDENTITY = "visio-bridge"


def legacy_packet(message_id: str, text: str, timestamp_ms: int) -> bytes:
    return json.dumps(
        {"id": message_id, "timestamp": timestamp_ms, "message": text, "ignoreLegacy": False},
        ensure_ascii=False,
    ).encode()


def parse_legacy_packet(
    payload: bytes, sender_identity: str, sender_name: str
) -> CallMessage | None:
    """A legacy chat packet's message, or None when it is not one (or is malformed)."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("ignoreLegacy") is True:
        return None  # the sender also sent it as a text stream, which we read instead
    message, message_id = data.get("message"), data.get("id")
    timestamp = data.get("timestamp")
    if not isinstance(message, str) or not isinstance(message_id, str) or not message.strip():
        return None
    return CallMessage(
        id=message_id[:200],
        sender_identity=sender_identity,
        sender_name=sender_name or sender_identity,
        text=message[:MAX_CHAT_CHARS],
        timestamp_ms=timestamp if isinstance(timestamp, int) else 0,
    )


_REPLY_FALLBACK = re.compile(r"\A(?:> .*\n)+\n", re.MULTILINE)


def plain_text_of(content: dict[str, Any]) -> str | None:
    """The readable text of a Matrix message for the call, or None when it has none.

    The plain `body` already keeps mentions (as names) and links; only the quoted fallback of
    a reply is dropped, as clients that render replies do.
    """
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        return None
    text = (
        _REPLY_FALLBACK.sub("", body, count=1)
        if "m.in_reply_to" in str(content.get("m.relates_to", ""))
        else body
    )
    return text.strip()[:MAX_CHAT_CHARS] or None


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    meeting_id: MeetingID
    sender_identity: str
    sender_name: str
    message_id: str
    text: str
    attempts: int


class ChatStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def link(
        self,
        meeting_id: MeetingID,
        sender: str,
        message_id: str,
        event_id: str,
        direction: str,
        at: int,
    ) -> None:
        await self._db.execute(
            "INSERT INTO chat_links (meeting_id, livekit_sender, livekit_message_id, "
            "matrix_event_id, direction, created_at) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT DO NOTHING",
            meeting_id,
            sender,
            message_id,
            event_id,
            direction,
            at,
        )

    async def event_for(self, meeting_id: MeetingID, sender: str, message_id: str) -> str | None:
        value = await self._db.fetchval(
            "SELECT matrix_event_id FROM chat_links WHERE meeting_id=$1 AND livekit_sender=$2 "
            "AND livekit_message_id=$3",
            meeting_id,
            sender,
            message_id,
        )
        return str(value) if value is not None else None

    async def is_mirrored_event(self, event_id: str) -> bool:
        """Whether a Matrix event was posted by the mirror (so it must not go back to the call)."""
        value = await self._db.fetchval(
            "SELECT 1 FROM chat_links WHERE matrix_event_id=$1 AND direction='to_room'", event_id
        )
        return value is not None

    async def enqueue(self, meeting_id: MeetingID, message: CallMessage, at: int) -> bool:
        """Store a message from the call; False when the very same one was stored already."""
        stored = await self._db.fetchval(
            "INSERT INTO chat_outbox (meeting_id, livekit_sender, sender_name, "
            "livekit_message_id, text, received_at, next_attempt_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING seq",
            meeting_id,
            message.sender_identity,
            message.sender_name,
            message.id,
            message.text,
            at,
        )
        return stored is not None

    async def due(self, now_ms: int, limit: int = 100) -> list[OutboxItem]:
        rows = await self._db.fetch(
            "SELECT seq, meeting_id, livekit_sender, sender_name, livekit_message_id, text, "
            "attempts FROM chat_outbox WHERE state='pending' AND next_attempt_at <= $1 "
            "ORDER BY seq LIMIT $2",
            now_ms,
            limit,
        )
        return [
            OutboxItem(
                seq=row["seq"],
                meeting_id=MeetingID(row["meeting_id"]),
                sender_identity=row["livekit_sender"],
                sender_name=row["sender_name"],
                message_id=row["livekit_message_id"],
                text=row["text"],
                attempts=row["attempts"],
            )
            for row in rows
        ]

    async def mark_sent(self, seq: int) -> None:
        await self._db.execute("UPDATE chat_outbox SET state='sent' WHERE seq=$1", seq)

    async def mark_failed(self, seq: int, error: str, retry_at_ms: int | None) -> None:
        if retry_at_ms is None:
            await self._db.execute(
                "UPDATE chat_outbox SET state='failed', attempts=attempts+1, last_error=$2 "
                "WHERE seq=$1",
                seq,
                error,
            )
        else:
            await self._db.execute(
                "UPDATE chat_outbox SET attempts=attempts+1, last_error=$2, next_attempt_at=$3 "
                "WHERE seq=$1",
                seq,
                error,
                retry_at_ms,
            )
