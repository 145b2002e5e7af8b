"""A stand-in for the bridge's rtc participant: the `CallChat` port, driven by the test.

A real participant needs a LiveKit server speaking WebRTC, which cannot run here. This double
records which calls the bridge joined (checking the token it was given, as LiveKit would) and
lets a test play people typing in the call's chat, through the same callback the real
adapter (`bridge/call_participant.py`) uses.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit.api import TokenVerifier

from bridge.chat import CallMessage, OnCallMessage


@dataclass
class _Connection:
    double: CallChatDouble
    room: str

    async def leave(self) -> None:
        self.double.joined.pop(self.room, None)
        self.double.left.append(self.room)


@dataclass
class CallChatDouble:
    api_key: str
    api_secret: str
    joined: dict[str, OnCallMessage] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

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
        self.joined[room] = on_message
        self.identities[room] = claims.identity
        return _Connection(self, room)

    async def say(
        self, room: str, identity: str, name: str, text: str, message_id: str | None = None
    ) -> str:
        """Someone in the call sends (or, with a known `message_id`, edits) a chat message."""
        message_id = message_id or f"msg-{next(self._ids)}"
        handler = self.joined[room]
        await handler(CallMessage(message_id, identity, name, text, int(time.time() * 1000)))
        return message_id
