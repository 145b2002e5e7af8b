"""The application-service transaction endpoint, on the fast tier: hs_token, malformed bodies,
replays.

Transactions are PUT to the bridge's real HTTP route, as a homeserver sends them; what the
homeserver itself adds (delivery after a crash, outages) is in `test_transactions.py`, on Synapse.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from fast import ALICE, ROOM, FastBridge


def _command(event_id: str, body: str = "!visio") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": ROOM,
        "sender": ALICE,
        "type": "m.room.message",
        "origin_server_ts": 1_000_000,
        "content": {"msgtype": "m.text", "body": body},
    }


async def _put(
    fast: FastBridge, txn: str, body: object = None, *, token: str | None = "", data: bytes = b""
) -> tuple[int, dict[str, Any]]:
    """PUT a transaction; `token` "" is the right hs_token, None sends no Authorization."""
    url = f"{fast.base_url}/_matrix/app/v1/transactions/{txn}"
    token = fast.settings.appservice.hs_token if token == "" else token
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    payload: dict[str, Any] = {"data": data} if data else {"json": body}
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, headers=headers, **payload) as response,
    ):
        return response.status, await response.json()


def _starts(fast: FastBridge) -> list[str]:
    return [body for body in fast.notices(ROOM) if body.startswith("Visio démarrée par")]


async def _count(fast: FastBridge, query: str, *args: object) -> int:
    return int(await fast.running.db.fetchval(query, *args))


async def test_a_wrong_or_missing_hs_token_is_refused_and_nothing_is_processed(
    fast: FastBridge,
) -> None:
    body = {"events": [_command("$forged")]}
    status, error = await _put(fast, "t-missing", body, token=None)
    assert (status, error["errcode"]) == (401, "M_UNAUTHORIZED")
    status, error = await _put(fast, "t-wrong", body, token="not-the-hs-token")
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    await fast.settle()
    assert await _count(fast, "SELECT COUNT(*) FROM inbox") == 0
    assert await _count(fast, "SELECT COUNT(*) FROM appservice_txns") == 0
    assert fast.matrix.sent == []
    assert fast.livekit.calls("CreateRoom") == []


async def test_the_right_hs_token_gets_the_command_answered(fast: FastBridge) -> None:
    # What the refusals above are measured against: the same event with the right token.
    assert await _put(fast, "t-right", {"events": [_command("$genuine")]}) == (200, {})
    await fast.settle()
    assert len(_starts(fast)) == 1
    assert len(fast.livekit.calls("CreateRoom")) == 1


async def test_malformed_transactions_get_matrix_errors_and_are_not_acknowledged(
    fast: FastBridge,
) -> None:
    status, error = await _put(fast, "bad", data=b"{not json")
    assert (status, error["errcode"]) == (400, "M_NOT_JSON")
    status, error = await _put(fast, "bad", {"events": "nope"})
    assert (status, error["errcode"]) == (400, "M_BAD_JSON")
    status, error = await _put(fast, "bad", ["not", "an", "object"])
    assert (status, error["errcode"]) == (400, "M_BAD_JSON")
    assert await _count(fast, "SELECT COUNT(*) FROM appservice_txns") == 0
    # Not recorded, so the same transaction id sent properly is taken and handled.
    assert await _put(fast, "bad", {"events": [_command("$fixed")]}) == (200, {})
    await fast.settle()
    assert len(_starts(fast)) == 1


async def test_a_replayed_transaction_and_a_repeated_event_are_handled_once(
    fast: FastBridge,
) -> None:
    event = _command("$replayed-command")
    for txn in ("txn-a", "txn-a", "txn-b"):  # a retried txn, then the event again in a new one
        assert await _put(fast, txn, {"events": [event]}) == (200, {})
        await fast.settle()
    [start] = fast.notices(ROOM)  # and no "a call is already on" either
    assert start.startswith("Visio démarrée par Alice")
    assert len(fast.livekit.calls("CreateRoom")) == 1
    assert await _count(fast, "SELECT COUNT(*) FROM appservice_txns") == 2
    rows = await fast.running.db.fetch("SELECT event_id, state FROM inbox")
    assert [(row["event_id"], row["state"]) for row in rows] == [("$replayed-command", "done")]


async def test_a_transactions_events_are_handled_in_order(fast: FastBridge) -> None:
    events = [_command("$start"), _command("$status", "!visio status")]
    assert await _put(fast, "txn-pair", {"events": events}) == (200, {})
    await fast.settle()
    [start, status] = fast.notices(ROOM)
    assert start.startswith("Visio démarrée par Alice")
    assert status.startswith("Visio en cours depuis")
    assert [sent.body for sent in fast.matrix.replies_to("$status")] == [status]


async def test_a_reused_transaction_id_with_new_events_loses_none_of_them(
    fast: FastBridge,
) -> None:
    assert await _put(fast, "1", {"events": [_command("$before", "!visio status")]}) == (200, {})
    await fast.settle()
    # The homeserver restarted and numbers its transactions from 1 again.
    assert await _put(fast, "1", {"events": [_command("$after-restart")]}) == (200, {})
    await fast.settle()
    assert len(_starts(fast)) == 1
