"""Room settings against real Synapse: the state event as it stores and sends it, its power levels.

The behaviour (answers, refusals, operator limits, widgets) is tested on the fast tier, in
`test_room_settings.py`; what stays here needs a real homeserver: its power-level check and the
bot's own writes (refused, then stored and sent back to the bridge, which applies them).
"""

from __future__ import annotations

import asyncio
from typing import Any

import nio
import pytest
from harness import BOT, Human, Stack

from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytestmark = pytest.mark.synapse


async def _put_settings(human: Human, room: str, content: Any) -> str:
    response = await human.client.room_put_state(room, ROOM_CONFIG_EVENT, content)
    assert isinstance(response, nio.RoomPutStateResponse), response
    return str(response.event_id)


async def _settings_in_room(human: Human, room: str) -> dict[str, Any]:
    response = await human.client.room_get_state_event(room, ROOM_CONFIG_EVENT)
    assert isinstance(response, nio.RoomGetStateEventResponse), response
    return dict(response.content)


async def _set_power(
    human: Human, room: str, users: dict[str, int], events: dict[str, int]
) -> None:
    current = await human.client.room_get_state_event(room, "m.room.power_levels")
    assert isinstance(current, nio.RoomGetStateEventResponse)
    content = dict(current.content)
    content["users"] = {**content.get("users", {}), **users}
    content["events"] = {**content.get("events", {}), **events}
    response = await human.client.room_put_state(room, "m.room.power_levels", content)
    assert isinstance(response, nio.RoomPutStateResponse), response


async def _reactions(human: Human, room: str, event_id: str) -> list[str]:
    return [
        event["content"]["m.relates_to"]["key"]
        for event in await human.history(room)
        if event.get("type") == "m.reaction"
        and event.get("sender") == BOT
        and event["content"].get("m.relates_to", {}).get("event_id") == event_id
    ]


async def _wait_reaction(human: Human, room: str, event_id: str, key: str) -> None:
    for _ in range(100):
        if key in await _reactions(human, room, event_id):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {key} on {event_id}: {await _reactions(human, room, event_id)}")


async def _room_with_member(stack: Stack) -> tuple[Human, Human, str]:
    admin = await stack.human("admin", "Anne")
    bob = await stack.human("bob", "Bob")
    room = await stack.room_with_bot(admin)
    await admin.client.room_invite(room, bob.user_id)
    await bob.client.join(room)
    return admin, bob, room


async def test_an_under_privileged_change_is_rolled_back(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    # The homeserver lets anyone write the event; the bridge still asks for level 50.
    await _set_power(admin, room, users={}, events={ROOM_CONFIG_EVENT: 0})
    good = await _put_settings(admin, room, {"language": "fr", "start_power_level": 0})
    await _wait_reaction(admin, room, good, "✅")
    change = await _put_settings(bob, room, {"enabled": False})
    await _wait_reaction(admin, room, change, "⛔")
    [notice] = await admin.wait_for(room, lambda e: "le niveau de Bob est" in e["content"]["body"])
    assert "les modérateurs (niveau 50)" in notice["content"]["body"]
    for _ in range(50):
        if await _settings_in_room(admin, room) != {"enabled": False}:
            break
        await asyncio.sleep(0.1)
    # Back to the last good config.
    assert await _settings_in_room(admin, room) == {"enabled": True, "language": "fr"}
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: "Visio démarrée par Bob" in e["content"]["body"])


async def test_config_command_round_trip_and_language_switch(stack: Stack) -> None:
    """The bot's write is refused by Synapse, then stored, sent back to the bridge and applied."""
    admin, bob, room = await _room_with_member(stack)
    # The bot has power level 0: it says what it needs.
    await admin.send(room, "!visio config language en")
    await admin.wait_for(
        room, lambda e: "Je dois être modérateur (niveau 50)" in e["content"]["body"]
    )
    await _set_power(admin, room, users={BOT: 50}, events={})
    await admin.send(room, "!visio config language en")
    await admin.wait_for(room, lambda e: e["content"]["body"] == "Setting “language” saved.")
    for _ in range(50):
        if (await _settings_in_room(admin, room)).get("language") == "en":
            break
        await asyncio.sleep(0.1)
    assert await _settings_in_room(admin, room) == {"enabled": True, "language": "en"}
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: e["content"]["body"].startswith("Video call started by Bob"))
