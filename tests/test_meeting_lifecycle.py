"""A meeting's life after `!visio`: LiveKit's webhooks and the reconciler drive its status message.

On the fast tier (the Matrix fake, the LiveKit double): joins and leaves edit the status
message, a burst of joins is coalesced, room_finished ends the meeting with a reply, and what
the real server cannot be made to do here (forged, replayed, out-of-order and lost webhooks)
changes exactly what it should. The ordinary path on livekit-server itself (its own webhooks,
timeouts, restarts) is in `test_real_livekit_lifecycle.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fakes.matrix import Sent
from fast import ROOM, FastBridge
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

LINK_SUFFIX = "— rejoindre\u00a0: https://visio.test/m/"


async def _live_meeting(fast: FastBridge) -> tuple[str, str]:
    """`!visio` in ROOM: the status message's event id and the LiveKit room's name."""
    await fast.say("!visio")
    [status] = fast.matrix.in_room(ROOM, "notice")
    assert status.body.startswith("Visio démarrée par Alice")
    [lk_room] = fast.livekit.rooms
    state = await fast.running.db.fetchval("SELECT state FROM meetings")
    assert state == "live"  # the double's room_started webhook reached the bridge
    return status.event_id, lk_room


def _shown(fast: FastBridge, status: str) -> str:
    """The status message as a client shows it now (its newest edit)."""
    return fast.matrix.current_text(status)


def _edit_count(fast: FastBridge, status: str) -> int:
    return len(fast.matrix.edits_of(status))


def _person(sid: str, identity: str, name: str) -> models.ParticipantInfo:
    return models.ParticipantInfo(sid=sid, identity=identity, name=name, joined_at=1)


def _webhook(name: str, lk_room: str, **fields: Any) -> WebhookEvent:
    return WebhookEvent(event=name, room=models.Room(name=lk_room), **fields)


async def test_joins_and_leaves_edit_the_status_message(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    await fast.livekit.join(lk_room, "guest-1", "Zoé")
    await fast.settle()
    assert _edit_count(fast, status) == 1
    assert "Visio en cours, démarrée par Alice à " in _shown(fast, status)
    assert f"— 1 personne\u00a0: Zoé {LINK_SUFFIX}" in _shown(fast, status)
    # A member joins with their Matrix id as identity; names are listed alphabetically.
    await fast.livekit.join(lk_room, "@bob:localhost", "Bob")
    await fast.settle()
    assert _edit_count(fast, status) == 2
    assert f"— 2 personnes\u00a0: Bob, Zoé {LINK_SUFFIX}" in _shown(fast, status)
    await fast.livekit.leave(lk_room, "guest-1")
    await fast.settle()
    assert _edit_count(fast, status) == 3
    assert f"— 1 personne\u00a0: Bob {LINK_SUFFIX}" in _shown(fast, status)
    # Everyone gone (the room still open): back to the invitation, with its link.
    await fast.livekit.leave(lk_room, "@bob:localhost", aborted=True)
    await fast.settle()
    assert _edit_count(fast, status) == 4
    assert _shown(fast, status).startswith(f"Visio démarrée par Alice {LINK_SUFFIX}")
    # All of it by editing the one status message: nothing else was posted.
    assert [s.kind for s in fast.matrix.in_room(ROOM)] == ["notice"] + ["edit"] * 4


async def test_a_burst_of_joins_rides_along_with_the_edit_in_flight(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    # The homeserver is slow: the first edit is held on its way until the burst is over.
    gate = fast.matrix.hold_sends()
    await fast.livekit.join(lk_room, "guest-00", "Invité 00")
    await asyncio.wait_for(gate.arrived.wait(), timeout=10)
    for n in range(1, 30):
        await fast.livekit.join(lk_room, f"guest-{n:02d}", f"Invité {n:02d}")
    gate.open()
    await fast.settle()
    # Twenty-nine joins during one edit: one more edit, showing all thirty.
    edits = [sent.body for sent in fast.matrix.edits_of(status)]
    assert len(edits) == 2, edits
    assert f"— 1 personne\u00a0: Invité 00 {LINK_SUFFIX}" in edits[0]
    names = "Invité 00, Invité 01, Invité 02, Invité 03, Invité 04 et 25 autres"
    assert f"— 30 personnes\u00a0: {names} {LINK_SUFFIX}" in edits[1]
    revisions = await fast.running.db.fetchrow("SELECT status_rev, status_sent_rev FROM meetings")
    assert revisions["status_rev"] == revisions["status_sent_rev"]


def _end_notices(fast: FastBridge, status: str) -> list[Sent]:
    return [sent for sent in fast.matrix.replies_to(status) if sent.kind == "notice"]


async def test_room_finished_ends_the_meeting_with_a_reply(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    await fast.livekit.join(lk_room, "guest-1", "Zoé")
    await fast.livekit.join(lk_room, "guest-2", "Yann")
    await fast.settle()
    await fast.livekit.finish_room(lk_room)  # both leave, then room_finished
    await fast.settle()
    ended = "Visio terminée — moins d\u2019une minute, 2 personnes."
    assert _shown(fast, status) == ended
    # Edits do not notify: the end is also said in a reply to the status message.
    [reply] = _end_notices(fast, status)
    assert reply.body == ended
    assert fast.matrix.sent[-1] == reply
    assert await fast.running.db.fetchval("SELECT state FROM meetings") == "ended"
    assert await fast.running.db.fetchval("SELECT COUNT(*) FROM participants") == 2
    # room_finished again (another id, as after a server restart): nothing new in the room.
    sent_before = len(fast.matrix.sent)
    assert await fast.livekit.send_webhook(_webhook("room_finished", lk_room)) == 200
    await fast.settle()
    assert len(fast.matrix.sent) == sent_before


async def test_forged_webhooks_are_refused_and_change_nothing(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    event = _webhook("room_finished", lk_room, id="EV_forged", created_at=1)
    assert await fast.livekit.send_webhook(event, api_secret="x" * 40) == 401
    assert await fast.livekit.send_webhook(event, api_key="not-our-key") == 401
    assert await fast.livekit.send_webhook(event, sign=False) == 401
    await fast.settle()
    assert _edit_count(fast, status) == 0
    assert await fast.running.db.fetchval("SELECT state FROM meetings") == "live"
    query = "SELECT COUNT(*) FROM livekit_webhooks WHERE id='EV_forged'"
    assert await fast.running.db.fetchval(query) == 0
    # The genuine one, signed with the right secret, is applied.
    assert await fast.livekit.send_webhook(event) == 200
    await fast.settle()
    assert _shown(fast, status).startswith("Visio terminée")


async def test_a_replayed_webhook_is_applied_once(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    await fast.livekit.join(lk_room, "guest-1", "Zoé")
    [joined] = fast.livekit.webhook_events("participant_joined")
    await fast.livekit.leave(lk_room, "guest-1")
    await fast.settle()
    edits = _edit_count(fast, status)
    assert "Zoé" not in _shown(fast, status)
    # The join delivered again after the leave (a retry by LiveKit): seen before, ignored.
    assert await fast.livekit.send_webhook(joined) == 200
    await fast.settle()
    assert _edit_count(fast, status) == edits
    assert "Zoé" not in _shown(fast, status)
    db = fast.running.db
    assert await db.fetchval("SELECT COUNT(*) FROM livekit_webhooks WHERE id=$1", joined.id) == 1
    assert await db.fetchval("SELECT COUNT(*) FROM participants WHERE left_at IS NULL") == 0


async def test_webhooks_about_rooms_the_bridge_does_not_own_are_ignored(fast: FastBridge) -> None:
    status, _ = await _live_meeting(fast)
    stranger = _person("PA_stranger", "guest-s", "Sam")
    for event in (
        _webhook("room_started", "not-ours"),
        _webhook("participant_joined", "not-ours", participant=stranger),
        _webhook("room_finished", "not-ours"),
    ):
        assert await fast.livekit.send_webhook(event) == 200
    await fast.settle()
    assert _edit_count(fast, status) == 0
    assert await fast.running.db.fetchval("SELECT COUNT(*) FROM participants") == 0
    assert await fast.running.db.fetchval("SELECT COUNT(*) FROM meetings") == 1
    assert await fast.running.db.fetchval("SELECT state FROM meetings") == "live"


async def test_a_leave_that_overtakes_its_join_leaves_nobody_behind(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    xavier = _person("PA_late", "guest-x", "Xavier")
    for name in ("participant_left", "participant_joined"):  # the leave overtook the join
        event = _webhook(name, lk_room, participant=xavier)
        assert await fast.livekit.send_webhook(event) == 200
    await fast.livekit.join(lk_room, "guest-y", "Yasmine")
    await fast.settle()
    assert f"— 1 personne\u00a0: Yasmine {LINK_SUFFIX}" in _shown(fast, status)
    present = "SELECT COUNT(*) FROM participants WHERE sid='PA_late' AND left_at IS NULL"
    assert await fast.running.db.fetchval(present) == 0


async def test_a_join_delivered_after_room_finished_reopens_nothing(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    await fast.livekit.finish_room(lk_room)
    await fast.settle()
    ended = _shown(fast, status)
    assert ended.startswith("Visio terminée")
    sent_before = len(fast.matrix.sent)
    late = _webhook(
        "participant_joined", lk_room, participant=_person("PA_later", "guest-z", "Zack")
    )
    assert await fast.livekit.send_webhook(late) == 200
    await fast.settle()
    assert len(fast.matrix.sent) == sent_before
    assert _shown(fast, status) == ended
    db = fast.running.db
    assert await db.fetchval("SELECT COUNT(*) FROM participants WHERE sid='PA_later'") == 0
    assert await db.fetchval("SELECT state FROM meetings") == "ended"


async def test_reconcile_ends_a_meeting_whose_room_finished_was_lost(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    fast.livekit.webhook_url = None  # LiveKit's webhooks are lost from now on
    await fast.livekit.finish_room(lk_room)
    await fast.settle()
    assert _edit_count(fast, status) == 0
    report = await fast.running.lifecycle.reconcile()
    assert (report.checked, report.ended, report.repaired_participants) == (1, 1, 0)
    await fast.settle()
    assert _shown(fast, status).startswith("Visio terminée")
    [reply] = _end_notices(fast, status)
    assert reply.body == _shown(fast, status)
    assert await fast.running.db.fetchval("SELECT state FROM meetings") == "ended"
    # Nothing left to reconcile: a second pass changes nothing.
    sent_before = len(fast.matrix.sent)
    report = await fast.running.lifecycle.reconcile()
    assert (report.checked, report.ended) == (0, 0)
    await fast.settle()
    assert len(fast.matrix.sent) == sent_before


async def test_reconcile_repairs_the_participant_list(fast: FastBridge) -> None:
    status, lk_room = await _live_meeting(fast)
    fast.livekit.webhook_url = None
    await fast.livekit.join(lk_room, "guest-1", "Zoé")
    await fast.livekit.join(lk_room, "guest-2", "Yann")
    report = await fast.running.lifecycle.reconcile()
    assert (report.checked, report.ended, report.repaired_participants) == (1, 0, 2)
    await fast.settle()
    assert f"— 2 personnes\u00a0: Yann, Zoé {LINK_SUFFIX}" in _shown(fast, status)
    # A departure that was lost too.
    await fast.livekit.leave(lk_room, "guest-1")
    report = await fast.running.lifecycle.reconcile()
    assert report.repaired_participants == 1
    await fast.settle()
    assert f"— 1 personne\u00a0: Yann {LINK_SUFFIX}" in _shown(fast, status)
    # In step: a pass repairs nothing and edits nothing.
    edits = _edit_count(fast, status)
    report = await fast.running.lifecycle.reconcile()
    assert (report.checked, report.ended, report.repaired_participants) == (1, 0, 0)
    await fast.settle()
    assert _edit_count(fast, status) == edits
