"""The internet-facing HTTP edge under hostile input: bodies, JSON and tokens it must survive.

Each route answers a clear 4xx, never a 500: a 500 on the transaction route is retried by the
homeserver forever and blocks every transaction after it. Bodies are capped while they are
read, so a chunked body (no Content-Length) is held to the same limit as a declared one. The
bridge is served here as in production (`build_app`'s 16 MiB `client_max_size`), so aiohttp's
own whole-app limit does not stand in for the per-route ones.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from fast import ALICE, ROOM, FastBridge
from livekit.api import AccessToken

from appservice.app import BRIDGE, add_routes
from appservice.http.join_page import MAX_FORM_BYTES
from appservice.http.transactions import MAX_TRANSACTION_BYTES
from appservice.http.webhook_api import MAX_WEBHOOK_BYTES
from appservice.local.ports import free_port

HS_TOKEN = "hs-token-fast"
AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
PRODUCTION_CLIENT_MAX_SIZE = 16 * 1024 * 1024  # as appservice.app.build_app


@pytest.fixture
async def edge(fast: FastBridge) -> AsyncIterator[str]:
    """The running bridge's routes on a second port, with production's app-wide body limit."""
    app = web.Application(client_max_size=PRODUCTION_CLIENT_MAX_SIZE)
    app[BRIDGE] = fast.running
    add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _chunked(total: int, chunk: bytes = b" " * 65536) -> AsyncIterator[bytes]:
    """`total` bytes sent without a Content-Length (aiohttp then uses chunked encoding)."""
    sent = 0
    while sent < total:
        yield chunk
        sent += len(chunk)


async def _put_txn(
    base: str, txn: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object] | str]:
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{base}/_matrix/app/v1/transactions/{txn}",
            data=body,
            headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)},
        ) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


def _command(event_id: str, body: str = "!visio") -> str:
    return (
        f'{{"event_id": "{event_id}", "room_id": "{ROOM}", "sender": "{ALICE}", '
        f'"type": "m.room.message", "origin_server_ts": 1, '
        f'"content": {{"msgtype": "m.text", "body": "{body}"}}}}'
    )


async def _inbox_ids(fast: FastBridge) -> list[str]:
    rows = await fast.running.db.fetch("SELECT event_id FROM inbox ORDER BY seq")
    return [row["event_id"] for row in rows]


# ---------------------------------------------------------------- transactions: JSON


async def test_deeply_nested_json_is_refused_as_not_json(fast: FastBridge) -> None:
    body = b'{"events": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    status, answer = await _put_txn(fast.base_url, "deep", body)
    assert status == 400
    assert isinstance(answer, dict) and answer["errcode"] == "M_NOT_JSON"
    assert await _inbox_ids(fast) == []


async def test_undecodable_bodies_are_refused(fast: FastBridge) -> None:
    bodies = (
        b'{"events": ["\xff"]}',
        b"\xef\xbb\xbf{}",
        b'{"events": [1e999999]}',
        b'{"events": [], "x": NaN}',
        b'{"events": [-Infinity]}',
        b'{"events": [' + b"9" * 5000 + b"]}",
    )
    for body in bodies:
        status, answer = await _put_txn(fast.base_url, "bad", body)
        assert status == 400, body
        assert isinstance(answer, dict) and answer["errcode"] == "M_NOT_JSON"


async def test_malformed_events_are_dropped_and_the_rest_is_stored(fast: FastBridge) -> None:
    """One bad event must not hold back the good ones beside it, nor the transactions after."""
    deep = '{"a": ' * 200 + "1" + "}" * 200
    events = [
        _command("$good"),
        _command("$surrogate", body="\\ud800"),
        '{"event_id": "$room-not-string", "room_id": {"x": 1}, "sender": "@a:b", "type": "t"}',
        '{"event_id": ["$id-not-string"], "room_id": "!r:b", "sender": "@a:b", "type": "t"}',
        '{"event_id": "$nul\\u0000", "room_id": "!r:b", "sender": "@a:b", "type": "t"}',
        '{"event_id": "$content-not-object", "room_id": "!r:b", "sender": "@a:b", '
        '"type": "t", "content": "x"}',
        '{"event_id": "$sender-not-string", "room_id": "!r:b", "sender": 5, "type": "t"}',
        f'{{"event_id": "$too-deep", "room_id": "!r:b", "sender": "@a:b", "type": "t", '
        f'"content": {deep}}}',
        '{"event_id": "$key-surrogate", "room_id": "!r:b", "sender": "@a:b", "type": "t", '
        '"content": {"\\udfff": 1}}',
        '"not an event"',
    ]
    body = ('{"events": [' + ", ".join(events) + "]}").encode()
    status, answer = await _put_txn(fast.base_url, "mixed", body)
    assert (status, answer) == (200, {})
    assert await _inbox_ids(fast) == ["$good"]
    await fast.settle()
    assert any(n.startswith("Visio démarrée par Alice") for n in fast.notices())
    # The next transaction goes through as usual.
    status, _ = await _put_txn(
        fast.base_url, "next", ('{"events": [' + _command("$next") + "]}").encode()
    )
    assert status == 200
    assert await _inbox_ids(fast) == ["$good", "$next"]


async def test_an_unusable_transaction_id_is_refused(fast: FastBridge) -> None:
    for txn in ("%00", "x" * 300):  # a NUL is refused by PostgreSQL TEXT: a 500 forever
        status, answer = await _put_txn(fast.base_url, txn, b'{"events": []}')
        assert status == 400, txn
        assert isinstance(answer, dict) and answer["errcode"] == "M_INVALID_PARAM"


# ---------------------------------------------------------------- transactions: auth


async def test_the_hs_token_is_accepted_only_in_the_authorization_header(
    fast: FastBridge,
) -> None:
    """A token in the query string ends up in proxy logs: the spec now wants the header only."""
    query = f"{fast.base_url}/_matrix/app/v1/transactions/q?access_token={HS_TOKEN}"
    async with aiohttp.ClientSession() as session:
        async with session.put(query, json={"events": []}) as response:
            assert response.status == 401
        ping = f"{fast.base_url}/_matrix/app/v1/ping?access_token={HS_TOKEN}"
        async with session.post(ping, json={}) as response:
            assert response.status == 401
        async with session.post(ping.split("?")[0], json={}, headers=AUTH) as response:
            assert response.status == 200
    status, _ = await _put_txn(fast.base_url, "h", b'{"events": []}')
    assert status == 200


# ---------------------------------------------------------------- body caps


async def test_a_chunked_transaction_over_the_cap_is_refused(edge: str, fast: FastBridge) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{edge}/_matrix/app/v1/transactions/big",
            data=_chunked(MAX_TRANSACTION_BYTES + 65536),
            headers=AUTH,
        ) as response,
    ):
        assert response.status == 413
        assert (await response.json())["errcode"] == "M_TOO_LARGE"
    assert await _inbox_ids(fast) == []


async def test_a_chunked_webhook_over_the_cap_is_refused(edge: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{edge}/livekit/webhook", data=_chunked(2 * MAX_WEBHOOK_BYTES)) as response,
    ):
        assert response.status == 413


async def _open_slug(fast: FastBridge) -> str:
    await fast.say("!visio")
    found = [re.search(r"/m/([a-z0-9-]+)", body) for body in fast.notices()]
    [slug] = [match.group(1) for match in found if match]
    return slug


async def test_a_chunked_join_form_over_the_cap_is_refused(edge: str, fast: FastBridge) -> None:
    slug = await _open_slug(fast)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{edge}/m/{slug}",
            data=_chunked(4 * MAX_FORM_BYTES, b"name=" + b"a" * 1000),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
        ) as response,
    ):
        assert response.status == 413


# ---------------------------------------------------------------- join page and webhook input


async def test_a_join_form_that_is_not_utf8_asks_again(fast: FastBridge) -> None:
    slug = await _open_slug(fast)
    async with aiohttp.ClientSession() as session:
        for body in (b"name=\xff\xfe", b"name=%ED%A0%80", b"name=" + b"[" * 3000):
            async with session.post(
                f"{fast.base_url}/m/{slug}",
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                allow_redirects=False,
            ) as response:
                assert response.status == 400, body  # the form again, "enter a name"
        # An ordinary form still works.
        async with session.post(
            f"{fast.base_url}/m/{slug}", data={"name": "Zoé"}, allow_redirects=False
        ) as response:
            assert response.status == 303


def _signed(fast: FastBridge, body: bytes) -> dict[str, str]:
    """Headers LiveKit would send with `body` (a JWT over its SHA-256), so parsing is reached."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = (
        AccessToken(fast.livekit.api_key, fast.livekit.api_secret)
        .with_sha256(digest)
        .with_ttl(datetime.timedelta(minutes=5))
        .to_jwt()
    )
    return {"Authorization": token, "Content-Type": "application/webhook+json"}


async def test_hostile_webhook_bodies_get_a_4xx_not_a_500(fast: FastBridge) -> None:
    bodies = [
        b"[" * 3000 + b"]" * 3000,
        b'{"event": "room_started", "id": "EV_x", "room": {"name": "\\ud800"}}',
        b'{"event": "room_started", "id": "\\ud800"}',
        b"\xff\xfe",
        b"",
    ]
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            async with session.post(
                f"{fast.base_url}/livekit/webhook", data=body, headers=_signed(fast, body)
            ) as response:
                assert 400 <= response.status < 500, body
