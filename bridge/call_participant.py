"""The bridge's participant in a call, over the `livekit` rtc SDK: it reads the call's chat.

Kept thin: connect with a token, turn both chat protocols into `CallMessage`s, leave. The
bridging logic lives behind the `CallChat` port and is tested with a double; this adapter needs
a real LiveKit server (WebRTC), which the tests only reach to check it fails clearly.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .chat import (
    CHAT_STREAM_TOPIC,
    LEGACY_CHAT_TOPIC,
    MAX_CHAT_CHARS,
    CallMessage,
    OnCallMessage,
    parse_legacy_packet,
)
from .ids import LiveKitRoomName

log = logging.getLogger(__name__)


class CallJoinFailed(Exception):
    pass


class _RtcConnection:
    def __init__(self, room: object) -> None:
        self._room = room

    async def leave(self) -> None:
        await self._room.disconnect()  # type: ignore[attr-defined]


class LiveKitCallChat:
    """`CallChat` over livekit.rtc (imported lazily: it loads a native library)."""

    def __init__(self, connect_timeout_s: float = 15.0) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(
        self, url: str, token: str, room: LiveKitRoomName, on_message: OnCallMessage
    ) -> _RtcConnection:
        from livekit import rtc

        call = rtc.Room()

        async def forward(message: CallMessage) -> None:
            try:
                await on_message(message)
            except Exception:
                log.exception("Chat message %s from %s not handled", message.id, room)

        def deliver(message: CallMessage) -> None:
            task = asyncio.create_task(forward(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        @call.on("data_received")
        def on_data(packet: rtc.DataPacket) -> None:
            if packet.topic != LEGACY_CHAT_TOPIC or packet.participant is None:
                return
            sender = packet.participant
            message = parse_legacy_packet(packet.data, sender.identity, sender.name)
            if message is not None:
                deliver(message)

        async def read_stream(reader: rtc.TextStreamReader, identity: str) -> None:
            text = (await reader.read_all())[:MAX_CHAT_CHARS]
            sender = call.remote_participants.get(identity)
            info = reader.info
            deliver(
                CallMessage(
                    id=info.stream_id,
                    sender_identity=identity,
                    sender_name=sender.name if sender else identity,
                    text=text,
                    timestamp_ms=int(info.timestamp) or int(time.time() * 1000),
                )
            )

        def on_stream(reader: rtc.TextStreamReader, identity: str) -> None:
            task = asyncio.create_task(read_stream(reader, identity))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        call.register_text_stream_handler(CHAT_STREAM_TOPIC, on_stream)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await call.connect(url, token)
        except Exception as err:
            raise CallJoinFailed(f"could not join LiveKit room {room} at {url}: {err!r}") from err
        log.info("Bridge participant joined LiveKit room %s", room)
        return _RtcConnection(call)
