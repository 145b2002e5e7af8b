"""The bridge's call participant where there is no call to join: stacks on the LiveKit double.

The double speaks LiveKit's server API but no WebRTC, so a stack on it gives the bridge this
stand-in, which checks the token it is handed as LiveKit would and joins nothing. Everything
the participant really does (chat both ways, coming back after a restart) is tested on the real
livekit-server (`test_chat_e2e.py`, `test_real_livekit_calls.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from livekit.api import TokenVerifier

from bridge.ports import OnCallMessage, TrackSink


@dataclass
class _Connection:
    double: CallParticipantDouble
    room: str

    sink: TrackSink | None = None

    async def record(self, sink: TrackSink | None) -> None:
        self.sink = sink
        self.double.recording[self.room] = sink

    async def leave(self) -> None:
        self.double.joined.discard(self.room)
        self.double.recording.pop(self.room, None)


@dataclass
class CallParticipantDouble:
    api_key: str
    api_secret: str
    joined: set[str] = field(default_factory=set)
    recording: dict[str, TrackSink | None] = field(default_factory=dict)

    async def join(
        self,
        url: str,
        token: str,
        room: str,
        on_message: OnCallMessage,
        on_lost: Callable[[], None] | None = None,
    ) -> _Connection:
        claims = TokenVerifier(self.api_key, self.api_secret).verify(token)
        assert claims.video is not None and claims.video.room == room and claims.video.room_join
        self.joined.add(room)
        return _Connection(self, room)
