"""The built-in call page in real browsers (headless Debian chromium, fake camera and microphone)
against the real livekit-server: two guests see and hear each other, chat reaches the room,
and `!visio end` ends the page. Screenshots land in the test's tmp folder (`screens/`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from harness import Human, Stack
from live_calls import start_meeting, wait_room_text

from appservice.http.call_page import ASSETS

CHROMIUM = shutil.which("chromium")
playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.synapse,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(not ASSETS.built, reason="call page not built: bash .ci/build-callpage.sh"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield launched
        await launched.close()


def _local(stack: Stack, link: str) -> str:
    return link.replace(stack.settings.public_url, stack.settings.appservice.address)


async def _guest(browser: Any, url: str, name: str, width: int = 1280) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": 800}, locale="fr-FR")
    page = await context.new_page()
    page.on("console", lambda message: print(f"[{name}] console:", message.text))
    await page.goto(url)
    await page.wait_for_selector("#preview video, #preview .visio-preview__off")
    await page.fill("#name", name)
    await page.click("#join")
    await page.wait_for_selector("body[data-screen=call]", timeout=20000)
    return page


@pytest.mark.asyncio
async def test_two_guests_see_each_other_chat_and_see_the_end(
    live_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    stack = live_stack
    screens = tmp_path / "screens"
    screens.mkdir()
    anne: Human = await stack.human("anne", "Anne")
    room = await stack.room_with_bot(anne)
    _, slug = await start_meeting(anne, room)
    url = _local(stack, f"{stack.settings.public_url}/m/{slug}")

    zoe = await _guest(browser, url, "Zoé")
    print("time to joined (ms):", await zoe.evaluate("document.body.dataset.joinedMs"))
    small = await browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-FR")
    prejoin = await small.new_page()
    await prejoin.goto(url)
    await prejoin.wait_for_selector("#preview video")
    await prejoin.screenshot(path=str(screens / "prejoin-390.png"), full_page=True)
    await prejoin.fill("#name", "Marc")
    await prejoin.click("#join")
    marc = prejoin
    await marc.wait_for_selector("body[data-screen=call]", timeout=20000)

    # Each sees the other's tile, by name, with their video and audio subscribed.
    for page, other in ((zoe, "Marc (invité)"), (marc, "Zoé (invité)")):
        tile = f'.visio-tile[data-name="{other}"][data-video=subscribed][data-audio=subscribed]'
        try:
            await page.wait_for_selector(tile, timeout=20000, state="attached")
        except Exception:
            print(
                "tiles:",
                await page.evaluate(
                    "[...document.querySelectorAll('.visio-tile')]"
                    ".map(t => t.outerHTML.slice(0, 200))"
                ),
            )
            raise
    await zoe.screenshot(path=str(screens / "call-1280.png"))
    await marc.screenshot(path=str(screens / "call-390.png"))

    # Chat: the browser to the room under the guest's name, and the room to the browser.
    await zoe.click("#control-chat")
    await zoe.fill("#chat-input", "Bonjour depuis le navigateur")
    await zoe.press("#chat-input", "Enter")
    await wait_room_text(
        anne, room, lambda e: "Bonjour depuis le navigateur" in e["content"]["body"]
    )
    await anne.send(room, "Bonjour depuis Tchap")
    await zoe.wait_for_selector("#chat-messages >> text=Bonjour depuis Tchap", timeout=20000)
    await zoe.screenshot(path=str(screens / "chat-1280.png"))

    # Mute and camera off show on the other side.
    await zoe.click("#control-microphone")
    await marc.wait_for_selector('.visio-tile--muted[data-name="Zoé (invité)"]', timeout=10000)

    await anne.send(room, "!visio end")
    for page in (zoe, marc):
        await page.wait_for_selector("#end[data-kind=ended]", timeout=20000)
    await zoe.screenshot(path=str(screens / "ended-1280.png"))
    await marc.screenshot(path=str(screens / "ended-390.png"))
    weights = await zoe.evaluate(
        "performance.getEntriesByType('resource').filter(e => e.name.includes('/call/assets/'))"
        ".map(e => [e.name.split('/').pop(), e.encodedBodySize || e.transferSize])"
    )
    print("page weight:", weights, sum(size for _, size in weights))
    print("screenshots in", screens)
