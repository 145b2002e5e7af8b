"""Inside a call on the real livekit-server: the tokens the bridge mints, and its own participant.

Synthetic people (`call_people.CallPerson`, the livekit rtc SDK over real WebRTC on loopback)
join with the tokens the bridge mints: a guest through the join page, a member through
`POST /api/token` with an OpenID token from Synapse. The chat itself is in `test_chat_e2e.py`.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from call_people import CallPerson
from harness import Stack
from live_calls import (
    bridge_in_call,
    guest_token,
    join_as_guest,
    join_as_member,
    member_token,
    server_rooms,
    start_meeting,
    status_edits,
    wait_room_text,
    wait_status,
    wait_until,
)
from livekit import api

from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytestmark = pytest.mark.synapse


async def room_service(stack: Stack, method: str, token: str, body: dict[str, object]) -> int:
    """Call the server's RoomService as a participant would, with their own token."""
    url = f"{stack.livekit.url}/twirp/livekit.RoomService/{method}"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status


async def server_view(stack: Stack, room: str) -> tuple[api.Room, list[api.ParticipantInfo]]:
    lk = api.LiveKitAPI(stack.livekit.url, stack.livekit.api_key, stack.livekit.api_secret)
    async with lk:
        [info] = (await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
        people = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return info, list(people.participants)


async def test_tokens_the_bridge_mints_are_accepted_with_the_names_the_room_sees(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice Martin")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(alice, room)
    alice_call = await join_as_member(live_stack, alice, slug)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await wait_until(lambda: zoe.identity in alice_call.others(), "Alice sees Zoé")
    # The names people see in the call are the ones the room sees in the status message.
    zoe_name = alice_call.others()[zoe.identity]
    alice_name = zoe.others()[alice.user_id]
    assert (alice_name, zoe_name) == ("Alice Martin", "Zoé (personne invitée)")
    shown = await wait_status(alice, room, status["event_id"], "2 personnes")
    assert alice_name in shown and zoe_name in shown
    assert zoe.identity.startswith("guest-") and alice_call.identity == alice.user_id


async def test_a_moderator_can_mute_and_remove_someone_a_guest_cannot(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")  # the room's creator: a moderator
    room = await live_stack.room_with_bot(alice)
    _, slug = await start_meeting(alice, room)
    lk_room = f"visio-{slug}"
    alice_token = await member_token(live_stack, alice, slug)
    alice_call = await CallPerson().join(live_stack.settings.livekit.url, alice_token)
    zoe_token = await guest_token(live_stack, slug, "Zoé")
    zoe = await CallPerson().join(live_stack.settings.livekit.url, zoe_token)
    speaking = asyncio.create_task(zoe.speak("Bonjour à tous.", live_stack.workdir))
    await wait_until(lambda: bool(zoe.room.local_participant.track_publications), "Zoé's mic")
    [zoe_mic] = list(zoe.room.local_participant.track_publications)
    # The guest's token grants nothing over anyone, her own microphone included.
    mute_zoe = {"room": lk_room, "identity": zoe.identity, "track_sid": zoe_mic, "muted": True}
    remove_alice = {"room": lk_room, "identity": alice.user_id}
    assert await room_service(live_stack, "MutePublishedTrack", zoe_token, mute_zoe) in (401, 403)
    assert await room_service(live_stack, "RemoveParticipant", zoe_token, remove_alice) in (
        401,
        403,
    )
    await asyncio.sleep(0.3)
    assert alice_call.connected
    # The moderator's token (roomAdmin for this room) mutes Zoé's microphone, then removes her.
    assert await room_service(live_stack, "MutePublishedTrack", alice_token, mute_zoe) == 200
    _, people = await server_view(live_stack, lk_room)
    [zoe_info] = [p for p in people if p.identity == zoe.identity]
    assert [track.muted for track in zoe_info.tracks] == [True]
    remove_zoe = {"room": lk_room, "identity": zoe.identity}
    assert await room_service(live_stack, "RemoveParticipant", alice_token, remove_zoe) == 200
    await wait_until(lambda: not zoe.connected, "Zoé was disconnected")
    assert alice_call.connected
    speaking.cancel()


async def test_visio_end_disconnects_everyone(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(alice, room)
    people = [await join_as_guest(live_stack, slug, name) for name in ("Zoé", "Yann")]
    people.append(await join_as_member(live_stack, alice, slug))
    await alice.send(room, "!visio end")
    for person in people:
        await wait_until(lambda person=person: not person.connected, "everyone was disconnected")
    await wait_status(alice, room, status["event_id"], "Visio terminée par Alice")
    assert await server_rooms(live_stack) == []


async def test_the_bridge_participant_comes_back_after_livekit_crashes_and_restarts(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"max_participants": 5})
    status, slug = await start_meeting(alice, room)
    lk_room = f"visio-{slug}"
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    await bridge_in_call(zoe)
    await wait_status(alice, room, status["event_id"], "Zoé")
    await zoe.leave()

    async def zoe_shown() -> bool:
        return "Zoé" in status_edits(await alice.bot_notices(room), status["event_id"])[-1]

    # Her departure is known before the crash (a webhook still queued in a killed server is
    # lost, and only the next reconcile would repair the list).
    for _ in range(100):
        if not await zoe_shown():
            break
        await asyncio.sleep(0.1)
    assert not await zoe_shown()
    server = live_stack.real_livekit
    assert server is not None
    # The server dies and comes back empty (no Redis: it has forgotten every room).
    await server.crash()
    await server.start()
    # The meeting goes on: the bridge makes its room again, with its cap, and rejoins; the
    # same link works.
    for _ in range(600):
        if await server_rooms(live_stack) == [lk_room]:
            break
        await asyncio.sleep(0.1)
    assert await server_rooms(live_stack) == [lk_room], "the room was not made again in 60 s"
    info, _ = await server_view(live_stack, lk_room)
    assert info.max_participants == 5
    yann = await join_as_guest(live_stack, slug, "Yann")
    await bridge_in_call(yann)
    await yann.say("toujours là ?")
    await wait_room_text(alice, room, lambda e: e["content"]["body"] == "toujours là ?")
    shown = await wait_status(alice, room, status["event_id"], "1 personne\u00a0:")
    assert "Yann" in shown
