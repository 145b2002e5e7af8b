"""Inside a call on the real livekit-server: the bridge's tokens, its participant, and the chat.

Synthetic people (`call_people.CallPerson`, the livekit rtc SDK over real WebRTC on loopback)
join with the tokens the bridge mints: a guest through the join page, a member through
`POST /api/token` with an OpenID token from Synapse.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import nio
import pytest
from call_people import CallPerson
from harness import BOT, Human, Stack
from test_real_livekit_lifecycle import (
    guest_token,
    join_as_guest,
    server_rooms,
    start_meeting,
    wait_status,
)

from appservice.app import CHAT
from bridge.chat import BRIDGE_IDENTITY

pytestmark = pytest.mark.synapse


async def member_token(stack: Stack, human: Human, slug: str) -> str:
    """What the widget gets for a member: OpenID from their homeserver, then `/api/token`."""
    base = stack.synapse.base_url
    url = f"{base}/_matrix/client/v3/user/{human.user_id}/openid/request_token"
    headers = {"Authorization": f"Bearer {human.client.access_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={}, headers=headers) as response:
            openid = await response.json()
        body = {"slug": slug, "user_id": human.user_id, "openid_token": openid}
        async with session.post(
            f"{stack.settings.appservice.address}/api/token", json=body
        ) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])


async def join_as_member(stack: Stack, human: Human, slug: str) -> CallPerson:
    token = await member_token(stack, human, slug)
    return await CallPerson().join(stack.settings.livekit.url, token)


async def room_service(stack: Stack, method: str, token: str, body: dict[str, Any]) -> int:
    """Call the server's RoomService as a participant would, with their own token."""
    url = f"{stack.livekit.url}/twirp/livekit.RoomService/{method}"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status


async def wait_until(condition: Any, what: str, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def bridge_in_call(person: CallPerson) -> None:
    await wait_until(lambda: BRIDGE_IDENTITY in person.others(), "the bridge joined the call")


async def room_texts(human: Human, room: str) -> list[dict[str, Any]]:
    return [
        e
        for e in await human.history(room)
        if e.get("type") == "m.room.message" and e["content"].get("msgtype") == "m.text"
    ]


async def wait_room_text(human: Human, room: str, predicate: Any) -> dict[str, Any]:
    for _ in range(200):
        for event in await room_texts(human, room):
            if predicate(event):
                return event
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"the room never showed it: {[e['content'] for e in await room_texts(human, room)]}"
    )


# ---- tokens ----------------------------------------------------------------------------------


async def test_tokens_the_bridge_mints_are_accepted_with_the_names_the_room_sees(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice Martin")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(live_stack, alice, room)
    alice_call = await join_as_member(live_stack, alice, slug)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await wait_until(lambda: zoe.identity in alice_call.others(), "Alice sees Zoé")
    # The names people see in the call are the ones the room sees in the status message.
    zoe_name = alice_call.others()[zoe.identity]
    alice_name = zoe.others()[alice.user_id]
    assert (alice_name, zoe_name) == ("Alice Martin", "Zoé (invité)")
    shown = await wait_status(alice, room, status["event_id"], "2 participants")
    assert alice_name in shown and zoe_name in shown
    assert zoe.identity.startswith("guest-") and alice_call.identity == alice.user_id


async def test_a_moderator_can_mute_and_remove_a_guest_cannot(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")  # the room's creator: a moderator
    room = await live_stack.room_with_bot(alice)
    _, slug = await start_meeting(live_stack, alice, room)
    alice_token = await member_token(live_stack, alice, slug)
    alice_call = await CallPerson().join(live_stack.settings.livekit.url, alice_token)
    zoe_token = await guest_token(live_stack, slug, "Zoé")
    zoe = await CallPerson().join(live_stack.settings.livekit.url, zoe_token)
    lk_room = f"visio-{slug}"
    speaking = asyncio.create_task(alice_call.speak("Bonjour à tous.", live_stack.workdir))
    await wait_until(lambda: alice_call.room.local_participant.track_publications, "Alice's mic")
    [track_sid] = list(alice_call.room.local_participant.track_publications)
    mute = {"room": lk_room, "identity": alice.user_id, "track_sid": track_sid, "muted": True}
    remove_alice = {"room": lk_room, "identity": alice.user_id}
    # The guest's token grants nothing over others.
    assert await room_service(live_stack, "MutePublishedTrack", zoe_token, mute) in (401, 403)
    assert await room_service(live_stack, "RemoveParticipant", zoe_token, remove_alice) in (
        401,
        403,
    )
    assert alice_call.connected
    # The moderator's token (roomAdmin for this room) mutes and removes.
    mute_zoe_target = {**mute, "muted": True}
    assert await room_service(live_stack, "MutePublishedTrack", alice_token, mute_zoe_target) == 200
    remove_zoe = {"room": lk_room, "identity": zoe.identity}
    assert await room_service(live_stack, "RemoveParticipant", alice_token, remove_zoe) == 200
    await wait_until(lambda: not zoe.connected, "Zoé was disconnected")
    await speaking


async def test_visio_end_disconnects_everyone(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(live_stack, alice, room)
    people = [await join_as_guest(live_stack, slug, name) for name in ("Zoé", "Yann")]
    people.append(await join_as_member(live_stack, alice, slug))
    await alice.send(room, "!visio end")
    for person in people:
        await wait_until(lambda person=person: not person.connected, "everyone was disconnected")
    await wait_status(alice, room, status["event_id"], "Visio terminée par Alice")
    assert await server_rooms(live_stack) == []


# ---- chat ------------------------------------------------------------------------------------


async def test_room_chat_reaches_people_in_the_call_with_edits_and_deletions(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    _, slug = await start_meeting(live_stack, alice, room)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    first = await alice.send(room, "bonjour à tous")
    line = await zoe.wait_heard(lambda h: h.id == first)
    assert (line.protocol, line.text) == ("legacy", "Alice : bonjour à tous")
    await alice.send(
        room,
        "* bonjour à toutes",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "bonjour à toutes"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    await zoe.wait_heard(lambda h: h.id == first and h.text == "Alice : bonjour à toutes")
    await alice.client.room_redact(room, first)
    await zoe.wait_heard(lambda h: h.id == first and h.text == "(message supprimé)")


async def test_call_chat_reaches_the_room_from_a_member_and_a_guest_in_both_protocols(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    _, slug = await start_meeting(live_stack, alice, room)
    alice_call = await join_as_member(live_stack, alice, slug)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await bridge_in_call(zoe)
    # A member typing in the call: relayed by the bot, with a pill naming them.
    await alice_call.say("je vous entends")
    relayed = await wait_room_text(alice, room, lambda e: "je vous entends" in e["content"]["body"])
    assert relayed["sender"] == BOT
    assert relayed["content"]["body"] == "Alice : je vous entends"
    assert f'href="https://matrix.to/#/{alice.user_id}"' in relayed["content"]["formatted_body"]
    # A guest on an older app (legacy packet), then an edit of it: through their ghost user.
    message_id = await zoe.say_legacy("coucou")
    ghost = live_stack.app[CHAT].ghost_for(zoe.identity)
    guest = await wait_room_text(alice, room, lambda e: e["content"]["body"] == "coucou")
    assert guest["sender"] == ghost
    profile = await alice.client.get_displayname(ghost)
    assert isinstance(profile, nio.ProfileGetDisplayNameResponse)
    assert profile.displayname == "Zoé (invité)"
    await zoe.say_legacy("coucou !", message_id)
    edit = await wait_room_text(
        alice, room, lambda e: e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    )
    assert edit["content"]["m.relates_to"]["event_id"] == guest["event_id"]
    assert edit["content"]["m.new_content"]["body"] == "coucou !"
    # A guest on a current app (text stream).
    await zoe.say("et en flux")
    streamed = await wait_room_text(alice, room, lambda e: e["content"]["body"] == "et en flux")
    assert streamed["sender"] == ghost
    # Nothing the bridge posted in the room came back into the call.
    await asyncio.sleep(0.5)
    assert [h for h in zoe.heard if h.sender == "" or h.sender == BRIDGE_IDENTITY] == []


async def test_the_bridge_participant_comes_back_after_livekit_crashes_and_restarts(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(live_stack, alice, room)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await bridge_in_call(zoe)
    await zoe.leave()
    server = live_stack.real_livekit
    assert server is not None
    # The server dies and comes back empty (no Redis: it has forgotten every room).
    await server.crash()
    await server.start()
    # The meeting goes on: the bridge makes its room again and rejoins; the same link works.
    for _ in range(600):
        if await server_rooms(live_stack) == [f"visio-{slug}"]:
            break
        await asyncio.sleep(0.1)
    yann = await join_as_guest(live_stack, slug, "Yann")
    await bridge_in_call(yann)
    await yann.say("toujours là ?")
    await wait_room_text(alice, room, lambda e: e["content"]["body"] == "toujours là ?")
    shown = await wait_status(alice, room, status["event_id"], "1 participant :")
    assert "Yann" in shown
