"""The bridge's participant in a call, over the `livekit` rtc SDK: it reads the call's chat.

Kept thin: connect with a token, turn both chat protocols into `CallMessage`s, report a lost
connection, leave. What the bridge does with them lives behind the `CallParticipant` port.

Two facts of the real server shape this adapter (livekit-server 1.13, livekit rtc 1.2):
- The server announces participants who publish nothing (a guest with camera and microphone
  off) in batches, up to ~3 s after they joined, but relays their chat at once. The SDK then
  hands over a text stream from an identity it cannot name yet, so delivery waits (a bounded
  while, in order per sender) until the server has said who that is. A legacy data packet in
  that window comes with no sender at all (the SDK's native layer drops it): it cannot be
  attributed and is not mirrored. Current LiveKit apps send text streams, which are.
- When the server goes away, the SDK retries on its own, then gives up with a reason. Only a
  connection lost that way is reported; a room the server closed or deleted is the end of the
  meeting, which the webhooks and the reconciler already handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from bridge.chat.messages import (
    CHAT_STREAM_TOPIC,
    LEGACY_CHAT_TOPIC,
    MAX_CHAT_CHARS,
    parse_legacy_packet,
)
from bridge.ids import LiveKitRoomName
from bridge.ports import CallMessage, OnCallMessage, TrackSink

log = logging.getLogger(__name__)

# How long a message waits for the server to announce its sender before going out under the
# sender's identity instead of their name (the server batches announcements every few seconds).
SENDER_WAIT_S = 8.0

OnLost = Callable[[], None]


class CallJoinFailed(Exception):
    pass


class TextChunks(Protocol):
    """What `read_capped_text` needs of `rtc.TextStreamReader`: its chunks, and `close()`."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    def close(self) -> None: ...


async def read_capped_text(reader: TextChunks, limit: int = MAX_CHAT_CHARS) -> str:
    """The first `limit` characters of a text stream, reading no further than that.

    `read_all()` would hold a stream of any size in memory before we cut it; a sender could
    stream without end. The reader is closed when we stop early, as the SDK asks (otherwise its
    subscription to the native event queue lives on).
    """
    parts: list[str] = []
    size = 0
    try:
        async for chunk in reader:
            part = chunk[: limit - size]
            parts.append(part)
            size += len(part)
            if size >= limit:
                break
    finally:
        reader.close()  # a no-op when the stream already ended
    return "".join(parts)


class _RtcConnection:
    def __init__(self, room: Any) -> None:
        self._room = room
        self.leaving = False
        self.sink: TrackSink | None = None

    async def record(self, sink: TrackSink | None) -> None:
        self.sink = sink

    async def leave(self) -> None:
        self.leaving = True
        await self._room.disconnect()


class LiveKitCallParticipant:
    """`CallParticipant` over livekit.rtc (imported lazily: it loads a native library)."""

    def __init__(
        self, connect_timeout_s: float = 15.0, sender_wait_s: float = SENDER_WAIT_S
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._sender_wait_s = sender_wait_s
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def join(
        self,
        url: str,
        token: str,
        room: LiveKitRoomName,
        on_message: OnCallMessage,
        on_lost: OnLost | None = None,
    ) -> _RtcConnection:
        from livekit import rtc

        call = rtc.Room()
        connection = _RtcConnection(call)
        announced: dict[str, asyncio.Event] = {}
        # Each sender's messages are handled one after the other, in the order they arrived
        # (a stream still being read, or waiting for its sender's name, holds the next back).
        last_of: dict[str, asyncio.Future[None]] = {}

        def in_turn(identity: str, work: Awaitable[None]) -> None:
            previous = last_of.get(identity)

            async def after_previous() -> None:
                if previous is not None:
                    await asyncio.wait([previous])
                await work

            task = self._spawn(after_previous())
            last_of[identity] = task
            task.add_done_callback(
                lambda done: last_of.pop(identity) if last_of.get(identity) is done else None
            )

        def announcement(identity: str) -> asyncio.Event:
            event = announced.setdefault(identity, asyncio.Event())
            if identity in call.remote_participants:
                event.set()
            return event

        async def name_of(identity: str) -> str:
            event = announcement(identity)
            if not event.is_set():
                try:
                    async with asyncio.timeout(self._sender_wait_s):
                        await event.wait()
                except TimeoutError:
                    log.info("Sender %s of a chat message in %s never announced", identity, room)
            sender = call.remote_participants.get(identity)
            return str(sender.name) if sender is not None and sender.name else identity

        async def deliver(identity: str, build: Callable[[str], CallMessage | None]) -> None:
            message = build(await name_of(identity))
            if message is None:
                return
            try:
                await on_message(message)
            except Exception:
                log.exception("Chat message %s from %s not handled", message.id, room)

        def on_participant(participant: rtc.RemoteParticipant) -> None:
            announcement(participant.identity).set()

        def on_data(packet: rtc.DataPacket) -> None:
            if packet.topic != LEGACY_CHAT_TOPIC:
                return
            if packet.participant is None:
                # Either the server itself (SendData: the bridge's own relay of the room, whose
                # ids are Matrix event ids), or a legacy-only app in its first seconds, whose
                # identity the rtc SDK does not pass on: that one is lost, and said so.
                relayed = parse_legacy_packet(packet.data, "", "")
                if relayed is not None and not relayed.id.startswith("$"):
                    log.warning(
                        "Chat message %s in %s has no known sender: not mirrored", relayed.id, room
                    )
                return
            identity, payload = packet.participant.identity, packet.data
            in_turn(
                identity,
                deliver(identity, lambda name: parse_legacy_packet(payload, identity, name)),
            )

        async def read_stream(reader: rtc.TextStreamReader, identity: str) -> None:
            text = await read_capped_text(reader)
            info = reader.info
            timestamp = int(info.timestamp) or int(time.time() * 1000)
            await deliver(
                identity,
                lambda name: CallMessage(info.stream_id, identity, name, text, timestamp),
            )

        def on_stream(reader: rtc.TextStreamReader, identity: str) -> None:
            in_turn(identity, read_stream(reader, identity))

        def on_disconnected(reason: int) -> None:
            ended = {
                rtc.DisconnectReason.ROOM_DELETED,
                rtc.DisconnectReason.ROOM_CLOSED,
                rtc.DisconnectReason.CLIENT_INITIATED,
            }
            if connection.leaving or reason in ended:
                return
            log.warning("Bridge participant lost LiveKit room %s (reason %s)", room, reason)
            if on_lost is not None:
                on_lost()

        call.on("participant_connected", on_participant)
        call.on("data_received", on_data)
        call.on("disconnected", on_disconnected)
        call.register_text_stream_handler(CHAT_STREAM_TOPIC, on_stream)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await call.connect(url, token)
        except Exception as err:
            raise CallJoinFailed(f"could not join LiveKit room {room} at {url}: {err!r}") from err
        log.info("Bridge participant joined LiveKit room %s", room)
        return connection
