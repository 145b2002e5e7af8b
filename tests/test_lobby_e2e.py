"""The lobby, end to end: a guest waits on the link's page, a member reacts in the room."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import nio
import pytest
from harness import Human, Stack
from livekit.api import TokenVerifier
from livekit_double import LiveKitDouble

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
    assert "Salle d'attente" in text
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
    return "attend l'entrée" in event["content"]["body"] and "m.new_content" not in event["content"]


async def test_a_member_lets_the_guest_in(stack: Stack) -> None:
    anne, _, room, slug = await _lobby_room(stack)
    request_id = await _knock(stack, slug, "Zoé")
    waiting = asyncio.create_task(_poll(stack, request_id))  # the page's long-poll
    [lobby] = await anne.wait_for(room, _lobby_notice)
    assert lobby["content"]["body"].startswith("Zoé (invité) attend l'entrée")
    assert not waiting.done()
    await _react(anne, room, lobby["event_id"], "✅")
    answer = await asyncio.wait_for(waiting, 10)
    assert answer["state"] == "admitted"
    token = parse_qs(urlparse(answer["frontend_url"]).query)["token"][0]
    claims = TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(token)
    assert claims.identity.startswith("guest-") and claims.name == "Zoé (invité)"
    assert claims.video.room == f"visio-{slug}" and not claims.video.room_admin
    await anne.wait_for(
        room,
        lambda e: (
            e["content"].get("m.new_content", {}).get("body", "")
            == "Zoé (invité) a été admis dans la visio par Anne."
        ),
    )


async def test_a_refusal_and_a_reaction_from_someone_not_allowed(stack: Stack) -> None:
    anne, bob, room, slug = await _lobby_room(stack, start_power_level=50)
    request_id = await _knock(stack, slug, "Mallory")
    [lobby] = await anne.wait_for(room, _lobby_notice)
    await _react(bob, room, lobby["event_id"], "✅")  # Bob has level 0 < 50: ignored
    await asyncio.sleep(1.0)
    assert (await _poll_now(stack, request_id))["state"] == "waiting"
    await _react(anne, room, lobby["event_id"], "⛔")
    answer = await _poll(stack, request_id)
    assert answer == {"state": "refused"}
    # Deciding again changes nothing.
    await _react(anne, room, lobby["event_id"], "👍")
    await asyncio.sleep(0.5)
    assert (await _poll(stack, request_id)) == {"state": "refused"}


async def _poll_now(stack: Stack, request_id: str) -> dict[str, Any]:
    """Read the request without waiting for a decision (the bridge's own view)."""
    state = await stack.running.db.fetchval(
        "SELECT state FROM lobby_requests WHERE id=$1", request_id
    )
    return {"state": state}


async def test_unknown_requests_are_not_found(stack: Stack) -> None:
    answer = await _poll(stack, "no-such-request")
    assert answer["errcode"] == "M_NOT_FOUND"


@pytest.fixture
async def quick_lobby_stack(tmp_path: Path, livekit: LiveKitDouble) -> Any:
    overrides = {"meetings": {"lobby_timeout": 2}}
    async with Stack(tmp_path, livekit, config_overrides=overrides) as running:
        yield running


async def test_nobody_answering_expires_the_request(quick_lobby_stack: Stack) -> None:
    stack = quick_lobby_stack
    anne, _, room, slug = await _lobby_room(stack)
    request_id = await _knock(stack, slug, "Zoé")
    [lobby] = await anne.wait_for(room, _lobby_notice)
    answer = await asyncio.wait_for(_poll(stack, request_id), 10)
    assert answer == {"state": "expired"}
    await anne.wait_for(
        room,
        lambda e: (
            "personne n'a répondu à temps" in e["content"].get("m.new_content", {}).get("body", "")
        ),
    )
    await _react(anne, room, lobby["event_id"], "✅")  # too late
    await asyncio.sleep(0.5)
    assert (await _poll(stack, request_id)) == {"state": "expired"}
