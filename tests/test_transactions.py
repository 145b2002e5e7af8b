"""The homeserver-facing edge: hs_token checks, replays, crashes after the ack, outages."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from harness import Human, Stack

from appservice.wiring import Options

pytestmark = pytest.mark.synapse


def _starts(event: dict) -> bool:
    return event["content"]["body"].startswith("Visio démarrée par")


async def _put(stack: Stack, txn: str, body: object, token: str | None) -> aiohttp.ClientResponse:
    url = f"{stack.settings.appservice.address}/_matrix/app/v1/transactions/{txn}"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session:
        async with session.put(url, json=body, headers=headers) as response:
            await response.read()
            return response


def _command_event(room: str, sender: str, event_id: str) -> dict:
    return {
        "event_id": event_id,
        "room_id": room,
        "sender": sender,
        "type": "m.room.message",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": "!visio"},
    }


async def test_wrong_or_missing_hs_token_is_refused_and_nothing_is_processed(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    body = {"events": [_command_event(room, alice.user_id, "$forged")]}
    assert (await _put(stack, "t-missing", body, None)).status == 401
    assert (await _put(stack, "t-wrong", body, "not-the-hs-token")).status == 403
    # The right token in the query string is accepted (older homeservers send it that way).
    address = stack.settings.appservice.address
    query = f"{address}/_matrix/app/v1/transactions/t-query?access_token="
    async with aiohttp.ClientSession() as session:
        async with session.put(query + "wrong", json={"events": []}) as response:
            assert response.status == 403
        hs_token = stack.settings.appservice.hs_token
        async with session.put(query + hs_token, json={"events": []}) as response:
            assert response.status == 200
    stored = await stack.running.db.fetchval("SELECT COUNT(*) FROM inbox WHERE event_id='$forged'")
    assert stored == 0
    await asyncio.sleep(0.5)
    assert [e for e in await alice.bot_notices(room) if _starts(e)] == []
    assert stack.livekit.calls("CreateRoom") == []


async def test_malformed_transactions_get_matrix_errors(stack: Stack) -> None:
    token = stack.settings.appservice.hs_token
    url = f"{stack.settings.appservice.address}/_matrix/app/v1/transactions/bad"
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.put(url, data=b"{not json", headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["errcode"] == "M_NOT_JSON"
        async with session.put(url, json={"events": "nope"}, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["errcode"] == "M_BAD_JSON"


async def test_replayed_transaction_and_repeated_event_are_handled_once(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    token = stack.settings.appservice.hs_token
    event = _command_event(room, alice.user_id, "$replayed-command")
    for txn in ("txn-a", "txn-a", "txn-b"):  # a retried txn, then the event again in a new one
        response = await _put(stack, txn, {"events": [event]}, token)
        assert response.status == 200
    await alice.wait_for(room, _starts)
    await asyncio.sleep(1.0)  # give a duplicate every chance to show up
    assert len([e for e in await alice.bot_notices(room) if _starts(e)]) == 1
    assert len(stack.livekit.calls("CreateRoom")) == 1


async def _wait_stored(stack: Stack, event_id: str) -> None:
    """Wait until the homeserver delivered `event_id` and the bridge acknowledged it."""
    deadline = time.monotonic() + 10
    query = "SELECT state FROM inbox WHERE event_id=$1"
    while await stack.running.db.fetchval(query, event_id) != "pending":
        assert time.monotonic() < deadline, "the homeserver never delivered the command"
        await asyncio.sleep(0.05)


async def _acknowledged_not_handled(stack: Stack) -> tuple[Human, str, str]:
    """`!visio` acknowledged by a bridge that then stops before handling it (a crash)."""
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await stack.stop_bridge()
    await stack.start_bridge(Options(process_inbox=False))
    command = await alice.send(room, "!visio")
    await _wait_stored(stack, command)
    await stack.stop_bridge()
    return alice, room, command


async def test_crash_after_ack_replays_from_the_inbox(stack: Stack) -> None:
    alice, room, _ = await _acknowledged_not_handled(stack)
    assert stack.livekit.calls("CreateRoom") == []
    # Restarted, it finds the acknowledged command and answers it, once.
    await stack.start_bridge()
    await alice.wait_for(room, _starts)
    await asyncio.sleep(0.5)
    assert len([e for e in await alice.bot_notices(room) if _starts(e)]) == 1
    assert len(stack.livekit.calls("CreateRoom")) == 1


async def test_homeserver_outage_delays_the_answer_but_loses_nothing(stack: Stack) -> None:
    alice, room, command = await _acknowledged_not_handled(stack)
    await stack.synapse.stop()
    # The bridge starts while the homeserver is down: sending the answer fails and is retried.
    await stack.start_bridge(
        Options(retry_base_delay_ms=200, retry_max_delay_ms=1000, max_attempts=100)
    )
    await asyncio.sleep(1.0)
    state = await stack.running.db.fetchval("SELECT state FROM inbox WHERE event_id=$1", command)
    assert state == "pending"
    await stack.synapse.start()
    await alice.wait_for(room, _starts, timeout=20)
    assert len(stack.livekit.calls("CreateRoom")) == 1
