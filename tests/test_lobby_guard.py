"""Only the meeting's own room decides its lobby, and an admission lasts only while guests may come.

A reaction names its target by event id alone, so whoever reacts, from wherever, with whatever
relation, must be checked: these tests are the lobby bypass a review found, and its variants.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from fast import ALICE, BOB, ROOM, FastBridge

from bridge.room_settings.config import ROOM_CONFIG_EVENT

OTHER_ROOM = "!other:localhost"
MALLORY = "@mallory:localhost"
SLUG = re.compile(r"/m/([a-z]{3}-[a-z]{4}-[a-z]{3})")


async def _set_access(fast: FastBridge, access: str, sender: str = ALICE) -> str:
    return await fast.event(
        {
            "type": ROOM_CONFIG_EVENT,
            "state_key": "",
            "sender": sender,
            "room_id": ROOM,
            "content": {"access": access},
        }
    )


async def _guest_knocks(fast: FastBridge) -> tuple[str, str]:
    """Start a lobby meeting, knock as Zoé: (the lobby notice's event id, the request id)."""
    await _set_access(fast, "lobby")
    await fast.say("!visio")
    match = SLUG.search(fast.notices()[0])
    assert match, fast.notices()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fast.base_url}/m/{match.group(1)}", data={"name": "Zoé"}) as page,
    ):
        assert page.status == 200
        request_id = re.search(r'"id": "([^"]+)"', await page.text())
    assert request_id, "the waiting page carries its request id"
    [waiting] = [s for s in fast.matrix.in_room(ROOM, "notice") if "Zoé" in s.body]
    return waiting.event_id, request_id.group(1)


def _reaction(
    sender: str, room: str, target: str, key: str = "✅", rel_type: str = "m.annotation"
) -> dict[str, Any]:
    relation = {"rel_type": rel_type, "event_id": target, "key": key}
    return {
        "type": "m.reaction",
        "sender": sender,
        "room_id": room,
        "content": {"m.relates_to": relation},
    }


async def _lobby_state(fast: FastBridge, request_id: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fast.base_url}/api/lobby/{request_id}") as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def _lobby_notice_text(fast: FastBridge, notice_id: str) -> str:
    return fast.matrix.current_text(notice_id)


async def test_a_reaction_from_another_room_does_not_admit(fast: FastBridge) -> None:
    notice_id, request_id = await _guest_knocks(fast)
    # Mallory is an admin of another room the bot is in, and reacts there to the notice's id.
    fast.matrix.room(OTHER_ROOM, members={MALLORY: "Mallory"}, levels={MALLORY: 100})
    await fast.event(_reaction(MALLORY, OTHER_ROOM, notice_id))
    assert "demande à entrer" in await _lobby_notice_text(fast, notice_id)
    # The room's own admin still decides.
    await fast.event(_reaction(ALICE, ROOM, notice_id))
    assert (await _lobby_state(fast, request_id))["state"] == "admitted"
    assert "Alice" in await _lobby_notice_text(fast, notice_id)


async def test_only_an_annotation_decides(fast: FastBridge) -> None:
    notice_id, request_id = await _guest_knocks(fast)
    await fast.event(_reaction(ALICE, ROOM, notice_id, rel_type="m.reference"))
    assert "demande à entrer" in await _lobby_notice_text(fast, notice_id)
    await fast.event(_reaction(ALICE, ROOM, notice_id, key="⛔"))
    assert (await _lobby_state(fast, request_id))["state"] == "refused"


async def test_someone_who_left_the_room_does_not_decide(fast: FastBridge) -> None:
    notice_id, _ = await _guest_knocks(fast)
    # Mallory still holds power 100 in the room's power levels, but has left the room.
    fast.matrix.room(ROOM, levels={MALLORY: 100})
    await fast.event(_reaction(MALLORY, ROOM, notice_id))
    assert "demande à entrer" in await _lobby_notice_text(fast, notice_id)


async def test_an_admitted_guest_gets_no_token_once_the_room_closes_to_guests(
    fast: FastBridge,
) -> None:
    notice_id, request_id = await _guest_knocks(fast)
    await fast.event(_reaction(ALICE, ROOM, notice_id))
    assert "frontend_url" in await _lobby_state(fast, request_id)
    await _set_access(fast, "members")
    state = await _lobby_state(fast, request_id)
    assert state["state"] == "admitted"
    assert "frontend_url" not in state


async def test_opening_a_lobby_to_guests_needs_the_guests_level(fast: FastBridge) -> None:
    await _set_access(fast, "lobby")
    # Bob may change settings (50) but not open the room to guests (100, the default).
    fast.matrix.set_level(ROOM, BOB, 50)
    await _set_access(fast, "guests", sender=BOB)
    content = await fast.matrix.state_content(ROOM, ROOM_CONFIG_EVENT)
    assert content is not None and content.get("access") == "lobby"


async def test_reloading_the_waiting_page_does_not_knock_twice(fast: FastBridge) -> None:
    _, first = await _guest_knocks(fast)
    match = SLUG.search(fast.notices()[0])
    assert match
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # the browser posts the form again on each reload
            async with http.post(
                f"{fast.base_url}/m/{match.group(1)}", data={"name": "Zoé"}
            ) as page:
                assert page.status == 200
                assert f'"id": "{first}"' in await page.text()
    await fast.settle()
    assert len([s for s in fast.matrix.in_room(ROOM, "notice") if "Zoé" in s.body]) == 1
