"""The bridge's ports: everything the behaviour in `bridge/` needs from the outside, as Protocols.

The domain receives these as constructor arguments. `appservice/` implements them over mautrix
(Matrix, the database) and livekit-api (LiveKit); the tests use real servers or the recording
fakes in `tests/fakes/`. Errors that cross a port are the bridge's own (`MatrixUnavailable`,
`BotLacksPower`, `LiveKitError`), so no caller ever catches a library's exception type.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.ids import LiveKitRoomName
from bridge.messages.render import Notice

# --- Time -------------------------------------------------------------------------------------


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


# --- Database ---------------------------------------------------------------------------------

Row = Mapping[str, Any]


class Connection(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    async def execute(self, query: str, *args: Any) -> Any: ...

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class Database(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection. Inside an `acquire()` block the same task gets the same
        connection back (mautrix keeps it in a context variable), so repository calls made
        within `async with db.acquire() as conn, conn.transaction():` join that transaction."""
        ...

    async def execute(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


# --- Matrix -----------------------------------------------------------------------------------


class MatrixUnavailable(Exception):
    """The homeserver could not be reached, or did not answer in time."""


class BotLacksPower(Exception):
    """The room does not let the bot do something; `needed` is the power level it would need."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"the bot needs power level {needed}")
        self.needed = needed


def txn_id_for(*parts: str) -> str:
    """A deterministic transaction id for a send caused by `parts` (event id, purpose…)."""
    return "vb-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class Matrix(Protocol):
    """The client-server calls the bridge makes, as its bot (and, for chat, as ghost users).

    Every send takes a transaction id (see `txn_id_for`), so a replay after a crash gets the
    first send's event back instead of posting twice. Methods raise `MatrixUnavailable` when the
    homeserver is down and `BotLacksPower` when the room forbids what the bot tries.
    """

    @property
    def bot_mxid(self) -> str: ...

    async def send_notice(
        self,
        room_id: str,
        notice: Notice,
        *,
        txn_id: str,
        reply_to: str | None = None,
        thread_root: str | None = None,
    ) -> str:
        """Post an `m.notice` (never pinging anyone); returns its event id."""
        ...

    async def edit_notice(self, room_id: str, event_id: str, notice: Notice, *, txn_id: str) -> str:
        """Replace a notice's content (`m.replace`); returns the edit's event id."""
        ...

    async def send_text(
        self,
        room_id: str,
        notice: Notice,
        *,
        txn_id: str,
        sender: str | None = None,
        sender_name: str | None = None,
        edit_of: str | None = None,
    ) -> str:
        """Post chat as an `m.text`, by the bot or by the ghost `sender`, or edit one."""
        ...

    async def send_file(
        self,
        room_id: str,
        data: bytes,
        *,
        filename: str,
        mimetype: str,
        txn_id: str,
        thread_root: str | None = None,
    ) -> str:
        """Upload `data` and post it as an `m.file`."""
        ...

    async def react(self, room_id: str, event_id: str, key: str, *, txn_id: str) -> None: ...

    async def display_name(self, room_id: str, user_id: str) -> str:
        """The user's display name in the room, or their user id when they have none."""
        ...

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        """Whether the user is joined to the room now (asked fresh, never from a cache)."""
        ...

    async def power_level(self, room_id: str, user_id: str) -> int: ...

    async def level_needed_for_state(self, room_id: str, event_type: str) -> int: ...

    async def state_content(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        """The content of a room state event, or None when there is none."""
        ...

    async def send_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str: ...

    async def join(self, room_id: str) -> None: ...

    async def leave(self, room_id: str, reason: str) -> None: ...


# --- LiveKit ----------------------------------------------------------------------------------


class LiveKitError(Exception):
    """A LiveKit server call failed; `unreachable` is True when no answer came at all."""

    def __init__(self, message: str, *, unreachable: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.code = code


@dataclass(frozen=True)
class LiveRoom:
    name: LiveKitRoomName
    sid: str
    num_participants: int


@dataclass(frozen=True)
class LiveParticipant:
    sid: str
    identity: str
    name: str
    joined_at_ms: int


class LiveKitRooms(Protocol):
    async def create_room(
        self, name: LiveKitRoomName, metadata: str, max_participants: int = 0
    ) -> LiveRoom: ...

    async def delete_room(self, name: LiveKitRoomName) -> bool:
        """Delete a room; False when it was already gone."""
        ...

    async def list_rooms(self, names: list[LiveKitRoomName] | None = None) -> list[LiveRoom]: ...

    async def list_participants(self, name: LiveKitRoomName) -> list[LiveParticipant]:
        """The people in a room (not recorders or agents); empty when the room is gone."""
        ...

    async def send_data(self, name: LiveKitRoomName, payload: bytes, topic: str) -> None: ...

    async def update_room_metadata(self, name: LiveKitRoomName, metadata: str) -> None: ...

    async def start_audio_recording(self, name: LiveKitRoomName, filepath: str) -> str:
        """Start an audio-only room recording to an OGG file; returns the egress id."""
        ...

    async def stop_recording(self, egress_id: str) -> None: ...


# --- The bridge's participant in a call ---------------------------------------------------


@dataclass(frozen=True)
class CallMessage:
    """A chat message seen in the call."""

    id: str
    sender_identity: str
    sender_name: str
    text: str
    timestamp_ms: int


@dataclass(frozen=True)
class HeardTrack:
    """A participant's audio track, as the bridge's participant hears it."""

    identity: str
    name: str  # the participant's name in the call when the track was first heard
    track_sid: str


class TrackWriter(Protocol):
    """One heard track on its way to a file: 16 kHz mono signed 16-bit little-endian samples."""

    async def write(self, pcm: bytes, at_ms: int) -> None:
        """Samples whose first one was heard at wall-clock `at_ms`; a jump forward is a gap."""
        ...

    async def close(self) -> None: ...


class TrackSink(Protocol):
    """Where the bridge's participant puts each audio track it hears."""

    async def open(self, track: HeardTrack, at_ms: int) -> TrackWriter: ...


class CallConnection(Protocol):
    async def record(self, sink: TrackSink | None) -> None:
        """Record every participant's audio (now and as tracks come) into `sink`; None stops
        and closes every writer. Idempotent."""
        ...

    async def leave(self) -> None:
        """Leave the call; any track being recorded is closed first."""
        ...


OnCallMessage = Callable[[CallMessage], Awaitable[None]]


class CallParticipant(Protocol):
    """Joins a call as the bridge's participant: reports the chat it sees and, once asked
    (`CallConnection.record`), writes each person's audio track to its own file.

    `on_lost` is called when the connection is lost for good (the server went away), not when
    the bridge leaves or the server closes the room.
    """

    async def join(
        self,
        url: str,
        token: str,
        room: LiveKitRoomName,
        on_message: OnCallMessage,
        on_lost: Callable[[], None] | None = None,
    ) -> CallConnection: ...
