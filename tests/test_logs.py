"""Logs: text or JSON lines, the room and meeting in each where known, never a token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fast import ROOM, FastBridge

from appservice.logs import log_context, log_handler

HS_TOKEN = "hs-token-that-is-long-and-secret-0123456789"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJndWVzdC0xIiwidmlkZW8iOnsicm9vbSI6In0"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)
MATRIX_TOKEN = "syt_YWxpY2U_RkSgAbCdEfGhIjKlMnOp_0ZCYiK"


class Capture:
    def __init__(self, fmt: str) -> None:
        self.stream = io.StringIO()
        self.handler = log_handler(fmt, secrets=[HS_TOKEN], stream=self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def json_lines(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]


@pytest.fixture(params=["text", "json"])
def capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    captured = Capture(request.param)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.DEBUG)
    yield captured
    root.removeHandler(captured.handler)
    root.setLevel(old_level)


def test_no_token_reaches_a_line(capture: Capture) -> None:
    log = logging.getLogger("visio.test")
    log.info("configured with %s", HS_TOKEN)
    log.info("LiveKit token %s minted", JWT)
    log.warning("GET https://hs.test/_matrix/client/v3/sync?since=s1&access_token=%s", MATRIX_TOKEN)
    log.info("headers: %r", {"Authorization": f"Bearer {MATRIX_TOKEN}"})
    log.info("body %s", json.dumps({"access_token": "opaque-openid-token", "expires_in": 3600}))
    log.info("join link https://meet.test/custom?liveKitUrl=wss://lk&token=%s", JWT)
    try:
        raise RuntimeError(f"request failed: {HS_TOKEN}")
    except RuntimeError:
        log.exception("something broke with %s", MATRIX_TOKEN)
    text = capture.text
    for secret in (HS_TOKEN, JWT, MATRIX_TOKEN, "opaque-openid-token", JWT.split(".")[1]):
        assert secret not in text
    assert text.count("***") >= 8
    assert "expires_in" in text  # what is not a secret stays readable
    assert "RuntimeError: request failed: ***" in text


def test_json_lines_are_one_object_each() -> None:
    capture = Capture("json")
    log = logging.getLogger("visio.test.json")
    log.addHandler(capture.handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info('a "quoted" line\nwith a second line')
    log.removeHandler(capture.handler)
    [entry] = capture.json_lines()
    assert entry["level"] == "INFO"
    assert entry["logger"] == "visio.test.json"
    assert entry["message"] == 'a "quoted" line\nwith a second line'
    assert entry["time"].endswith("Z")


def test_the_context_is_in_every_line_inside_it(capture: Capture) -> None:
    log = logging.getLogger("visio.test")
    with log_context(room="!r:test", meeting="visio-abc-defg-hij"):
        log.info("inside")
    log.info("outside")
    inside, outside = capture.text.splitlines()
    assert "!r:test" in inside
    assert "visio-abc-defg-hij" in inside
    assert "!r:test" not in outside


async def test_inbox_and_webhook_lines_name_the_room_and_the_meeting(fast: FastBridge) -> None:
    captured = Capture("json")
    root = logging.getLogger()
    root.addHandler(captured.handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        await fast.say("!visio")
    finally:
        root.removeHandler(captured.handler)
        root.setLevel(old_level)
    lines = captured.json_lines()
    command = [line for line in lines if "visio start" in line["message"]]
    assert command
    assert command[0]["room"] == ROOM
    assert command[0]["event"].startswith("$in")
    [slug] = await fast.running.db.fetch("SELECT livekit_room FROM meetings")
    webhook_lines = [line for line in lines if line.get("meeting") == slug["livekit_room"]]
    assert webhook_lines, lines
