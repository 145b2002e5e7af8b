"""Chat mirrored both ways between the Matrix room and the call, on real Synapse and livekit-server.

People in the call are synthetic participants (`call_people.CallPerson`) on real WebRTC: they see
the room's messages as LiveKit's apps do, and type with either of LiveKit's chat protocols.
"""

from __future__ import annotations

from typing import Any

import nio
import pytest
from call_people import CallPerson, HeardChat
from harness import BOT, Human, Stack
from live_calls import (
    bridge_in_call,
    join_as_guest,
    join_as_member,
    room_texts,
    start_meeting,
    wait_room_text,
    wait_room_texts,
    wait_status,
    wait_until,
)

from bridge.chat.messages import BRIDGE_IDENTITY
from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytestmark = pytest.mark.synapse


async def _live(stack: Stack, **settings: Any) -> tuple[Human, str, str]:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    if settings:
        await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, settings)
    _, slug = await start_meeting(alice, room)
    return alice, room, slug


def _replies_to(event: dict[str, Any], event_id: str) -> bool:
    relation = event["content"].get("m.relates_to", {})
    return bool(relation.get("m.in_reply_to", {}).get("event_id") == event_id)


def _from_the_room(line: HeardChat) -> bool:
    """What the bridge relays from the room: legacy packets sent by the server (SendData)."""
    return line.protocol == "legacy" and line.sender == ""


async def _known_to_the_bridge(stack: Stack, alice: Human, room: str, person: CallPerson) -> None:
    """Wait until the bridge has been told who `person` is (LiveKit announces people who
    publish nothing a few seconds late), by a first message that comes out under their name."""
    await person.say("bonjour")
    ghost = stack.running.chat.ghost_for(person.identity)
    await wait_room_text(alice, room, lambda e: e["sender"] == ghost)


async def test_room_messages_reach_the_call_with_edits_and_deletions(live_stack: Stack) -> None:
    alice, room, slug = await _live(live_stack)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    first = await alice.send(room, "bonjour à tous, voir https://exemple.fr")
    line = await zoe.wait_heard(lambda h: h.id == first)
    assert (
        _from_the_room(line) and line.text == "Alice\u00a0: bonjour à tous, voir https://exemple.fr"
    )
    await alice.send(
        room,
        "* bonjour à toutes",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "bonjour à toutes"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    await zoe.wait_heard(lambda h: h.id == first and h.text == "Alice\u00a0: bonjour à toutes")
    await alice.client.room_redact(room, first)
    await zoe.wait_heard(lambda h: h.id == first and h.text == "(message supprimé)")
    # An emote, and a reply whose quoted fallback is dropped.
    await alice.client.room_send(room, "m.room.message", {"msgtype": "m.emote", "body": "salue"})
    await alice.send(
        room,
        "> <@bob:localhost> question ?\n\nréponse",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": first}}},
    )
    await zoe.wait_heard(lambda h: h.text == "Alice\u00a0: réponse")
    texts = [h.text for h in zoe.heard if _from_the_room(h)]
    assert texts[-2:] == ["* Alice salue", "Alice\u00a0: réponse"]


async def test_commands_and_the_bots_own_messages_stay_out_of_the_call(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(alice, room)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    # The bot's own messages in the room: the status edit for Zoé, the answer to a command.
    await wait_status(alice, room, status["event_id"], "Zoé")
    command = await alice.send(room, "!visio status")
    await alice.wait_for(room, lambda e: _replies_to(e, command))
    # Then a message that is mirrored: the room's events reach the call in their order, so
    # once it is heard, any of those mirrored would have been heard before it.
    await alice.send(room, "fin du test")
    await zoe.wait_heard(lambda h: h.text == "Alice\u00a0: fin du test")
    assert [h.text for h in zoe.heard] == ["Alice\u00a0: fin du test"]


async def test_call_messages_reach_the_room_from_members_and_guests_in_both_protocols(
    live_stack: Stack,
) -> None:
    alice, room, slug = await _live(live_stack)
    alice_call = await join_as_member(live_stack, alice, slug)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await bridge_in_call(zoe)
    # A member typing in the call (camera and microphone off, so not yet announced by the
    # server): relayed by the bot under their name, with a pill.
    await alice_call.say("je vous entends")
    relayed = await wait_room_text(alice, room, lambda e: "je vous entends" in e["content"]["body"])
    assert relayed["sender"] == BOT
    assert relayed["content"]["body"] == "Alice\u00a0: je vous entends"
    assert f'href="https://matrix.to/#/{alice.user_id}"' in relayed["content"]["formatted_body"]
    # A guest on a current app (text stream): through their ghost user, named as in the call.
    await zoe.say("coucou")
    ghost = live_stack.running.chat.ghost_for(zoe.identity)
    guest = await wait_room_text(alice, room, lambda e: e["content"]["body"] == "coucou")
    assert guest["sender"] == ghost
    profile = await alice.client.get_displayname(ghost)
    assert isinstance(profile, nio.ProfileGetDisplayNameResponse)
    assert profile.displayname == "Zoé (personne invitée)"
    # The same guest on an older app (legacy packet), then an edit of it: the same Matrix event.
    message_id = await zoe.say_legacy("ancien")
    legacy = await wait_room_text(alice, room, lambda e: e["content"]["body"] == "ancien")
    assert legacy["sender"] == ghost
    await zoe.say_legacy("ancien !", message_id)
    edit = await wait_room_text(
        alice, room, lambda e: e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    )
    assert edit["sender"] == ghost
    assert edit["content"]["m.relates_to"]["event_id"] == legacy["event_id"]
    assert edit["content"]["m.new_content"]["body"] == "ancien !"
    # The same message delivered again (an app resending after a reconnect) is posted once.
    await zoe.say_legacy("ancien !", message_id)
    await zoe.say("fin")
    await wait_room_text(alice, room, lambda e: e["content"]["body"] == "fin")
    assert len([e for e in await room_texts(alice, room) if e["sender"] == ghost]) == 4
    # Nothing the bridge posted in the room came back into the call.
    assert [h for h in zoe.heard if _from_the_room(h) or h.sender == BRIDGE_IDENTITY] == []


async def test_chat_mirror_off_is_honoured(live_stack: Stack) -> None:
    alice, room, slug = await _live(live_stack, chat_mirror=False)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await alice.send(room, "pas pour la visio")
    await zoe.say("pas pour le salon")
    assert BRIDGE_IDENTITY not in zoe.others()
    # The mirror turned on, then one message each way that it carries: each way keeps its
    # order, so once they arrive, the two above would have arrived before them.
    await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"chat_mirror": True})
    await bridge_in_call(zoe)
    await alice.send(room, "pour la visio")
    await zoe.wait_heard(lambda h: h.text == "Alice\u00a0: pour la visio")
    await zoe.say("pour le salon")
    await wait_room_text(alice, room, lambda e: e["content"]["body"] == "pour le salon")
    assert [h.text for h in zoe.heard] == ["Alice\u00a0: pour la visio"]
    assert [e["content"]["body"] for e in await room_texts(alice, room)] == [
        "!visio",
        "pas pour la visio",
        "pour la visio",
        "pour le salon",
    ]


async def test_the_bridge_leaves_the_call_when_the_mirror_is_turned_off(live_stack: Stack) -> None:
    alice, room, slug = await _live(live_stack)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await bridge_in_call(zoe)
    # A room admin turns the mirror off during the call (the state event, as Element's devtools).
    await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"chat_mirror": False})
    await wait_until(lambda: BRIDGE_IDENTITY not in zoe.others(), "the bridge left the call")


async def test_a_restart_in_a_burst_loses_and_doubles_nothing(live_stack: Stack) -> None:
    alice, room, slug = await _live(live_stack)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await bridge_in_call(zoe)
    await _known_to_the_bridge(live_stack, alice, room, zoe)
    # 50 from the call and 50 from the room, with the bridge restarted in the middle: the call's
    # messages are read before it stops and after it is back; the room's wait in Synapse.
    for n in range(25):
        await zoe.say_legacy(f"appel {n:02d}", f"c{n:02d}")
    sent = [await alice.send(room, f"salon {n:02d}") for n in range(25)]
    ghost = live_stack.running.chat.ghost_for(zoe.identity)
    await wait_room_texts(alice, room, lambda e: e["sender"] == ghost, count=26)
    await live_stack.stop_bridge()
    await wait_until(lambda: BRIDGE_IDENTITY not in zoe.others(), "the bridge left with it")
    sent += [await alice.send(room, f"salon {n:02d}") for n in range(25, 50)]
    await live_stack.start_bridge()
    await wait_until(lambda: BRIDGE_IDENTITY in zoe.others(), "the bridge came back", timeout=30)
    for n in range(25, 50):
        await zoe.say(f"appel {n:02d}")
    await wait_room_texts(alice, room, lambda e: e["sender"] == ghost, count=51)
    await zoe.wait_heard(lambda h: h.id == sent[-1], timeout=30)
    # One more each way: each way keeps its order, so once these arrive, a doubled message
    # would have arrived before them.
    last = await alice.send(room, "salon fin")
    await zoe.say("appel fin")
    await zoe.wait_heard(lambda h: h.id == last)
    await wait_room_text(alice, room, lambda e: e["content"]["body"] == "appel fin")
    posted = [e["content"]["body"] for e in await room_texts(alice, room) if e["sender"] == ghost]
    assert posted == ["bonjour"] + [f"appel {n:02d}" for n in range(50)] + ["appel fin"]
    from_room = [h for h in zoe.heard if _from_the_room(h)]
    assert list(dict.fromkeys(h.id for h in from_room)) == [*sent, last]
    texts = {h.id: h.text for h in from_room}
    expected = [f"Alice\u00a0: salon {n:02d}" for n in range(50)]
    assert [texts[event_id] for event_id in sent] == expected
