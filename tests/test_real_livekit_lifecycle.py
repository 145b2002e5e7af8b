"""Meetings on the real livekit-server: one room per `!visio`, its own webhooks drive the status.

People join with the tokens the bridge mints and connect over real WebRTC on loopback; the
status message follows what the server itself reports (`participant_joined`, `participant_left`,
`room_finished`), and the reconciler repairs what the bridge missed while it was down.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from call_people import CallPerson
from harness import Human, Stack
from livekit import api

from appservice.app import LIFECYCLE, Options

pytestmark = pytest.mark.synapse


def server_api(stack: Stack) -> api.LiveKitAPI:
    return api.LiveKitAPI(stack.livekit.url, stack.livekit.api_key, stack.livekit.api_secret)


async def server_rooms(stack: Stack) -> list[str]:
    async with server_api(stack) as lk:
        response = await lk.room.list_rooms(api.ListRoomsRequest())
    return sorted(room.name for room in response.rooms)


async def start_meeting(stack: Stack, human: Human, room: str) -> tuple[dict[str, Any], str]:
    await human.send(room, "!visio")
    [status] = await human.wait_for(room, lambda e: "Visio démarrée par" in e["content"]["body"])
    slug = re.search(r"/m/([a-z]{3}-[a-z]{4}-[a-z]{3})", status["content"]["body"])
    assert slug, status
    return status, slug.group(1)


async def guest_token(stack: Stack, slug: str, name: str) -> str:
    """What a guest's browser gets from the join page: the token in the front end's URL."""
    page = f"{stack.settings.appservice.address}/m/{slug}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(page, data={"name": name}, allow_redirects=False) as response,
    ):
        assert response.status == 303, await response.text()
        location = response.headers["Location"]
    return parse_qs(urlparse(location).query)["token"][0]


async def join_as_guest(stack: Stack, slug: str, name: str) -> CallPerson:
    token = await guest_token(stack, slug, name)
    return await CallPerson().join(stack.settings.livekit.url, token)


def status_edits(events: list[dict[str, Any]], status_id: str) -> list[str]:
    return [
        e["content"]["m.new_content"]["body"]
        for e in events
        if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
        and e["content"]["m.relates_to"]["event_id"] == status_id
    ]


async def wait_status(
    human: Human, room: str, status_id: str, wanted: str, timeout: float = 20
) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    shown = ""
    while asyncio.get_running_loop().time() < deadline:
        edits = status_edits(await human.bot_notices(room), status_id)
        shown = edits[-1] if edits else ""
        if wanted in shown:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"status never showed {wanted!r}; last: {shown!r}")


async def test_visio_makes_exactly_one_room_on_the_server_even_under_20_parallel_commands(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    await asyncio.gather(*(alice.send(room, "!visio") for _ in range(20)))
    [status] = await alice.wait_for(room, lambda e: "Visio démarrée par" in e["content"]["body"])
    # Every other command answered with the same link, and the server holds one room.
    await alice.wait_for(room, lambda e: "/m/" in e["content"]["body"], count=20, timeout=60)
    slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
    assert slug
    assert await server_rooms(live_stack) == [f"visio-{slug.group(1)}"]


async def test_the_servers_webhooks_drive_the_status_message(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(live_stack, alice, room)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    yann = await join_as_guest(live_stack, slug, "Yann")
    shown = await wait_status(alice, room, status["event_id"], "2 participants")
    # The guests' names as the server reports them, marked as guests; the bridge's own
    # participant (an agent) is not counted.
    assert "Zoé (invité), Yann (invité)" in shown or "Yann (invité), Zoé (invité)" in shown
    assert "Tchap" not in shown
    await yann.leave()
    shown = await wait_status(alice, room, status["event_id"], "1 participant :")
    assert "Yann" not in shown
    # The last person leaves: departure_timeout (1 s here) closes the room on the server.
    await zoe.leave()
    shown = await wait_status(alice, room, status["event_id"], "Visio terminée")
    assert shown.endswith("2 participants.")
    assert await server_rooms(live_stack) == []


@pytest.mark.parametrize(
    "live_stack", [{"livekit": {"room": {"empty_timeout": 10}}}], indirect=True
)
async def test_empty_timeout_closes_a_room_nobody_joined(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, _ = await start_meeting(live_stack, alice, room)
    # The bridge's own participant is in the call, but as an agent it keeps nothing alive.
    shown = await wait_status(alice, room, status["event_id"], "Visio terminée", timeout=30)
    assert "0 participant" in shown or "personne" in shown, shown


async def test_the_reconciler_repairs_what_happened_while_the_bridge_was_down(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(live_stack, alice, room)
    token = await guest_token(live_stack, slug, "Zoé")
    await live_stack.stop_bridge()
    # While the bridge is down, a guest comes and goes and the room closes; webhooks are lost.
    zoe = await CallPerson().join(live_stack.settings.livekit.url, token)
    await zoe.leave()
    for _ in range(100):
        if not await server_rooms(live_stack):
            break
        await asyncio.sleep(0.1)
    assert await server_rooms(live_stack) == []
    await live_stack.start_bridge(Options(status_coalesce_s=0.3, reconcile_interval_s=3600))
    await wait_status(alice, room, status["event_id"], "Visio terminée")
    assert live_stack.bridge is not None
    report = await live_stack.app[LIFECYCLE].reconcile()
    assert report.ended == 0  # already repaired at start-up, once
