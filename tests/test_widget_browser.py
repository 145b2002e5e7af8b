"""The meeting as a widget, in a real browser: headless Chromium plays the Matrix client's widget
host, the widget page signs the member in with `get_openid`, and lands on the meeting front end."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import nio
import pytest
from aiohttp import web
from harness import BOT, Human, Stack
from livekit.api import TokenVerifier
from livekit_double import LiveKitDouble
from test_member_join_e2e import openid_token

from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.widgets import WIDGET_EVENT, WIDGET_ID

CHROMIUM = shutil.which("chromium")
playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.synapse,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]

# What a Matrix client does around a widget iframe, reduced to the widget API messages it sends.
HOST_PAGE = """<!doctype html><html><body>
<iframe id="widget" src="__URL__" style="width:600px;height:400px"></iframe>
<script>
const openid = __OPENID__;
const frame = document.getElementById("widget");
let asked = false;
function askCapabilities() {
  if (asked) return;
  asked = true;
  frame.contentWindow.postMessage(
    {api: "toWidget", widgetId: "__WIDGET_ID__", requestId: "host-1", action: "capabilities",
     data: {}}, "*");
}
window.addEventListener("message", (event) => {
  const message = event.data;
  if (message.api !== "fromWidget") return;
  if (message.action === "content_loaded") {
    frame.contentWindow.postMessage({...message, response: {}}, "*");
    askCapabilities();
  } else if (message.action === "get_openid") {
    frame.contentWindow.postMessage({...message, response: {state: "allowed", ...openid}}, "*");
  }
});
</script></body></html>"""


class FrontEnd:
    """Stands in for the meeting front end and for the client page hosting the widget."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.host_pages: dict[str, str] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/meet", self._meet)
        app.router.add_get("/host/{name}", self._host)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _meet(self, request: web.Request) -> web.Response:
        self.tokens.append(request.query["token"])
        return web.Response(text="<p>meeting front end</p>", content_type="text/html")

    async def _host(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.host_pages[request.match_info["name"]], content_type="text/html"
        )


@pytest.fixture
async def front_end() -> AsyncIterator[FrontEnd]:
    served = FrontEnd()
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
async def widget_stack(
    tmp_path: Path, livekit: LiveKitDouble, front_end: FrontEnd
) -> AsyncIterator[Stack]:
    overrides = {"livekit": {"frontend_url": front_end.url + "/meet?token={token}"}}
    async with Stack(tmp_path, livekit, config_overrides=overrides) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        await launched.close()


async def _room_with_widget(stack: Stack, admin: Human) -> str:
    room = await stack.room_with_bot(admin)
    levels = await admin.client.room_get_state_event(room, "m.room.power_levels")
    assert isinstance(levels, nio.RoomGetStateEventResponse)
    content = dict(levels.content)
    content["users"] = {**content["users"], BOT: 50}
    await admin.client.room_put_state(room, "m.room.power_levels", content)
    await admin.client.room_put_state(room, ROOM_CONFIG_EVENT, {"widget": "pinned"})
    return room


async def _widget_state(human: Human, room: str) -> dict[str, Any]:
    response = await human.client.room_get_state_event(room, WIDGET_EVENT, WIDGET_ID)
    return dict(response.content) if isinstance(response, nio.RoomGetStateEventResponse) else {}


async def _wait_widget(human: Human, room: str, present: bool) -> dict[str, Any]:
    for _ in range(100):
        content = await _widget_state(human, room)
        if bool(content) is present:
            return content
        await asyncio.sleep(0.1)
    raise AssertionError(f"widget present={not present} still")


def _direct(stack: Stack, widget: dict[str, Any]) -> str:
    """The widget URL with the public URL (a reverse proxy in production) made the bridge's own."""
    return str(widget["url"]).replace(stack.settings.public_url, stack.settings.appservice.address)


def _client_url(template: str, human: Human, room: str) -> str:
    """Fill in the widget URL's variables, as the Matrix client does."""
    values = {
        "$matrix_user_id": human.user_id,
        "$matrix_display_name": "Anne",
        "$matrix_room_id": room,
        "$matrix_widget_id": WIDGET_ID,
        "$org.matrix.msc2873.client_language": "fr",
    }
    for variable, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        template = template.replace(variable, quote(value, safe=""))
    return template


async def _open_in_browser(
    stack: Stack, front_end: FrontEnd, browser: Any, human: Human, room: str, widget_url: str
) -> Any:
    openid = await openid_token(stack, human)
    name = human.user_id.strip("@").split(":")[0]
    front_end.host_pages[name] = (
        HOST_PAGE.replace("__URL__", _client_url(widget_url, human, room))
        .replace("__OPENID__", json.dumps(openid))
        .replace("__WIDGET_ID__", WIDGET_ID)
    )
    page = await browser.new_page()
    page.on("console", lambda message: print("browser console:", message.text))
    await page.goto(f"{front_end.url}/host/{name}")
    return page


@pytest.mark.asyncio
async def test_member_joins_through_the_widget(
    widget_stack: Stack, front_end: FrontEnd, browser: Any
) -> None:
    stack = widget_stack
    anne = await stack.human("anne", "Anne")
    room = await _room_with_widget(stack, anne)
    await anne.send(room, "!visio")
    widget = await _wait_widget(anne, room, present=True)
    assert widget["type"] == "m.custom" and "$matrix_user_id" in widget["url"]
    for _ in range(50):  # the layout is written right after the widget
        layout = await anne.client.room_get_state_event(room, "io.element.widgets.layout")
        if isinstance(layout, nio.RoomGetStateEventResponse):
            break
        await asyncio.sleep(0.1)
    assert isinstance(layout, nio.RoomGetStateEventResponse)
    assert layout.content["widgets"][WIDGET_ID]["container"] == "top"

    page = await _open_in_browser(stack, front_end, browser, anne, room, _direct(stack, widget))
    for _ in range(100):
        if front_end.tokens:
            break
        await asyncio.sleep(0.1)
    assert front_end.tokens, [await frame.content() for frame in page.frames]
    claims = TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(
        front_end.tokens[0]
    )
    assert claims.identity == anne.user_id and claims.name == "Anne"
    assert claims.video.room.startswith("visio-") and claims.video.room_admin
    # The front end got the request; the iframe's navigation may still be finishing.
    for _ in range(100):
        frame_url = urlparse(page.frames[1].url)
        if frame_url.path == "/meet":
            break
        await asyncio.sleep(0.1)
    assert frame_url.path == "/meet" and parse_qs(frame_url.query)["token"]

    await anne.send(room, "!visio end")
    await _wait_widget(anne, room, present=False)


@pytest.mark.asyncio
async def test_a_non_member_sees_forbidden_in_the_widget(
    widget_stack: Stack, front_end: FrontEnd, browser: Any
) -> None:
    stack = widget_stack
    anne = await stack.human("anne", "Anne")
    mallory = await stack.human("mallory", "Mallory")
    room = await _room_with_widget(stack, anne)
    await anne.send(room, "!visio")
    widget = await _wait_widget(anne, room, present=True)
    page = await _open_in_browser(stack, front_end, browser, mallory, room, _direct(stack, widget))
    frame = page.frames[1]
    await frame.wait_for_selector("text=M_FORBIDDEN", timeout=15000)
    assert "pas membre du salon" in await frame.inner_text("#status")
    assert front_end.tokens == []


@pytest.mark.asyncio
async def test_a_guest_waits_in_the_lobby_page_until_let_in(
    widget_stack: Stack, front_end: FrontEnd, browser: Any
) -> None:
    stack = widget_stack
    anne = await stack.human("anne", "Anne")
    room = await stack.room_with_bot(anne)
    await anne.client.room_put_state(room, ROOM_CONFIG_EVENT, {"access": "lobby"})
    await anne.send(room, "!visio")
    [status] = await anne.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    link = status["content"]["body"].split("rejoindre\u00a0: ")[1]
    page = await browser.new_page(locale="fr-FR")
    await page.goto(link.replace(stack.settings.public_url, stack.settings.appservice.address))
    await page.fill("#name", "Zoé")
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=Un membre du salon va vous faire entrer")
    [lobby] = await anne.wait_for(room, lambda e: "demande à entrer" in e["content"]["body"])
    content = {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": lobby["event_id"], "key": "✅"}
    }
    await anne.client.room_send(room, "m.reaction", content)
    await page.wait_for_url(re.compile(r".*/meet\?token=.*"), timeout=15000)
    claims = TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(
        front_end.tokens[-1]
    )
    assert claims.name == "Zoé (personne invitée)" and claims.identity.startswith("guest-")
