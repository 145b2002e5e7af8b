"""Room settings through the state event, against real Synapse: obeyed, refused, rolled back."""

from __future__ import annotations

import asyncio
from typing import Any

import nio
import pytest
from harness import BOT, Human, Stack

from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.widgets import WIDGET_EVENT, WIDGET_ID

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


async def test_disabled_room_answers_that_visio_is_off(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    event_id = await _put_settings(admin, room, {"enabled": False})
    await _wait_reaction(admin, room, event_id, "✅")
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: "désactivée dans ce salon" in e["content"]["body"])
    assert stack.livekit.calls("CreateRoom") == []
    # Empty content also means off; then turning it back on works.
    await _put_settings(admin, room, {})
    event_id = await _put_settings(admin, room, {"enabled": True})
    await _wait_reaction(admin, room, event_id, "✅")
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: "Visio démarrée par Bob" in e["content"]["body"])


async def test_start_power_level_refuses_plain_members_with_the_reason(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    event_id = await _put_settings(admin, room, {"start_power_level": 50})
    await _wait_reaction(admin, room, event_id, "✅")
    await bob.send(room, "!visio")
    [refusal] = await bob.wait_for(
        room, lambda e: "pour démarrer une visio dans" in e["content"]["body"]
    )
    assert (
        "au moins 50" in refusal["content"]["body"] and "le vôtre : 0" in refusal["content"]["body"]
    )
    await admin.send(room, "!visio")
    await admin.wait_for(room, lambda e: "Visio démarrée par Anne" in e["content"]["body"])


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"language": "de"}, "language"),
        ({"start_power_level": "cinquante"}, "start_power_level"),
        ({"max_participants": 10**12}, "max_participants"),
        ({"couleur": "bleu"}, "couleur"),
        ({"access": {"nested": ["x"]}}, "access"),
    ],
)
async def test_malformed_settings_keep_the_old_config_and_say_why(
    stack: Stack, content: dict[str, Any], field: str
) -> None:
    admin, bob, room = await _room_with_member(stack)
    good = await _put_settings(admin, room, {"language": "en"})
    await _wait_reaction(admin, room, good, "✅")
    bad = await _put_settings(admin, room, content)
    await _wait_reaction(admin, room, bad, "⛔")
    [answer] = await admin.wait_for(
        room, lambda e: "Visio settings refused" in e["content"]["body"]
    )
    assert f"“{field}”" in answer["content"]["body"]  # in English: the last good language
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: "Video call started by Bob" in e["content"]["body"])


async def test_non_object_content_is_refused(stack: Stack) -> None:
    admin, _, room = await _room_with_member(stack)
    # Synapse accepts only objects as content; the closest hostile case is an object of junk.
    bad = await _put_settings(admin, room, {"enabled": [None, {"x": 1}]})
    await _wait_reaction(admin, room, bad, "⛔")
    await admin.wait_for(room, lambda e: "« enabled »" in e["content"]["body"])


async def test_an_under_privileged_change_is_rolled_back(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    # The homeserver lets anyone write the event; the bridge still asks for level 50.
    await _set_power(admin, room, users={}, events={ROOM_CONFIG_EVENT: 0})
    good = await _put_settings(admin, room, {"language": "fr", "start_power_level": 0})
    await _wait_reaction(admin, room, good, "✅")
    change = await _put_settings(bob, room, {"enabled": False})
    await _wait_reaction(admin, room, change, "⛔")
    [notice] = await admin.wait_for(room, lambda e: "Bob n'a pas le niveau" in e["content"]["body"])
    assert "(50)" in notice["content"]["body"]
    for _ in range(50):
        if await _settings_in_room(admin, room) != {"enabled": False}:
            break
        await asyncio.sleep(0.1)
    # Back to the last good config.
    assert await _settings_in_room(admin, room) == {"enabled": True, "language": "fr"}
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: "Visio démarrée par Bob" in e["content"]["body"])


async def test_opening_to_guests_needs_more_than_changing_settings(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    await _set_power(admin, room, users={bob.user_id: 50}, events={})
    members = await _put_settings(admin, room, {"access": "members"})
    await _wait_reaction(admin, room, members, "✅")
    opening = await _put_settings(bob, room, {"access": "guests"})
    await _wait_reaction(admin, room, opening, "⛔")
    [notice] = await admin.wait_for(room, lambda e: "Bob n'a pas le niveau" in e["content"]["body"])
    assert "(100)" in notice["content"]["body"]


async def test_config_command_round_trip_and_language_switch(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    await admin.send(room, "!visio config")
    [shown] = await admin.wait_for(
        room, lambda e: "Réglages Visio de ce salon" in e["content"]["body"]
    )
    assert "language : fr (défaut du serveur)" in shown["content"]["body"]
    # The bot has power level 0: it says what it needs.
    await admin.send(room, "!visio config language en")
    await admin.wait_for(
        room, lambda e: "niveau de pouvoir nécessaire (50)" in e["content"]["body"]
    )
    await _set_power(admin, room, users={BOT: 50}, events={})
    # A plain member may not change settings.
    await bob.send(room, "!visio config language en")
    await bob.wait_for(room, lambda e: "pour modifier ce réglage" in e["content"]["body"])
    command = await admin.send(room, "!visio config language en")
    await _wait_reaction(admin, room, command, "✅")
    for _ in range(50):
        if (await _settings_in_room(admin, room)).get("language") == "en":
            break
        await asyncio.sleep(0.1)
    assert await _settings_in_room(admin, room) == {"enabled": True, "language": "en"}
    await bob.send(room, "!visio")
    await bob.wait_for(room, lambda e: e["content"]["body"].startswith("Video call started by Bob"))
    await admin.send(room, "!visio config")
    [shown] = await admin.wait_for(
        room, lambda e: "Visio settings of this room" in e["content"]["body"]
    )
    assert "language: en\n" in shown["content"]["body"]
    # A bad value through the command: refused, nothing written.
    await admin.send(room, "!visio config access everyone")
    await admin.wait_for(room, lambda e: "“access”" in e["content"]["body"])
    assert (await _settings_in_room(admin, room)).get("access") is None


async def test_members_only_rooms_refuse_guests_on_the_join_page(stack: Stack) -> None:
    import aiohttp

    admin, _, room = await _room_with_member(stack)
    event_id = await _put_settings(admin, room, {"access": "members"})
    await _wait_reaction(admin, room, event_id, "✅")
    await admin.send(room, "!visio")
    [status] = await admin.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    link = status["content"]["body"].split("rejoindre : ")[1]
    slug = link.rsplit("/", 1)[1]
    page = f"{stack.settings.appservice.address}/m/{slug}"
    async with aiohttp.ClientSession() as session:
        async with session.post(page, data={"name": "Intrus"}, allow_redirects=False) as response:
            assert response.status == 403
            assert "réservée aux membres" in await response.text()


async def test_settings_survive_a_restart(stack: Stack) -> None:
    admin, bob, room = await _room_with_member(stack)
    event_id = await _put_settings(admin, room, {"language": "en", "start_power_level": 50})
    await _wait_reaction(admin, room, event_id, "✅")
    await stack.stop_bridge()
    await stack.start_bridge()
    await bob.send(room, "!visio")
    await bob.wait_for(
        room, lambda e: "Starting a video call in this room needs" in e["content"]["body"]
    )


async def test_settings_changed_during_a_call_apply_to_it_at_once(stack: Stack) -> None:
    """Turning the widget on while a call runs shows it now, not at the next join or leave."""
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    levels = await alice.client.room_get_state_event(room, "m.room.power_levels")
    assert isinstance(levels, nio.RoomGetStateEventResponse)
    await alice.client.room_put_state(
        room,
        "m.room.power_levels",
        {**levels.content, "users": {**levels.content["users"], BOT: 50}},
    )
    await alice.send(room, "!visio")
    await alice.wait_for(room, lambda e: "Visio démarrée par" in e["content"]["body"])

    async def widget() -> dict[str, Any]:
        response = await alice.client.room_get_state_event(room, WIDGET_EVENT, WIDGET_ID)
        return dict(response.content) if isinstance(response, nio.RoomGetStateEventResponse) else {}

    assert await widget() == {}
    for wanted, present in (("on", True), ("off", False)):
        await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"widget": wanted})
        for _ in range(100):
            if bool(await widget()) is present:
                break
            await asyncio.sleep(0.1)
        assert bool(await widget()) is present, f"widget {wanted} not applied during the call"
