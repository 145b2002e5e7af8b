"""Transactions from real Synapse: a crash after the acknowledgement, a homeserver outage.

What needs no homeserver (hs_token checks, malformed bodies, replayed transaction ids) is in
`test_transaction_endpoint.py`, on the fast tier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from harness import Human, Stack

from appservice.wiring import Options

pytestmark = pytest.mark.synapse


def _starts(event: dict) -> bool:
    return event["content"]["body"].startswith("Visio démarrée par")


def _replies_to(event: dict, event_id: str) -> bool:
    relation = event["content"].get("m.relates_to", {})
    return bool(relation.get("m.in_reply_to", {}).get("event_id") == event_id)


async def _wait_inbox(
    stack: Stack, event_id: str, condition: Callable[[str, int], bool], what: str
) -> None:
    """Wait (bounded) until `condition(state, attempts)` holds for the inbox row of `event_id`."""
    deadline = time.monotonic() + 10
    query = "SELECT state, attempts FROM inbox WHERE event_id=$1"
    while True:
        row = await stack.running.db.fetchrow(query, event_id)
        if row is not None and condition(row["state"], row["attempts"]):
            return
        assert time.monotonic() < deadline, f"timed out waiting until {what}; last: {row}"
        await asyncio.sleep(0.05)


async def _wait_stored(stack: Stack, event_id: str) -> None:
    """Wait until the homeserver delivered `event_id` and the bridge acknowledged it."""
    await _wait_inbox(
        stack, event_id, lambda state, _: state == "pending", "the homeserver delivered it"
    )


async def _answered_then_nothing_more(human: Human, room: str) -> None:
    """Send a later command and wait for its answer: the inbox handles a room's events in
    order, so once it is answered, nothing sent before it is still on its way."""
    sentinel = await human.send(room, "!visio status")
    await human.wait_for(room, lambda e: _replies_to(e, sentinel))


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
    alice, room, command = await _acknowledged_not_handled(stack)
    assert stack.livekit.calls("CreateRoom") == []
    # Restarted, it finds the acknowledged command and answers it, once.
    await stack.start_bridge()
    await alice.wait_for(room, _starts)
    await _answered_then_nothing_more(alice, room)
    assert len([e for e in await alice.bot_notices(room) if _starts(e)]) == 1
    assert len(stack.livekit.calls("CreateRoom")) == 1
    state = await stack.running.db.fetchval("SELECT state FROM inbox WHERE event_id=$1", command)
    assert state == "done"


async def test_homeserver_outage_delays_the_answer_but_loses_nothing(stack: Stack) -> None:
    alice, room, command = await _acknowledged_not_handled(stack)
    await stack.synapse.stop()
    # The bridge starts while the homeserver is down: sending the answer fails and is retried.
    await stack.start_bridge(
        Options(retry_base_delay_ms=200, retry_max_delay_ms=1000, max_attempts=100)
    )
    # Tried, failed and kept for later, twice over: not given up on, not marked done.
    await _wait_inbox(
        stack,
        command,
        lambda state, attempts: state == "pending" and attempts >= 2,
        "the command failed twice",
    )
    await stack.synapse.start()
    await alice.wait_for(room, _starts, timeout=20)
    await _answered_then_nothing_more(alice, room)
    await _wait_inbox(stack, command, lambda state, _: state == "done", "the command was handled")
    assert len([e for e in await alice.bot_notices(room) if _starts(e)]) == 1
    assert len(stack.livekit.calls("CreateRoom")) == 1


async def test_the_bot_still_hears_after_synapse_restarts(stack: Stack) -> None:
    # Synapse on SQLite numbers its transactions from 1 again after a restart: the bridge
    # must not take the new ones for retries of those it already has.
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await _answered_then_nothing_more(alice, room)
    for _ in range(2):
        await stack.synapse.stop()
        await stack.synapse.start()
        await alice.client.sync(timeout=0)  # the client notices the server came back
        await _answered_then_nothing_more(alice, room)
    await alice.send(room, "!visio")
    await alice.wait_for(room, _starts, timeout=20)
