"""The built-in call page as served: strict CSP, no inline script, its built files, language."""

from __future__ import annotations

import re

import aiohttp
import pytest
from fast import ALICE, ROOM, FastBridge

from appservice.http.call_page import ASSETS
from bridge.room_settings.config import ROOM_CONFIG_EVENT


async def _meeting(fast: FastBridge) -> str:
    fast.matrix.room(ROOM, members={ALICE: "Alice"})
    await fast.say("!visio")
    found = re.search(r"/m/([a-z-]+)", fast.notices()[-1])
    assert found
    return found.group(1)


async def _get(fast: FastBridge, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(fast.base_url + path, headers=headers) as r,
    ):
        return r.status, await r.text(), dict(r.headers)


async def test_the_page_runs_only_its_own_script(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    status, page, headers = await _get(fast, f"/m/{slug}")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp and "nonce" not in csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self' wss://livekit.test" in csp
    assert headers["Cache-Control"] == "no-store"
    # Every script is the bundle or JSON data: nothing inline runs.
    for tag in re.findall(r"<script[^>]*>", page):
        assert 'src="/call/assets/app.js"' in tag or 'type="application/json"' in tag, tag
    assert "http://" not in page.replace('href="?lang', "") and "https://" not in page
    assert "République<br>française" in page and '<input id="name"' in page


async def test_the_widget_is_the_same_page_embeddable(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    status, page, headers = await _get(fast, f"/widget/{slug}")
    assert status == 200 and '"mode": "member"' in page
    assert "frame-ancestors *" in headers["Content-Security-Policy"]


async def test_the_room_language_wins_over_the_browser(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    _, page, _ = await _get(fast, f"/m/{slug}", **{"Accept-Language": "en"})
    assert '<html lang="en"' in page  # the room has no language: the browser's
    await fast.put_state(ROOM_CONFIG_EVENT, {"access": "guests", "language": "fr"})
    _, page, _ = await _get(fast, f"/m/{slug}", **{"Accept-Language": "en"})
    assert '<html lang="fr"' in page and "Rejoindre la visio" in page
    _, page, _ = await _get(fast, f"/m/{slug}?lang=en")
    assert '<html lang="en"' in page and "Join the video call" in page


@pytest.mark.skipif(not ASSETS.built, reason="call page not built: bash .ci/build-callpage.sh")
async def test_the_built_files_are_served_and_nothing_else(fast: FastBridge) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fast.base_url}/call/assets/app.js") as script:
            assert script.status == 200 and script.content_type == "text/javascript"
            etag = script.headers["ETag"]
        async with session.get(
            f"{fast.base_url}/call/assets/app.js", headers={"If-None-Match": etag}
        ) as again:
            assert again.status == 304
        for name in ("..%2Fapp.py", ".stamp", "nope.js"):
            async with session.get(f"{fast.base_url}/call/assets/{name}") as missing:
                assert missing.status == 404
