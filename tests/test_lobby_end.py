"""Ending a call closes its lobby: guests still waiting are told, and so is the room.

However the call ends (`!visio end`, LiveKit's room_finished, the reconciler noticing a lost
webhook), requests still waiting are closed at once instead of lingering until they expire:
their room notice says the call ended, and the waiting page's long-poll answers `ended`.
Fast tier, driven over HTTP as in `test_lobby.py`.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from fast import ROOM, FastBridge
from test_lobby import (
    ANSWER_S,
    _knock,
    _lobby_room,
    _outcomes,
    _poll,
    _react,
    _waiting_page,
)

from bridge.lobby.requests import LobbyState

ENDED = (
    "Zoé (personne invitée) a demandé à entrer dans la visio, mais la "
    "visio s\u2019est terminée avant."
)


def _notice_of(fast: FastBridge, guest: str) -> str:
    [sent] = [
        s
        for s in fast.matrix.in_room(ROOM, "notice")
        if s.body.startswith(f"{guest} (personne invitée) demande à entrer")
    ]
    return sent.event_id


async def _ends_the_lobby(fast: FastBridge, how: str, slug: str) -> None:
    if how == "command":
        await fast.say("!visio end")
    elif how == "room_finished":
        await fast.livekit.finish_room(f"visio-{slug}")
        await fast.settle()
    else:  # the webhook is lost; the reconciler finds the room gone
        fast.livekit.webhook_url = None
        await fast.livekit.finish_room(f"visio-{slug}")
        await fast.settle()
        assert (await fast.running.lifecycle.reconcile()).ended == 1
        await fast.settle()


@pytest.mark.parametrize("how", ["command", "room_finished", "reconcile"])
async def test_ending_the_call_closes_the_requests_still_waiting(
    fast: FastBridge, how: str
) -> None:
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    waiting = await _waiting_page(fast, request_id)
    await _ends_the_lobby(fast, how, slug)
    # The page that was waiting hears it at once, not when the request would have expired.
    assert await asyncio.wait_for(waiting, ANSWER_S) == {"state": "ended"}
    assert await _poll(fast, request_id) == {"state": "ended"}
    notice = fast.matrix.in_room(ROOM, "notice")
    event_id = _notice_of(fast, "Zoé")
    assert [e.body for e in fast.matrix.edits_of(event_id)] == [ENDED], notice
    # Nothing left to expire, and a late reaction changes nothing.
    assert await fast.running.lobby.expire() == 0
    await _react(fast, event_id, "✅")
    assert await _poll(fast, request_id) == {"state": "ended"}
    assert len(fast.matrix.edits_of(event_id)) == 1


async def test_decided_requests_keep_their_outcome(fast: FastBridge) -> None:
    slug = await _lobby_room(fast)
    admitted = await _knock(fast, slug, "Yann")
    await _react(fast, _notice_of(fast, "Yann"), "✅")
    waiting = await _knock(fast, slug, "Zoé")
    await fast.say("!visio end")
    assert await _poll(fast, admitted) == {"state": "admitted"}  # no token: the call is over
    assert await _poll(fast, waiting) == {"state": "ended"}
    yann = fast.matrix.edits_of(_notice_of(fast, "Yann"))
    assert [e.body for e in yann] == [
        "L\u2019entrée de Yann (personne invitée) dans la visio a été acceptée par Alice."
    ]


@pytest.mark.parametrize("fast", [{"meetings": {"default_language": "en"}}], indirect=True)
async def test_the_room_is_told_in_its_language(fast: FastBridge) -> None:
    slug = await _lobby_room(fast)
    async with aiohttp.ClientSession() as session:
        url = f"{fast.base_url}/m/{slug}"
        async with session.post(url, data={"name": "Zoé"}, allow_redirects=False) as page:
            assert page.status == 200
    request_id = await fast.running.db.fetchval("SELECT id FROM lobby_requests")
    await fast.say("!visio end")
    assert await _poll(fast, request_id) == {"state": "ended"}
    [lobby] = [s for s in fast.matrix.in_room(ROOM, "notice") if "asking to join" in s.body]
    assert _outcomes(fast, lobby) == [
        "Zoé (guest) asked to join the call, but the call ended first."
    ]


async def test_the_expiry_pass_catches_up_on_a_call_that_ended_unseen(fast: FastBridge) -> None:
    """The call ended while the bridge was not following (a crash before the lobby synced)."""
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    await fast.running.db.execute("UPDATE meetings SET state='ended'")
    assert await fast.running.lobby.expire() == 0  # none expired; the ended one is closed
    request = await fast.running.lobby._lobby.get(request_id)
    assert request is not None and request.state is LobbyState.ENDED
    assert [e.body for e in fast.matrix.edits_of(_notice_of(fast, "Zoé"))] == [ENDED]
