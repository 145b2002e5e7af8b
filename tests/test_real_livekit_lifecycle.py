"""Meetings on the real livekit-server: one room per `!visio`, its own webhooks drive the status.

People join with the tokens the bridge mints and connect over real WebRTC on loopback; the
status message follows what the server itself reports (`participant_joined`, `participant_left`,
`room_finished`), and the reconciler repairs what the bridge missed while it was down.
What the server cannot be made to do (forged, replayed, out-of-order or lost webhooks) is in
`test_meeting_lifecycle.py`, on the fast tier.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from call_people import CallPerson
from harness import Stack
from live_calls import guest_token, join_as_guest, server_rooms, start_meeting, wait_status

from appservice.wiring import Options

pytestmark = pytest.mark.synapse


def _is_reply_to(event: dict[str, object], event_id: str) -> bool:
    relation = event["content"].get("m.relates_to", {})  # type: ignore[attr-defined]
    return bool(relation.get("m.in_reply_to", {}).get("event_id") == event_id)


async def test_visio_makes_exactly_one_room_on_the_server_even_under_20_parallel_commands(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    # Synapse now and then makes one event of two identical parallel sends: one answer each.
    commands = set(await asyncio.gather(*(alice.send(room, "!visio") for _ in range(20))))
    answers = await alice.wait_for(
        room, lambda e: "/m/" in e["content"]["body"], count=len(commands), timeout=30
    )
    slugs = {re.search(r"/m/([a-z-]+)", a["content"]["body"]).group(1) for a in answers}  # type: ignore[union-attr]
    assert len(slugs) == 1
    assert await server_rooms(live_stack) == [f"visio-{slugs.pop()}"]


async def test_the_servers_webhooks_drive_the_status_message(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(alice, room)
    zoe = await join_as_guest(live_stack, slug, "Zoé")
    yann = await join_as_guest(live_stack, slug, "Yann")
    shown = await wait_status(alice, room, status["event_id"], "2 personnes")
    # The guests' names as the server reports them, marked as guests; the bridge's own
    # participant (an agent) is not counted.
    assert "Zoé (personne invitée), Yann (personne invitée)" in shown or (
        "Yann (personne invitée), Zoé (personne invitée)" in shown
    )
    assert "Tchap" not in shown and "rejoindre\u00a0: https://visio.test/m/" in shown
    await yann.leave()
    shown = await wait_status(alice, room, status["event_id"], "1 personne\u00a0:")
    assert "Yann" not in shown
    # The last person leaves: departure_timeout (1 s here) closes the room on the server, whose
    # room_finished ends the meeting: the status says so, and a reply notifies the room.
    await zoe.leave()
    shown = await wait_status(alice, room, status["event_id"], "Visio terminée")
    assert shown == "Visio terminée — moins d\u2019une minute, 2 personnes."
    [notice] = await alice.wait_for(room, lambda e: _is_reply_to(e, status["event_id"]))
    assert notice["content"]["body"].endswith(shown)
    assert await server_rooms(live_stack) == []
    await alice.send(room, "!visio status")
    none = "Aucune visio n\u2019est en cours"
    await alice.wait_for(room, lambda e: e["content"]["body"].startswith(none))


@pytest.mark.parametrize(
    "live_stack", [{"livekit": {"room": {"empty_timeout": 10}}}], indirect=True
)
async def test_empty_timeout_closes_a_room_nobody_joined(live_stack: Stack) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, _ = await start_meeting(alice, room)
    # The bridge's own participant is in the call, but as an agent it keeps nothing alive.
    shown = await wait_status(alice, room, status["event_id"], "Visio terminée", timeout=30)
    assert shown == "Visio terminée — moins d\u2019une minute, 0 personne."


async def test_the_reconciler_repairs_what_happened_while_the_bridge_was_down(
    live_stack: Stack,
) -> None:
    alice = await live_stack.human("alice", "Alice")
    room = await live_stack.room_with_bot(alice)
    status, slug = await start_meeting(alice, room)
    tokens = [await guest_token(live_stack, slug, name) for name in ("Zoé", "Yann")]
    await live_stack.stop_bridge()
    # While the bridge is down, two guests join: their webhooks are lost.
    zoe, yann = [await CallPerson().join(live_stack.settings.livekit.url, t) for t in tokens]
    await live_stack.start_bridge(Options(status_coalesce_s=0.3, reconcile_interval_s=3600))
    await wait_status(alice, room, status["event_id"], "2 personnes")
    # Down again: both leave and the room closes, unseen.
    await live_stack.stop_bridge()
    await zoe.leave()
    await yann.leave()
    for _ in range(100):
        if not await server_rooms(live_stack):
            break
        await asyncio.sleep(0.1)
    assert await server_rooms(live_stack) == []
    await live_stack.start_bridge(Options(status_coalesce_s=0.3, reconcile_interval_s=3600))
    await wait_status(alice, room, status["event_id"], "Visio terminée")
    await alice.wait_for(room, lambda e: _is_reply_to(e, status["event_id"]))
    report = await live_stack.running.lifecycle.reconcile()
    assert report.ended == 0  # repaired at start-up, once
    # Another restart posts nothing new.
    notices = len(await alice.bot_notices(room))
    await live_stack.stop_bridge()
    await live_stack.start_bridge()
    await live_stack.running.lifecycle.reconcile()
    assert len(await alice.bot_notices(room)) == notices
