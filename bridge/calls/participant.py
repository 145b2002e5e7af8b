"""The bridge's participant in a call, over the `livekit` rtc SDK: it reads the call's chat and,
when asked, hears each person's microphone.

Kept thin: connect with a token, turn both chat protocols into `CallMessage`s, hand each heard
microphone track to a `TrackSink` as 16 kHz mono samples stamped with the wall-clock time they
arrived, report a lost connection, leave. What the bridge does with them lives behind the
`CallParticipant` port.

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
- A subscribed audio track yields frames in real time for as long as it is subscribed: while
  its publisher is muted, or sends nothing, those frames are silence (asserted in
  `tests/test_track_recording_livekit.py`). The writer still treats a pause in frames as a gap,
  should another SDK or a stalled network stop them.
- The bridge subscribes to nothing by itself (no video, no screen share): only to microphones,
  and only while it records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from bridge.chat.messages import (
    BRIDGE_IDENTITY,
    CHAT_STREAM_TOPIC,
    LEGACY_CHAT_TOPIC,
    MAX_CHAT_CHARS,
    parse_legacy_packet,
)
from bridge.clock import SystemClock
from bridge.ids import LiveKitRoomName
from bridge.ports import CallMessage, Clock, HeardTrack, OnCallMessage, TrackSink, TrackWriter

log = logging.getLogger(__name__)

# How long a message waits for the server to announce its sender before going out under the
# sender's identity instead of their name (the server batches announcements every few seconds).
SENDER_WAIT_S = 8.0
# What the sink gets: what the transcription pipeline reads (bridge/transcription/audio.py).
HEARD_SAMPLE_RATE = 16_000
# The SDK gathers 10 ms frames into frames this long: a tenth of the Python work per second
# of audio (measured: ~2 CPU s per participant-minute with 10 ms frames), for a timeline that
# is still far finer than the gap the writer fills (300 ms).
HEARD_FRAME_MS = 100
# A track whose file could not be opened, or whose file failed twice in a short while, is
# tried again after this long (not at every frame); what was said meanwhile is lost, and logged.
RETRY_OPEN_MS = 5_000
# How long stopping one track may take: its encoder finishing the file, its row closed.
_STOP_TIMEOUT_S = 30.0

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


def _worth_recording(publication: Any, participant: Any, own_identity: str) -> bool:
    """A person's microphone: not a screen share's sound, not an agent (the bridge itself, in
    this process or another), not LiveKit's own recorders."""
    from livekit import rtc

    not_people = {
        rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
        rtc.ParticipantKind.PARTICIPANT_KIND_EGRESS,
    }
    return (
        publication.kind == rtc.TrackKind.KIND_AUDIO
        and publication.source == rtc.TrackSource.SOURCE_MICROPHONE
        and participant.kind not in not_people
        and participant.identity not in (own_identity, BRIDGE_IDENTITY)
    )


def _duration_ms(pcm: bytes) -> int:
    return len(pcm) * 1000 // (2 * HEARD_SAMPLE_RATE)  # 16-bit mono


class _TrackRecording:
    """One remote microphone, read at 16 kHz mono and handed to a writer the sink opens.

    Two tasks: one only reads frames and stamps each with the time it arrived, the other
    writes them. A writer that waits (a full encoder pipe, a database save) thus never makes a
    frame look late, which would put silence into the file where there was none.
    """

    def __init__(
        self, track: Any, heard: HeardTrack, sink: TrackSink, clock: Clock, room: LiveKitRoomName
    ) -> None:
        from livekit import rtc

        self.heard = heard
        self._sink = sink
        self._clock = clock
        self._room = room
        self._frames: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._stream = rtc.AudioStream(
            track,
            sample_rate=HEARD_SAMPLE_RATE,
            num_channels=1,
            frame_size_ms=HEARD_FRAME_MS,
        )
        self._reading = asyncio.ensure_future(self._read())
        self._writing = asyncio.ensure_future(self._write())

    async def _read(self) -> None:
        try:
            async for event in self._stream:
                pcm = bytes(event.frame.data)
                # A frame arrives once its last sample has: its first was heard that long ago.
                heard_ms = self._clock.now_ms() - _duration_ms(pcm)
                self._frames.put_nowait((heard_ms, pcm))
        finally:
            self._frames.put_nowait(None)

    async def _write(self) -> None:
        writer: TrackWriter | None = None
        opened_at = retry_at = 0
        lost_ms = 0
        try:
            while (frame := await self._frames.get()) is not None:
                at_ms, pcm = frame
                if writer is None:
                    if at_ms < retry_at:
                        lost_ms += _duration_ms(pcm)
                        continue
                    writer = await self._open(at_ms, lost_ms)
                    if writer is None:
                        retry_at = at_ms + RETRY_OPEN_MS
                        continue
                    opened_at, lost_ms = at_ms, 0
                try:
                    await writer.write(pcm, at_ms)
                except Exception:
                    log.exception(
                        "Call %s: %s's audio could not be written",
                        self._room,
                        self.heard.identity,
                    )
                    await self._close(writer)
                    writer = None
                    # Once, a new file at once; a file that keeps failing, not at every frame.
                    if at_ms - opened_at < RETRY_OPEN_MS:
                        retry_at = at_ms + RETRY_OPEN_MS
        finally:
            if writer is not None:
                await self._close(writer)

    async def _open(self, at_ms: int, lost_ms: int) -> TrackWriter | None:
        try:
            writer = await self._sink.open(self.heard, at_ms)
        except Exception:
            log.exception(
                "Call %s: could not start recording %s (track %s); trying again in %s s",
                self._room,
                self.heard.identity,
                self.heard.track_sid,
                RETRY_OPEN_MS // 1000,
            )
            return None
        if lost_ms:
            log.error(
                "Call %s: %.1f s of %s's audio were not recorded",
                self._room,
                lost_ms / 1000,
                self.heard.identity,
            )
        return writer

    async def _close(self, writer: TrackWriter) -> None:
        try:
            await writer.close()
        except Exception:
            log.exception(
                "Call %s: %s's track file not closed cleanly", self._room, self.heard.identity
            )

    async def stop(self) -> None:
        """Stop reading, write what was read, close the file."""
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await self._stream.aclose()
                outcomes = await asyncio.gather(
                    self._reading, self._writing, return_exceptions=True
                )
        except TimeoutError:
            log.error("Call %s: %s's track did not stop in time", self._room, self.heard.identity)
            self._reading.cancel()
            self._writing.cancel()
            return
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error(
                    "Call %s: recording %s's track ended with %r",
                    self._room,
                    self.heard.identity,
                    outcome,
                )


class _RtcConnection:
    """`CallConnection`: the joined room, and the tracks being recorded (by track sid)."""

    def __init__(self, room: Any, name: LiveKitRoomName, clock: Clock) -> None:
        self._room = room
        self._name = name
        self._clock = clock
        self.leaving = False
        self.sink: TrackSink | None = None
        self._recordings: dict[str, _TrackRecording] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def _own_identity(self) -> str:
        return str(self._room.local_participant.identity)

    def _microphones(self) -> list[tuple[Any, Any]]:
        return [
            (publication, participant)
            for participant in self._room.remote_participants.values()
            for publication in participant.track_publications.values()
            if _worth_recording(publication, participant, self._own_identity())
        ]

    async def record(self, sink: TrackSink | None) -> None:
        if sink is self.sink:
            return
        self.sink = sink
        await self._stop_all()
        for publication, participant in self._microphones():
            if sink is None:
                if publication.subscribed and not self.leaving:
                    # No audio is received for nothing. (Not when leaving: the disconnect
                    # ends every subscription, and an unsubscribed track the SDK frees late
                    # makes its native layer warn of an unknown handle.)
                    publication.set_subscribed(False)
            else:
                self.published(publication, participant)

    # The SDK's events (synchronous callbacks), as `join` wires them.

    def published(self, publication: Any, participant: Any) -> None:
        if self.sink is None or not _worth_recording(
            publication, participant, self._own_identity()
        ):
            return
        if publication.track is not None:
            self.subscribed(publication.track, publication, participant)
        else:
            publication.set_subscribed(True)  # `subscribed` follows

    def subscribed(self, track: Any, publication: Any, participant: Any) -> None:
        if (
            self.sink is None
            or publication.sid in self._recordings
            or not _worth_recording(publication, participant, self._own_identity())
        ):
            return
        heard = HeardTrack(
            identity=str(participant.identity),
            name=str(participant.name or participant.identity),
            track_sid=str(publication.sid),
        )
        self._recordings[publication.sid] = _TrackRecording(
            track, heard, self.sink, self._clock, self._name
        )

    def track_gone(self, track_sid: str) -> None:
        recording = self._recordings.pop(track_sid, None)
        if recording is not None:
            self._stop_later(recording)

    def participant_gone(self, identity: str) -> None:
        for sid, recording in list(self._recordings.items()):
            if recording.heard.identity == identity:
                self.track_gone(sid)

    def room_gone(self) -> None:
        for sid in list(self._recordings):
            self.track_gone(sid)

    def _stop_later(self, recording: _TrackRecording) -> None:
        task = asyncio.ensure_future(recording.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_all(self) -> None:
        """Every track stopped and its file closed, including those already stopping."""
        recordings = list(self._recordings.values())
        self._recordings.clear()
        await asyncio.gather(*(recording.stop() for recording in recordings), *self._stopping)

    async def leave(self) -> None:
        self.leaving = True
        await self.record(None)
        await self._stop_all()  # those already stopping too (someone who just left)
        await self._room.disconnect()


class LiveKitCallParticipant:
    """`CallParticipant` over livekit.rtc (imported lazily: it loads a native library)."""

    def __init__(
        self,
        connect_timeout_s: float = 15.0,
        sender_wait_s: float = SENDER_WAIT_S,
        clock: Clock | None = None,
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._sender_wait_s = sender_wait_s
        self._clock = clock or SystemClock()
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
        connection = _RtcConnection(call, room, self._clock)
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
            connection.room_gone()  # every track file closed, whatever the reason
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

        def on_participant_left(participant: rtc.RemoteParticipant) -> None:
            connection.participant_gone(participant.identity)

        call.on("participant_connected", on_participant)
        call.on("participant_disconnected", on_participant_left)
        call.on("data_received", on_data)
        call.on("disconnected", on_disconnected)
        call.on("track_published", connection.published)
        call.on("track_subscribed", connection.subscribed)
        call.on("track_unsubscribed", lambda _track, pub, _who: connection.track_gone(pub.sid))
        call.on("track_unpublished", lambda pub, _who: connection.track_gone(pub.sid))
        call.register_text_stream_handler(CHAT_STREAM_TOPIC, on_stream)
        # Nothing is subscribed to by itself: microphones only, and only while recording.
        options = rtc.RoomOptions(auto_subscribe=False)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await call.connect(url, token, options)
        except Exception as err:
            raise CallJoinFailed(f"could not join LiveKit room {room} at {url}: {err!r}") from err
        log.info("Bridge participant joined LiveKit room %s", room)
        return connection
