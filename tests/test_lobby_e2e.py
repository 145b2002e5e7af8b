"""The lobby, end to end: a guest waits on the link's page, a member reacts in the room.

One admission through real Synapse (the reaction as a client sends it, the edit as it shows);
refusals, who may decide, and expiry are tested on the fast tier, in `test_lobby.py`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import nio
import pytest
from harness import Human, Stack
from livekit.api import TokenVerifier

from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytestmark = pytest.mark.synapse


async def _lobby_room(stack: Stack, **settings: Any) -> tuple[Human, Human, str, str]:
    anne = await stack.human("anne", "Anne")
    bob = await stack.human("bob", "Bob")
    room = await stack.room_with_bot(anne)
    await anne.client.room_invite(room, bob.user_id)
    await bob.client.join(room)
    await anne.client.room_put_state(room, ROOM_CONFIG_EVENT, {"access": "lobby", **settings})
    await anne.send(room, "!visio")
    [status] = await anne.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
    assert slug
    return anne, bob, room, slug.group(1)


async def _knock(stack: Stack, slug: str, name: str) -> str:
    """The guest gives a name on the link's page; returns the waiting page's request id."""
    url = f"{stack.settings.appservice.address}/m/{slug}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data={"name": name}, allow_redirects=False) as page:
            assert page.status == 200
            text = await page.text()
    assert "Salle d\u2019attente" in text
    found = re.search(r'"id": "([A-Za-z0-9_-]+)"', text)
    assert found, text
    return found.group(1)


async def _poll(stack: Stack, request_id: str) -> dict[str, Any]:
    url = f"{stack.settings.appservice.address}/api/lobby/{request_id}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return dict(await response.json())


async def _react(human: Human, room: str, event_id: str, key: str) -> None:
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
    response = await human.client.room_send(room, "m.reaction", content)
    assert isinstance(response, nio.RoomSendResponse), response


def _lobby_notice(event: dict[str, Any]) -> bool:
    content = event["content"]
    return "demande à entrer" in content["body"] and "m.new_content" not in content


async def test_a_member_lets_the_guest_in(stack: Stack) -> None:
    anne, _, room, slug = await _lobby_room(stack)
    request_id = await _knock(stack, slug, "Zoé")
    waiting = asyncio.create_task(_poll(stack, request_id))  # the page's long-poll
    [lobby] = await anne.wait_for(room, _lobby_notice)
    assert lobby["content"]["body"].startswith("Zoé (personne invitée) demande à entrer")
    assert not waiting.done()
    await _react(anne, room, lobby["event_id"], "✅")
    answer = await asyncio.wait_for(waiting, 10)
    assert answer["state"] == "admitted"
    # The built-in page reads its token from a fragment, never sent to any server.
    token = parse_qs(urlparse(answer["frontend_url"]).fragment)["token"][0]
    claims = TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(token)
    assert claims.identity.startswith("guest-") and claims.name == "Zoé (personne invitée)"
    assert claims.video.room == f"visio-{slug}" and not claims.video.room_admin
    await anne.wait_for(
        room,
        lambda e: (
            e["content"].get("m.new_content", {}).get("body", "")
            == "L\u2019entrée de Zoé (personne invitée) dans la visio a été acceptée par Anne."
        ),
    )
