"""Chat mirrored both ways between the Matrix room and the call, on real Synapse."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import nio
import pytest
from harness import BOT, Human, Stack

from appservice.app import CHAT
from bridge.room_config import ROOM_CONFIG_EVENT

pytestmark = pytest.mark.synapse


async def _live(stack: Stack, **settings: Any) -> tuple[Human, str, str]:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    if settings:
        await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, settings)
    await alice.send(room, "!visio")
    [status] = await alice.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
    assert slug
    return alice, room, f"visio-{slug.group(1)}"


def _packets(stack: Stack) -> list[dict[str, Any]]:
    return [
        json.loads(sent.payload)
        for sent in stack.livekit.sent_data
        if sent.topic == "lk-chat-topic"
    ]


async def _wait_packets(stack: Stack, count: int) -> list[dict[str, Any]]:
    for _ in range(150):
        if len(_packets(stack)) >= count:
            return _packets(stack)
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} chat packets, got {_packets(stack)}")


async def _wait_joined(stack: Stack, lk_room: str) -> None:
    for _ in range(100):
        if lk_room in stack.call_chat.joined:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the bridge's participant never joined the call")


async def _room_messages(human: Human, room: str) -> list[dict[str, Any]]:
    return [
        e
        for e in await human.history(room)
        if e.get("type") == "m.room.message" and e["content"].get("msgtype") == "m.text"
    ]


async def _wait_room(
    human: Human, room: str, predicate: Any, count: int = 1
) -> list[dict[str, Any]]:
    for _ in range(150):
        found = [e for e in await _room_messages(human, room) if predicate(e)]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"room never showed {count} such message(s)")


async def test_room_messages_reach_the_call_with_edits_and_deletions(stack: Stack) -> None:
    alice, room, lk_room = await _live(stack)
    first = await alice.send(room, "bonjour à tous, voir https://exemple.fr")
    [packet] = await _wait_packets(stack, 1)
    assert packet["id"] == first
    assert packet["message"] == "Alice : bonjour à tous, voir https://exemple.fr"
    assert stack.livekit.sent_data[-1].room == lk_room
    await alice.send(
        room,
        "* bonjour à toutes",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "bonjour à toutes"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    edit = (await _wait_packets(stack, 2))[1]
    assert (edit["id"], edit["message"]) == (first, "Alice : bonjour à toutes")
    await alice.client.room_redact(room, first)
    deletion = (await _wait_packets(stack, 3))[2]
    assert (deletion["id"], deletion["message"]) == (first, "(message supprimé)")
    # An emote, and a reply whose quoted fallback is dropped.
    await alice.client.room_send(room, "m.room.message", {"msgtype": "m.emote", "body": "salue"})
    await alice.send(
        room,
        "> <@bob:localhost> question ?\n\nréponse",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": first}}},
    )
    packets = await _wait_packets(stack, 5)
    assert [p["message"] for p in packets[3:]] == ["* Alice salue", "Alice : réponse"]


async def test_commands_and_the_bots_own_messages_stay_out_of_the_call(stack: Stack) -> None:
    alice, room, _ = await _live(stack)
    await alice.send(room, "!visio status")
    await alice.wait_for(room, lambda e: "Visio en cours" in e["content"]["body"])
    await alice.send(room, "fin du test")
    packets = await _wait_packets(stack, 1)
    await asyncio.sleep(0.5)
    assert (
        [p["message"] for p in _packets(stack)]
        == ["Alice : fin du test"]
        == [p["message"] for p in packets]
    )


async def test_call_messages_reach_the_room_from_members_and_guests(stack: Stack) -> None:
    alice, room, lk_room = await _live(stack)
    await _wait_joined(stack, lk_room)
    assert stack.call_chat.identities[lk_room] == "visio-bridge"
    await stack.call_chat.say(lk_room, alice.user_id, "Alice", "je vous entends")
    [relayed] = await _wait_room(alice, room, lambda e: "je vous entends" in e["content"]["body"])
    assert relayed["sender"] == BOT
    assert relayed["content"]["body"] == "Alice : je vous entends"
    assert f'href="https://matrix.to/#/{alice.user_id}"' in relayed["content"]["formatted_body"]
    message_id = await stack.call_chat.say(lk_room, "guest-77", "Zoé (invité)", "coucou")
    [guest] = await _wait_room(alice, room, lambda e: e["content"]["body"] == "coucou")
    ghost = stack.app[CHAT].ghost_for("guest-77")
    assert guest["sender"] == ghost and ghost.startswith("@visio_")
    profile = await alice.client.get_displayname(ghost)
    assert isinstance(profile, nio.ProfileGetDisplayNameResponse)
    assert profile.displayname == "Zoé (invité)"
    # An edit in the call edits the same Matrix event.
    await stack.call_chat.say(lk_room, "guest-77", "Zoé (invité)", "coucou !", message_id)
    [edit] = await _wait_room(
        alice, room, lambda e: e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    )
    assert edit["sender"] == ghost
    assert edit["content"]["m.relates_to"]["event_id"] == guest["event_id"]
    assert edit["content"]["m.new_content"]["body"] == "coucou !"
    # Nothing echoes back into the call.
    await asyncio.sleep(0.5)
    assert _packets(stack) == []
    # The same message delivered twice (a reconnect) is posted once.
    await stack.call_chat.say(lk_room, "guest-77", "Zoé (invité)", "coucou !", message_id)
    await asyncio.sleep(0.5)
    assert len(await _wait_room(alice, room, lambda e: e["sender"] == ghost)) == 2


async def test_chat_mirror_off_is_honoured(stack: Stack) -> None:
    alice, room, lk_room = await _live(stack, chat_mirror=False)
    await alice.send(room, "pas pour la visio")
    await asyncio.sleep(1.0)
    assert _packets(stack) == []
    assert lk_room not in stack.call_chat.joined


async def test_the_participant_leaves_when_the_call_ends(stack: Stack) -> None:
    alice, room, lk_room = await _live(stack)
    await _wait_joined(stack, lk_room)
    await alice.send(room, "!visio end")
    for _ in range(100):
        if lk_room in stack.call_chat.left:
            break
        await asyncio.sleep(0.05)
    assert lk_room in stack.call_chat.left and lk_room not in stack.call_chat.joined


async def test_a_restart_in_a_burst_loses_and_doubles_nothing(stack: Stack) -> None:
    alice, room, lk_room = await _live(stack)
    await _wait_joined(stack, lk_room)
    # 50 from the call and 50 from the room, with the bridge restarted in the middle.
    for n in range(25):
        await stack.call_chat.say(lk_room, "guest-1", "Zoé", f"appel {n:02d}", f"c{n:02d}")
    sent = [await alice.send(room, f"salon {n:02d}") for n in range(25)]
    await stack.stop_bridge()
    sent += [await alice.send(room, f"salon {n:02d}") for n in range(25, 50)]
    await stack.start_bridge()
    await _wait_joined(stack, lk_room)
    for n in range(25, 50):
        await stack.call_chat.say(lk_room, "guest-1", "Zoé", f"appel {n:02d}", f"c{n:02d}")
    ghost = stack.app[CHAT].ghost_for("guest-1")
    posted = await _wait_room(alice, room, lambda e: e["sender"] == ghost, count=50)
    await asyncio.sleep(1.0)
    posted = [e for e in await _room_messages(alice, room) if e["sender"] == ghost]
    assert [e["content"]["body"] for e in posted] == [f"appel {n:02d}" for n in range(50)]
    packets = await _wait_packets(stack, 50)
    first_seen = list(dict.fromkeys(p["id"] for p in packets))
    assert first_seen == sent
    texts = {p["id"]: p["message"] for p in packets}
    assert [texts[event_id] for event_id in sent] == [f"Alice : salon {n:02d}" for n in range(50)]
