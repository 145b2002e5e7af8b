"""The join link page: asks a name, mints a one-room short-lived token, explains dead links."""

from __future__ import annotations

import re

import aiohttp
from fast import ALICE, ROOM, FastBridge
from livekit.api import TokenVerifier


async def _start_meeting(fast: FastBridge, displayname: str = "Alice") -> str:
    fast.matrix.room(ROOM, members={ALICE: displayname})
    await fast.say("!visio")
    slug = re.search(r"/m/([a-z-]+)", fast.notices()[0])
    assert slug
    return slug.group(1)


def _page_url(fast: FastBridge, slug: str) -> str:
    return f"{fast.base_url}/m/{slug}"


async def test_page_asks_for_a_name_then_hands_a_one_room_token_to_its_script(
    fast: FastBridge,
) -> None:
    slug = await _start_meeting(fast)
    async with aiohttp.ClientSession() as session:
        async with session.get(_page_url(fast, slug)) as page:
            assert page.status == 200
            text = await page.text()
            assert "Rejoindre la visio" in text and "démarrée par Alice" in text
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        async with session.post(
            _page_url(fast, slug),
            data={"name": "  Zoé Martin "},
            headers={"Accept": "application/json"},
        ) as joined:
            assert joined.status == 200
            assert joined.headers["Cache-Control"] == "no-store"
            answer = await joined.json()
        # A plain form post (no script) gets no token: it is never put in a URL.
        async with session.post(
            _page_url(fast, slug), data={"name": "Zoé"}, allow_redirects=False
        ) as plain:
            assert plain.status == 303 and plain.headers["Location"] == f"/m/{slug}"
    assert answer["state"] == "joined" and answer["livekit_url"] == "wss://livekit.test"
    claims = TokenVerifier(fast.livekit.api_key, fast.livekit.api_secret).verify(answer["token"])
    assert claims.identity == answer["identity"] and claims.identity.startswith("guest-")
    assert claims.name == answer["name"] == "Zoé Martin (personne invitée)"
    assert claims.video is not None
    assert claims.video.room == f"visio-{slug}" and claims.video.room_join
    assert not claims.video.room_admin and not claims.video.room_create


async def test_an_empty_name_is_asked_again(fast: FastBridge) -> None:
    slug = await _start_meeting(fast)
    async with aiohttp.ClientSession() as session:
        async with session.post(_page_url(fast, slug), data={"name": " \u200b\n"}) as page:
            assert page.status == 400
            assert "Indiquez un nom" in await page.text()


async def test_english_page_on_request(fast: FastBridge) -> None:
    slug = await _start_meeting(fast)
    async with aiohttp.ClientSession() as session:
        headers = {"Accept-Language": "en-GB,en;q=0.9"}
        async with session.get(_page_url(fast, slug), headers=headers) as page:
            assert "Join the video call" in await page.text()


async def test_unknown_malformed_and_ended_links_are_explained(fast: FastBridge) -> None:
    slug = await _start_meeting(fast)
    async with aiohttp.ClientSession() as session:
        for missing in ("zzz-zzzz-zzz", "not-a-slug", "..%2F..%2Fetc"):
            async with session.get(_page_url(fast, missing)) as page:
                assert page.status == 404
                assert "Visio introuvable" in await page.text()
        await fast.say("!visio end")
        assert "Visio terminée par Alice" in fast.matrix.current_text(fast.matrix.sent[0].event_id)
        async with session.get(_page_url(fast, slug)) as page:
            assert page.status == 410
            assert "Cette visio est terminée" in await page.text()
        async with session.post(_page_url(fast, slug), data={"name": "Zoé"}) as page:
            assert page.status == 410


async def test_a_hostile_display_name_is_escaped(fast: FastBridge) -> None:
    slug = await _start_meeting(fast, displayname="<script>alert(1)</script>")
    async with aiohttp.ClientSession() as session:
        async with session.get(_page_url(fast, slug)) as page:
            text = await page.text()
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


async def test_the_page_names_the_room_it_belongs_to(fast: FastBridge) -> None:
    await fast.matrix.send_state(ROOM, "m.room.name", {"name": "Point <hebdo> & budget"})
    slug = await _start_meeting(fast)
    async with aiohttp.ClientSession() as session, session.get(_page_url(fast, slug)) as page:
        text = await page.text()
    assert (
        "Visio du salon «\u00a0Point &lt;hebdo&gt; &amp; budget\u00a0», démarrée par Alice." in text
    )
