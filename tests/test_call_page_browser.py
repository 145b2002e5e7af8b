"""The built-in call page in real browsers (headless Debian chromium, fake camera and microphone)
against the real livekit-server: two guests see and hear each other, chat reaches the room,
and `!visio end` ends the page; a member signed in through the widget lets a guest in from the
lobby, both told the meeting is recorded. axe-core checks each screen (no serious or critical
violation). Screenshots land in the test's tmp folder (`screens/`), or in `VISIO_SCREENSHOTS`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from harness import Human, Stack
from live_calls import start_meeting, wait_room_text
from test_member_join_e2e import openid_token
from test_widget_browser import HOST_PAGE, FrontEnd

from appservice.http.call_page import ASSETS
from bridge.messages import i18n
from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.widgets import WIDGET_ID

CHROMIUM = shutil.which("chromium")
playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.synapse,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(not ASSETS.built, reason="call page not built: bash .ci/build-callpage.sh"),
]


AXE = Path(__file__).resolve().parents[1] / "callpage" / "node_modules" / "axe-core" / "axe.min.js"
# Violations that fail the test; "moderate" and "minor" ones are printed.
BLOCKING = {"serious", "critical"}
TRANSCRIPTS_ALLOWED = {"meetings": {"transcription_allowed": True}}


def _screens(tmp_path: Path) -> Path:
    kept = os.environ.get("VISIO_SCREENSHOTS")
    screens = Path(kept) if kept else tmp_path / "screens"
    screens.mkdir(parents=True, exist_ok=True)
    return screens


def _as_guest(name: str) -> str:
    """A guest's name as the call shows it (the room's language: French here)."""
    return i18n.text("fr", "guest_name", name=name)


def _lobby_notice(event: dict[str, Any], name: str) -> bool:
    """The bot's notice that `name` waits in the lobby (the one to react ✅ to)."""
    body = str(event["content"]["body"])
    return _as_guest(name) in body and "✅" in body and "m.relates_to" not in event["content"]


async def _axe(page: Any, screen: str) -> None:
    """axe-core on the page as it is now (the context bypasses CSP to inject it)."""
    assert AXE.is_file(), "axe-core missing: bash .ci/build-callpage.sh"
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    results = await page.evaluate(
        """async () => {
          const results = await axe.run(document);
          const nodes = (v) => v.nodes.slice(0, 3).map((n) => n.target.join(" "));
          return {
            passes: results.passes.length,
            incomplete: results.incomplete.map((v) => `${v.id} ${nodes(v).join(", ")}`),
            violations: results.violations.map(
              (v) => ({id: v.id, impact: v.impact, help: v.help, nodes: nodes(v)})),
          };
        }"""
    )
    print(f"axe [{screen}]: {results['passes']} rules pass, to review: {results['incomplete']}")
    violations = results["violations"]
    for violation in violations:
        print(f"axe [{screen}]:", json.dumps(violation, ensure_ascii=False))
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"{screen}: {blocking}"


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


async def _guest(
    browser: Any, url: str, name: str, width: int = 1280, *, axe: bool = False, shot: str = ""
) -> Any:
    """A guest on the call page, joined (`axe`: checked on the pre-join screen first)."""
    context = await browser.new_context(
        viewport={"width": width, "height": 800}, locale="fr-FR", bypass_csp=axe
    )
    page = await context.new_page()
    page.on("console", lambda message: print(f"[{name}] console:", message.text))
    await page.goto(url)
    await page.wait_for_selector("#preview video, #preview .visio-preview__off")
    if axe:
        await _axe(page, "pre-join")
    if shot:
        await page.screenshot(path=shot, full_page=True)
    await page.fill("#name", name)
    await page.click("#join")
    await page.wait_for_selector("body[data-screen=call]", timeout=20000)
    return page


async def _wait_tile(page: Any, name: str) -> None:
    tile = f'.visio-tile[data-name="{name}"][data-video=subscribed][data-audio=subscribed]'
    try:
        await page.wait_for_selector(tile, timeout=20000, state="attached")
    except Exception:
        print(
            "tiles:",
            await page.evaluate(
                "[...document.querySelectorAll('.visio-tile')].map(t => t.outerHTML.slice(0, 200))"
            ),
        )
        raise


@pytest.mark.asyncio
async def test_two_guests_see_each_other_chat_and_see_the_end(
    live_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    stack = live_stack
    screens = _screens(tmp_path)
    anne: Human = await stack.human("anne", "Anne")
    room = await stack.room_with_bot(anne)
    _, slug = await start_meeting(anne, room)
    url = _local(stack, f"{stack.settings.public_url}/m/{slug}")

    zoe = await _guest(browser, url, "Zoé", axe=True, shot=str(screens / "prejoin-1280.png"))
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
    for page, other in ((zoe, _as_guest("Marc")), (marc, _as_guest("Zoé"))):
        await _wait_tile(page, other)
    await _axe(zoe, "in call")
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
    await _axe(zoe, "chat open")
    await zoe.screenshot(path=str(screens / "chat-1280.png"))
    await marc.click("#control-chat")
    await marc.wait_for_selector("#chat-messages >> text=Bonjour depuis Tchap", timeout=20000)
    await marc.screenshot(path=str(screens / "chat-390.png"))
    await marc.click("#control-chat")

    # Mute and camera off show on the other side.
    await zoe.click("#control-microphone")
    muted = f'.visio-tile--muted[data-name="{_as_guest("Zoé")}"]'
    await marc.wait_for_selector(muted, timeout=10000)

    await anne.send(room, "!visio end")
    for page in (zoe, marc):
        await page.wait_for_selector("#end[data-kind=ended]", timeout=20000)
    await _axe(zoe, "ended")
    await zoe.screenshot(path=str(screens / "ended-1280.png"))
    await marc.screenshot(path=str(screens / "ended-390.png"))
    weights = await zoe.evaluate(
        "performance.getEntriesByType('resource').filter(e => e.name.includes('/call/assets/'))"
        ".map(e => [e.name.split('/').pop(), e.encodedBodySize || e.transferSize])"
    )
    print("page weight:", weights, sum(size for _, size in weights))
    print("screenshots in", screens)


async def _member_in_widget(
    stack: Stack, front_end: FrontEnd, browser: Any, human: Human, slug: str
) -> tuple[Any, Any]:
    """`human` on the call page as a widget: a host page plays the Matrix client (widget API,
    `get_openid`); the page and the widget's frame, on the pre-join screen."""
    openid = await openid_token(stack, human)
    widget_url = (
        f"{stack.settings.appservice.address}/widget/{slug}"
        f"?widgetId={WIDGET_ID}&userId={quote(human.user_id, safe='')}"
    )
    front_end.host_pages["member"] = (
        HOST_PAGE.replace("__URL__", widget_url)
        .replace("__OPENID__", json.dumps(openid))
        .replace("__WIDGET_ID__", WIDGET_ID)
        .replace(
            '<iframe id="widget"',
            '<iframe id="widget" allow="camera; microphone; display-capture"',
        )
        .replace("width:600px;height:400px", "width:1200px;height:760px")
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    page = await context.new_page()
    page.on("console", lambda message: print("[member] console:", message.text))
    await page.goto(f"{front_end.url}/host/member")
    element = await page.wait_for_selector("#widget")
    frame = await element.content_frame()
    await frame.wait_for_selector("#preview video, #preview .visio-preview__off")
    return page, frame


@pytest.mark.parametrize("live_stack", [TRANSCRIPTS_ALLOWED], indirect=True)
@pytest.mark.asyncio
async def test_a_member_in_the_widget_lets_a_guest_in_from_the_lobby_of_a_recorded_meeting(
    live_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    stack = live_stack
    screens = _screens(tmp_path)
    anne: Human = await stack.human("anne", "Anne")
    room = await stack.room_with_bot(anne)
    await anne.client.room_put_state(
        room, ROOM_CONFIG_EVENT, {"access": "lobby", "transcription": "on"}
    )
    _, slug = await start_meeting(anne, room)
    front_end = FrontEnd()
    await front_end.start()
    try:
        # The member, in the widget: told about the recording before joining.
        _, member = await _member_in_widget(stack, front_end, browser, anne, slug)
        assert i18n.text("fr", "page_recording") in await member.inner_text("#prejoin")
        await member.click("#join")
        await member.wait_for_selector("body[data-screen=call]", timeout=20000)

        # The guest: the recording notice, then the waiting room.
        context = await browser.new_context(
            viewport={"width": 1280, "height": 800}, locale="fr-FR", bypass_csp=True
        )
        zoe = await context.new_page()
        zoe.on("console", lambda message: print("[Zoé] console:", message.text))
        await zoe.goto(_local(stack, f"{stack.settings.public_url}/m/{slug}"))
        await zoe.wait_for_selector("#preview video")
        assert i18n.text("fr", "page_recording") in await zoe.inner_text("#prejoin")
        await _axe(zoe, "pre-join, recorded")
        await zoe.fill("#name", "Zoé")
        await zoe.click("#join")
        await zoe.wait_for_selector("body[data-screen=lobby]", timeout=10000)
        assert i18n.text("fr", "page_lobby_waiting") in await zoe.inner_text("#status")
        await _axe(zoe, "lobby waiting")
        await zoe.screenshot(path=str(screens / "lobby-1280.png"))

        # A member lets her in from the room.
        [lobby] = await anne.wait_for(room, lambda e: _lobby_notice(e, "Zoé"))
        content = {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": lobby["event_id"], "key": "✅"}
        }
        await anne.client.room_send(room, "m.reaction", content)
        await zoe.wait_for_selector("body[data-screen=call]", timeout=20000)

        # Each sees the other, by name.
        await _wait_tile(zoe, "Anne")
        await _wait_tile(member, _as_guest("Zoé"))
        await zoe.screenshot(path=str(screens / "call-member-guest-1280.png"))

        # The bridge's own participant records each microphone; the call's room metadata
        # says so as soon as it does, and the in-call banner follows it on every page.
        for page in (zoe, member):
            await page.wait_for_selector("#recording-banner", state="visible", timeout=10000)
            assert "Cette visio est enregistrée" in await page.inner_text("#recording-banner")
        # …and it is true: both microphones have their file.
        recordings = stack.workdir / "recordings"
        for _ in range(100):
            if len(list(recordings.glob("*.ogg"))) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(list(recordings.glob("*.ogg"))) == 2, list(recordings.iterdir())
        await _axe(zoe, "in call, recorded")
        await zoe.screenshot(path=str(screens / "call-recorded-1280.png"))

        # A second guest still waiting when the call ends is told so.
        small = await browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-FR")
        marc = await small.new_page()
        await marc.goto(_local(stack, f"{stack.settings.public_url}/m/{slug}"))
        await marc.wait_for_selector("#preview video")
        await marc.fill("#name", "Marc")
        await marc.click("#join")
        await marc.wait_for_selector("body[data-screen=lobby]", timeout=10000)
        await marc.screenshot(path=str(screens / "lobby-390.png"), full_page=True)
        await anne.wait_for(room, lambda e: _lobby_notice(e, "Marc"))

        await anne.send(room, "!visio end")
        await zoe.wait_for_selector("#end[data-kind=ended]", timeout=20000)
        await member.wait_for_selector("#end[data-kind=ended]", timeout=20000)
        await marc.wait_for_selector("body[data-screen=ended]", timeout=20000)
        # The page's own text (callpage/src/i18n.ts: lobbyEnded).
        assert "La visio est terminée" in await marc.inner_text("#status")
    finally:
        await front_end.stop()
    print("screenshots in", screens)
