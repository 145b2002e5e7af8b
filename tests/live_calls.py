"""Helpers for tests on the real livekit-server: meetings, tokens as people get them, waits.

A guest's token comes from the join page (the token in the front end's URL), a member's from
`POST /api/token` with an OpenID token from Synapse, exactly as a browser or the widget gets
them; people then join through `call_people.CallPerson` over real WebRTC. `running_live_stack`
is the stack itself (Synapse, the bridge and a livekit-server whose webhooks reach it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from call_people import CallPerson, leave_everyone
from harness import Human, Stack
from livekit import api

from appservice.local.livekit import LocalLiveKit, find_livekit_server
from appservice.local.ports import free_port
from bridge.chat.messages import BRIDGE_IDENTITY

Event = dict[str, Any]


def require_livekit_server() -> None:
    """Skip without livekit-server, except in CI, where a missing server is a failure."""
    if find_livekit_server() is None:
        reason = "livekit-server is not built: bash .ci/install-livekit.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextlib.asynccontextmanager
async def running_live_stack(
    tmp_path: Path, overrides: dict[str, Any] | None = None, **stack_options: Any
) -> AsyncIterator[Stack]:
    """Synapse + bridge + the real livekit-server, whose webhooks reach the bridge.

    Rooms close one second after the last person leaves (not 20), so that tests see the end
    of a call quickly; `overrides` adds bridge config, `stack_options` go to `Stack`.
    """
    require_livekit_server()
    config = {"livekit": {"room": {"departure_timeout": 1}}}
    for key, value in (overrides or {}).items():
        config[key] = {**config.get(key, {}), **value}
    bridge_port = free_port()
    server = LocalLiveKit(
        tmp_path / "livekit",
        webhook_urls=[f"http://127.0.0.1:{bridge_port}/livekit/webhook"],
    )
    stack = Stack(
        tmp_path, server, bridge_port=bridge_port, config_overrides=config, **stack_options
    )
    async with server, stack as running:
        try:
            yield running
        finally:
            await leave_everyone()


async def start_meeting(human: Human, room: str) -> tuple[Event, str]:
    """`!visio` in `room`; the status message and the meeting's slug."""
    await human.send(room, "!visio")
    [status] = await human.wait_for(room, lambda e: "Visio démarrée par" in e["content"]["body"])
    slug = re.search(r"/m/([a-z]{3}-[a-z]{4}-[a-z]{3})", status["content"]["body"])
    assert slug, status
    return status, slug.group(1)


async def server_rooms(stack: Stack) -> list[str]:
    """The rooms the server itself has (its ListRooms)."""
    lk = api.LiveKitAPI(stack.livekit.url, stack.livekit.api_key, stack.livekit.api_secret)
    async with lk:
        response = await lk.room.list_rooms(api.ListRoomsRequest())
    return sorted(room.name for room in response.rooms)


async def guest_token(stack: Stack, slug: str, name: str) -> str:
    """As the built-in call page gets it: the form posted as JSON, the token in the answer."""
    page = f"{stack.settings.appservice.address}/m/{slug}"
    headers = {"Accept": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(page, data={"name": name}, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        return str((await response.json())["token"])


async def join_as_guest(stack: Stack, slug: str, name: str) -> CallPerson:
    return await CallPerson().join(stack.settings.livekit.url, await guest_token(stack, slug, name))


async def member_token(stack: Stack, human: Human, slug: str) -> str:
    url = f"{stack.synapse.base_url}/_matrix/client/v3/user/{human.user_id}/openid/request_token"
    headers = {"Authorization": f"Bearer {human.client.access_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={}, headers=headers) as response:
            openid = await response.json()
        body = {"slug": slug, "user_id": human.user_id, "openid_token": openid}
        api_url = f"{stack.settings.appservice.address}/api/token"
        async with session.post(api_url, json=body) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])


async def join_as_member(stack: Stack, human: Human, slug: str) -> CallPerson:
    token = await member_token(stack, human, slug)
    return await CallPerson().join(stack.settings.livekit.url, token)


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def bridge_in_call(person: CallPerson) -> None:
    await wait_until(lambda: BRIDGE_IDENTITY in person.others(), "the bridge joined the call")


def status_edits(events: list[Event], status_id: str) -> list[str]:
    return [
        e["content"]["m.new_content"]["body"]
        for e in events
        if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
        and e["content"]["m.relates_to"]["event_id"] == status_id
    ]


async def wait_status(
    human: Human, room: str, status_id: str, wanted: str, timeout: float = 20
) -> str:
    """Wait until the status message (its newest edit) shows `wanted`; return what it shows."""
    deadline = asyncio.get_running_loop().time() + timeout
    shown = ""
    while asyncio.get_running_loop().time() < deadline:
        edits = status_edits(await human.bot_notices(room), status_id)
        shown = edits[-1] if edits else ""
        if wanted in shown:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"status never showed {wanted!r}; last: {shown!r}")


async def room_texts(human: Human, room: str) -> list[Event]:
    return [
        e
        for e in await human.history(room)
        if e.get("type") == "m.room.message" and e["content"].get("msgtype") == "m.text"
    ]


async def wait_room_texts(
    human: Human, room: str, predicate: Callable[[Event], bool], count: int = 1
) -> list[Event]:
    for _ in range(200):
        found = [event for event in await room_texts(human, room) if predicate(event)]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    shown = [e["content"]["body"] for e in await room_texts(human, room)]
    raise AssertionError(f"the room never showed {count} such message(s): {shown}")


async def wait_room_text(human: Human, room: str, predicate: Callable[[Event], bool]) -> Event:
    return (await wait_room_texts(human, room, predicate))[0]
