"""The real livekit.rtc participant adapter: it loads, and fails clearly without a real server."""

from __future__ import annotations

import time

import pytest
from harness import free_port
from livekit.api import VideoGrants
from livekit_double import LiveKitDouble

from bridge.calls.participant import CallJoinFailed, LiveKitCallParticipant
from bridge.ids import LiveKitRoomName
from bridge.ports import CallMessage

pytest.importorskip("livekit.rtc")


async def _ignore(message: CallMessage) -> None:
    raise AssertionError(f"no message expected, got {message}")


@pytest.mark.parametrize("where", ["closed port", "server without WebRTC"])
async def test_joining_without_a_real_livekit_fails_clearly(
    livekit: LiveKitDouble, where: str
) -> None:
    url = (
        f"ws://127.0.0.1:{free_port()}"
        if where == "closed port"
        else livekit.url.replace("http", "ws")
    )
    token = livekit.make_token(
        VideoGrants(room_join=True, room="visio-abc"), identity="visio-bridge"
    )
    started = time.monotonic()
    with pytest.raises(CallJoinFailed, match="could not join LiveKit room visio-abc"):
        await LiveKitCallParticipant(connect_timeout_s=10).join(
            url, token, LiveKitRoomName("visio-abc"), _ignore
        )
    assert time.monotonic() - started < 12
