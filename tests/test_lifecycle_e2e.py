"""The status message under what the real server cannot be made to do, on the LiveKit double.

Forged, replayed, out-of-order and lost webhooks, and a burst of 30 joins (30 WebRTC clients
would be a load test on CI's 2 cores). The ordinary path (the server's own webhooks, its
timeouts, restarts) is in `test_real_livekit_lifecycle.py`, on livekit-server itself.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from harness import Human, Stack
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

pytestmark = pytest.mark.synapse


def _edit_of(event: dict[str, Any]) -> str | None:
    relation = event["content"].get("m.relates_to", {})
    return relation.get("event_id") if relation.get("rel_type") == "m.replace" else None


async def _edits(human: Human, room: str, status_id: str) -> list[dict[str, Any]]:
    return [e for e in await human.bot_notices(room) if _edit_of(e) == status_id]


async def _latest_status(human: Human, room: str, status_id: str) -> str:
    """What a client shows for the status message: the newest edit's m.new_content."""
    edits = await _edits(human, room, status_id)
    return str(edits[-1]["content"]["m.new_content"]["body"]) if edits else ""


async def _wait_status(
    human: Human, room: str, status_id: str, wanted: str, timeout: float = 10
) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        shown = await _latest_status(human, room, status_id)
        if wanted in shown:
            return shown
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"status never showed {wanted!r}; last: {shown!r}")
        await asyncio.sleep(0.1)


async def _live_meeting(stack: Stack) -> tuple[Human, str, dict[str, Any], str]:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.send(room, "!visio")
    [status] = await alice.wait_for(room, lambda e: "Visio démarrée par" in e["content"]["body"])
    slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
    assert slug
    return alice, room, status, f"visio-{slug.group(1)}"


async def test_a_burst_of_joins_gives_a_handful_of_edits_ending_on_the_truth(stack: Stack) -> None:
    alice, room, status, lk_room = await _live_meeting(stack)
    for n in range(30):
        await stack.livekit.join(lk_room, f"guest-{n:02d}", f"Invité {n:02d}")
    shown = await _wait_status(alice, room, status["event_id"], "30 participants")
    await asyncio.sleep(1.0)  # any straggling edit would show up now
    edits = await _edits(alice, room, status["event_id"])
    assert 1 <= len(edits) <= 5, len(edits)
    assert edits[-1]["content"]["m.new_content"]["body"] == shown
    assert "Invité 00, Invité 01, Invité 02, Invité 03, Invité 04 +25 autres" in shown


async def test_forged_and_replayed_webhooks(stack: Stack) -> None:
    alice, room, status, lk_room = await _live_meeting(stack)
    event = WebhookEvent(
        event="room_finished", room=models.Room(name=lk_room), id="EV_forged", created_at=1
    )
    assert await stack.livekit.send_webhook(event, api_secret="x" * 40) == 401
    assert await stack.livekit.send_webhook(event, sign=False) == 401
    await asyncio.sleep(0.5)
    assert "Visio terminée" not in await _latest_status(alice, room, status["event_id"])
    # A real join, then the very same webhook again: applied once.
    await stack.livekit.join(lk_room, "guest-1", "Zoé")
    joined, _ = stack.livekit.webhooks_sent[-1]
    assert await stack.livekit.send_webhook(joined) == 200
    db = stack.running.db
    assert await db.fetchval("SELECT COUNT(*) FROM livekit_webhooks WHERE id=$1", joined.id) == 1
    assert await db.fetchval("SELECT COUNT(*) FROM participants") == 1
    # Webhooks about rooms the bridge does not own are accepted and ignored.
    stranger = WebhookEvent(event="room_finished", room=models.Room(name="not-ours"))
    assert await stack.livekit.send_webhook(stranger) == 200


async def test_out_of_order_webhooks_leave_a_consistent_state(stack: Stack) -> None:
    alice, room, status, lk_room = await _live_meeting(stack)
    person = models.ParticipantInfo(sid="PA_late", identity="guest-x", name="Xavier", joined_at=1)

    def webhook(name: str) -> WebhookEvent:
        return WebhookEvent(event=name, room=models.Room(name=lk_room), participant=person)

    # participant_left overtakes its participant_joined: Xavier is not shown as present.
    assert await stack.livekit.send_webhook(webhook("participant_left")) == 200
    assert await stack.livekit.send_webhook(webhook("participant_joined")) == 200
    await stack.livekit.join(lk_room, "guest-y", "Yasmine")
    shown = await _wait_status(alice, room, status["event_id"], "1 participant :")
    assert "Yasmine" in shown and "Xavier" not in shown
    # A join delivered after room_finished does not reopen anything.
    await stack.livekit.finish_room(lk_room)
    await _wait_status(alice, room, status["event_id"], "Visio terminée")
    late = models.ParticipantInfo(sid="PA_later", identity="guest-z", name="Zack", joined_at=2)
    event = WebhookEvent(
        event="participant_joined", room=models.Room(name=lk_room), participant=late
    )
    assert await stack.livekit.send_webhook(event) == 200
    assert (
        await stack.running.db.fetchval("SELECT COUNT(*) FROM participants WHERE sid='PA_later'")
        == 0
    )


async def test_reconciler_ends_a_meeting_whose_room_finished_unseen(stack: Stack) -> None:
    alice, room, status, lk_room = await _live_meeting(stack)
    stack.livekit.webhook_url = None  # the webhook is lost
    await stack.livekit.finish_room(lk_room)
    report = await stack.running.lifecycle.reconcile()
    assert report.ended == 1
    await _wait_status(alice, room, status["event_id"], "Visio terminée")
    await alice.wait_for(room, lambda e: "m.in_reply_to" in e["content"].get("m.relates_to", {}))


async def test_reconciler_repairs_the_participant_list(stack: Stack) -> None:
    alice, room, status, lk_room = await _live_meeting(stack)
    stack.livekit.webhook_url = None
    await stack.livekit.join(lk_room, "guest-1", "Zoé")
    await stack.livekit.join(lk_room, "guest-2", "Yann")
    report = await stack.running.lifecycle.reconcile()
    assert report.repaired_participants == 2
    await _wait_status(alice, room, status["event_id"], "2 participants")
