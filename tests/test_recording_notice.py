"""Guests and members are told that a meeting is recorded (for its transcript) before they join.

Fast tier: the join page (the form, and the lobby's waiting page) and the widget page are the
bridge's real routes; the room's settings arrive as the homeserver sends the state event.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from fast import FastBridge

from bridge.messages import i18n
from bridge.room_settings.config import ROOM_CONFIG_EVENT

TRANSCRIPTS_ALLOWED = {"meetings": {"transcription_allowed": True}}
FR = i18n.text("fr", "page_recording")
EN = i18n.text("en", "page_recording")


async def _meeting(fast: FastBridge, **settings: Any) -> str:
    await fast.put_state(ROOM_CONFIG_EVENT, {"access": "guests", **settings})
    await fast.say("!visio")
    [found] = [m for m in map(re.compile(r"/m/([a-z-]+)").search, fast.notices()) if m]
    return found.group(1)


async def _page(fast: FastBridge, path: str, *, form: dict[str, str] | None = None) -> str:
    async with aiohttp.ClientSession() as http:
        method = "POST" if form is not None else "GET"
        async with http.request(
            method, fast.base_url + path, data=form, allow_redirects=False
        ) as response:
            assert response.status == 200, (path, response.status)
            return await response.text()


def test_the_notice_is_in_both_languages() -> None:
    assert "enregistrée" in FR and "transcription" in FR
    assert "recorded" in EN and "transcript" in EN


@pytest.mark.parametrize("fast", [TRANSCRIPTS_ALLOWED], indirect=True)
async def test_the_join_form_says_the_meeting_is_recorded(fast: FastBridge) -> None:
    slug = await _meeting(fast, transcription="on")
    form = await _page(fast, f"/m/{slug}")
    # Before the name field: the guest reads it before giving a name.
    assert FR in form
    assert form.index(FR) < form.index('<input id="name"')
    assert EN in await _page(fast, f"/m/{slug}?lang=en")


@pytest.mark.parametrize("fast", [TRANSCRIPTS_ALLOWED], indirect=True)
async def test_the_lobby_and_the_widget_say_so_too(fast: FastBridge) -> None:
    slug = await _meeting(fast, transcription="on", access="lobby")
    waiting = await _page(fast, f"/m/{slug}", form={"name": "Zoé"})
    assert "Salle d\u2019attente" in waiting and FR in waiting
    widget = await _page(fast, f"/widget/{slug}")
    assert FR in widget
    # The member chooses to join once told: signing in waits for the button (the built-in
    # page's pre-join screen, which always has one).
    assert '<button class="fr-btn" id="join"' in widget
    assert EN in await _page(fast, f"/widget/{slug}?lang=en")


@pytest.mark.parametrize(
    ("fast", "settings"),
    [
        (TRANSCRIPTS_ALLOWED, {}),  # transcripts off in the room
        ({}, {"transcription": "on"}),  # on in the room, not allowed by the operator
    ],
    indirect=["fast"],
)
async def test_no_notice_when_nothing_is_recorded(
    fast: FastBridge, settings: dict[str, str]
) -> None:
    slug = await _meeting(fast, **settings)
    for path in (f"/m/{slug}", f"/widget/{slug}"):
        page = await _page(fast, path)
        assert FR not in page and "enregistrée" not in page, path
    # (The built-in page always shows its pre-join screen and a join button.)


@pytest.mark.parametrize("fast", [TRANSCRIPTS_ALLOWED], indirect=True)
async def test_the_notice_follows_the_recording_itself(fast: FastBridge) -> None:
    slug = await _meeting(fast, transcription="on")
    # Transcripts turned off in the room: the recording already running goes on, and says so.
    await fast.put_state(ROOM_CONFIG_EVENT, {"access": "guests", "transcription": "off"})
    assert FR in await _page(fast, f"/m/{slug}")
    # Stopped: nobody else is told it is recorded.
    await fast.say("!visio transcript off")
    assert FR not in await _page(fast, f"/m/{slug}")
    assert FR not in await _page(fast, f"/widget/{slug}")
