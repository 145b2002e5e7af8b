"""The throwaway livekit-server of the tests and the demo: on loopback, nobody else asked."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from live_calls import require_livekit_server
from livekit import api
from livekit.protocol import rtc as signal

from appservice.local.livekit import LocalLiveKit


async def test_clients_are_pointed_at_nothing_outside_this_machine(tmp_path: Path) -> None:
    """What the server tells a joining client: ICE servers and candidates on loopback only
    (left alone, livekit-server hands every client Google's and Twilio's STUN servers)."""
    require_livekit_server()
    async with LocalLiveKit(tmp_path) as server:
        async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="r1"))
        token = (
            api.AccessToken(server.api_key, server.api_secret)
            .with_identity("someone")
            .with_grants(api.VideoGrants(room_join=True, room="r1"))
            .to_jwt()
        )
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{server.rtc_url}/rtc?access_token={token}") as ws,
        ):
            first = await ws.receive_bytes(timeout=10)
    join = signal.SignalResponse.FromString(first).join
    urls = [url for ice in join.ice_servers for url in ice.urls]
    assert urls, "the server names its ICE servers"
    assert all(url.startswith("stun:127.0.0.1:") for url in urls), urls
    assert join.server_info.version == "1.13.5"
