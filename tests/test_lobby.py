"""The lobby: a guest waits on the link's page (over HTTP), a member decides with a reaction.

Fast tier: the join page and the waiting page's long-poll are the bridge's real routes, the
reactions are delivered as the homeserver sends them, and time passes by the manual clock (the
background expiry is `fast.running.lobby.expire()`). One admission through real Synapse stays
in `test_lobby_e2e.py`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from fakes.matrix import Sent
from fast import ALICE, BOB, BOT, ROOM, FastBridge
from livekit.api import TokenVerifier

from bridge.lobby.desk import TOKEN_WINDOW_MS
from bridge.room_settings.config import ROOM_CONFIG_EVENT

# Bounds a long-poll the test expects an answer to; a broken wake-up hangs 25 s instead.
ANSWER_S = 5


async def _lobby_room(fast: FastBridge, **settings: Any) -> str:
    """A lobby room with a call running; returns the call's slug."""
    await fast.put_state(ROOM_CONFIG_EVENT, {"access": "lobby", **settings})
    await fast.say("!visio")
    found = re.search(r"/m/([a-z-]+)", fast.notices()[-1])
    assert found, fast.notices()
    return found.group(1)


async def _knock(fast: FastBridge, slug: str, name: str) -> str:
    """The guest gives a name on the link's page; returns the waiting page's request id."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{fast.base_url}/m/{slug}", data={"name": name}, allow_redirects=False
        ) as page:
            assert page.status == 200
            text = await page.text()
    assert "Salle d\u2019attente" in text
    found = re.search(r'"id": "([A-Za-z0-9_-]+)"', text)
    assert found, text
    return found.group(1)  # the room notice was posted before the page answered


async def _poll(fast: FastBridge, request_id: str) -> dict[str, Any]:
    url = f"{fast.base_url}/api/lobby/{request_id}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return dict(await response.json())


async def _waiting_page(fast: FastBridge, request_id: str) -> asyncio.Task[dict[str, Any]]:
    """The waiting page's long-poll, once it is waiting for a decision."""
    poll = asyncio.create_task(_poll(fast, request_id))
    waiters = fast.running.lobby._lobby._decided  # what a decision wakes
    while request_id not in waiters:
        assert not poll.done(), poll.result()
        await asyncio.sleep(0.001)
    return poll


async def _react(fast: FastBridge, event_id: str, key: str, sender: str = ALICE) -> None:
    relation = {"rel_type": "m.annotation", "event_id": event_id, "key": key}
    await fast.event(
        {
            "type": "m.reaction",
            "sender": sender,
            "room_id": ROOM,
            "content": {"m.relates_to": relation},
        }
    )


def _lobby_notice(fast: FastBridge) -> Sent:
    [notice] = [s for s in fast.matrix.in_room(ROOM, "notice") if "demande à entrer" in s.body]
    return notice


def _outcomes(fast: FastBridge, notice: Sent) -> list[str]:
    return [edit.body for edit in fast.matrix.edits_of(notice.event_id)]


async def test_a_member_lets_the_guest_in(fast: FastBridge) -> None:
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    lobby = _lobby_notice(fast)
    assert lobby.body == (
        "Zoé (personne invitée) demande à entrer dans la visio\u00a0: ✅ pour "
        "accepter, ⛔ pour refuser."
    )
    # The bot offers both answers, so members only have to click.
    reactions = [s.key for s in fast.matrix.replies_to(lobby.event_id) if s.kind == "reaction"]
    assert reactions == ["✅", "⛔"]
    waiting = await _waiting_page(fast, request_id)
    await _react(fast, lobby.event_id, "✅")
    answer = await asyncio.wait_for(waiting, ANSWER_S)
    assert answer["state"] == "admitted"
    # The built-in page's frontend_url: a fragment its script reads, never navigated to.
    assert answer["frontend_url"].startswith("#livekit_url=")
    token = parse_qs(urlparse(answer["frontend_url"]).fragment)["token"][0]
    claims = TokenVerifier(fast.livekit.api_key, fast.livekit.api_secret).verify(token)
    assert claims.identity.startswith("guest-") and claims.name == "Zoé (personne invitée)"
    assert claims.video is not None
    assert claims.video.room == f"visio-{slug}" and not claims.video.room_admin
    assert _outcomes(fast, lobby) == [
        "L\u2019entrée de Zoé (personne invitée) dans la visio a été acceptée par Alice."
    ]


async def test_a_refusal_and_a_reaction_from_someone_not_allowed(fast: FastBridge) -> None:
    slug = await _lobby_room(fast, start_power_level=50)
    request_id = await _knock(fast, slug, "Mallory")
    lobby = _lobby_notice(fast)
    waiting = await _waiting_page(fast, request_id)
    await _react(fast, lobby.event_id, "✅", sender=BOB)  # Bob has level 0 < 50: ignored
    await _react(fast, lobby.event_id, "🎉")  # not an answer
    # The homeserver sends the bot's own ✅ back too: it decides nothing.
    await _react(fast, lobby.event_id, "✅", sender=BOT)
    assert _outcomes(fast, lobby) == []
    await _react(fast, lobby.event_id, "⛔")
    # The page that was waiting all along hears the refusal, not an admission.
    assert await asyncio.wait_for(waiting, ANSWER_S) == {"state": "refused"}
    assert _outcomes(fast, lobby) == [
        "L\u2019entrée de Mallory (personne invitée) dans la visio a été refusée par Alice."
    ]
    # Deciding again changes nothing.
    await _react(fast, lobby.event_id, "👍")
    assert await _poll(fast, request_id) == {"state": "refused"}
    assert len(_outcomes(fast, lobby)) == 1


async def test_a_member_with_the_start_level_decides(fast: FastBridge) -> None:
    slug = await _lobby_room(fast, start_power_level=50)
    fast.matrix.set_level(ROOM, BOB, 50)
    request_id = await _knock(fast, slug, "Zoé")
    await _react(fast, _lobby_notice(fast).event_id, "👍", sender=BOB)
    assert (await _poll(fast, request_id))["state"] == "admitted"
    assert _outcomes(fast, _lobby_notice(fast)) == [
        "L\u2019entrée de Zoé (personne invitée) dans la visio a été acceptée par Bob."
    ]


async def test_unknown_requests_are_not_found(fast: FastBridge) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fast.base_url}/api/lobby/no-such-request") as response:
            assert response.status == 404
            assert (await response.json())["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize("fast", [{"meetings": {"lobby_timeout": 60}}], indirect=True)
async def test_nobody_answering_expires_the_request(fast: FastBridge) -> None:
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    lobby = _lobby_notice(fast)
    waiting = await _waiting_page(fast, request_id)
    fast.clock.now += 60_000 - 1
    assert await fast.running.lobby.expire() == 0  # not yet
    assert not waiting.done()
    fast.clock.now += 1
    assert await fast.running.lobby.expire() == 1
    assert await asyncio.wait_for(waiting, ANSWER_S) == {"state": "expired"}
    assert _outcomes(fast, lobby) == [
        "Zoé (personne invitée) a demandé à entrer dans la visio, mais "
        "personne n\u2019a répondu à temps."
    ]
    await _react(fast, lobby.event_id, "✅")  # too late
    assert await _poll(fast, request_id) == {"state": "expired"}
    assert len(_outcomes(fast, lobby)) == 1


@pytest.mark.parametrize("fast", [{"meetings": {"lobby_timeout": 60}}], indirect=True)
async def test_the_waiting_page_itself_closes_a_request_past_its_time(fast: FastBridge) -> None:
    """Polled after the deadline, before any background expiry: answered "expired" at once."""
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    fast.clock.now += 60_000
    assert await asyncio.wait_for(_poll(fast, request_id), ANSWER_S) == {"state": "expired"}
    assert _outcomes(fast, _lobby_notice(fast)) == [
        "Zoé (personne invitée) a demandé à entrer dans la visio, mais "
        "personne n\u2019a répondu à temps."
    ]
    assert await fast.running.lobby.expire() == 0


async def test_an_admitted_guest_gets_a_token_only_while_it_makes_sense(fast: FastBridge) -> None:
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    await _react(fast, _lobby_notice(fast).event_id, "✅")
    timeout_ms = fast.settings.meetings.lobby_timeout * 1000
    # The page may come back for a fresh token for a while (a reload)…
    fast.clock.now += timeout_ms + TOKEN_WINDOW_MS
    assert "frontend_url" in await _poll(fast, request_id)
    # …not after.
    fast.clock.now += 1
    assert await _poll(fast, request_id) == {"state": "admitted"}


async def test_no_token_once_the_call_has_ended(fast: FastBridge) -> None:
    slug = await _lobby_room(fast)
    request_id = await _knock(fast, slug, "Zoé")
    await _react(fast, _lobby_notice(fast).event_id, "✅")
    assert "frontend_url" in await _poll(fast, request_id)
    await fast.say("!visio end")
    assert await _poll(fast, request_id) == {"state": "admitted"}


async def test_rooms_open_to_guests_have_no_lobby(fast: FastBridge) -> None:
    await fast.put_state(ROOM_CONFIG_EVENT, {"access": "guests"})
    await fast.say("!visio")
    found = re.search(r"/m/([a-z-]+)", fast.notices()[-1])
    assert found
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{fast.base_url}/m/{found.group(1)}", data={"name": "Zoé"}, allow_redirects=False
        ) as page:
            # A plain form post gets no token (never in a URL): the page posts as JSON.
            assert page.status == 303
            assert "token=" not in page.headers["Location"]
        async with session.post(
            f"{fast.base_url}/m/{found.group(1)}",
            data={"name": "Zoé"},
            headers={"Accept": "application/json"},
        ) as page:
            assert page.status == 200
            assert (await page.json())["state"] == "joined"
    assert [n for n in fast.notices() if "demande à entrer" in n] == []
