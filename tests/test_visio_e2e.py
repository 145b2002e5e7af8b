"""`/visio` over a real Synapse: what a real client receives (the behaviour is in test_commands).

Only the wire format is checked here: the bot joining on invite, the status message's HTML,
the edit that ends it, and replies as `m.in_reply_to` relations.
"""

from __future__ import annotations

import re

import pytest
from harness import Stack

pytestmark = pytest.mark.synapse

LINK = re.compile(r"https://visio\.test/m/([a-z]{3}-[a-z]{4}-[a-z]{3})")


def _starts(event: dict) -> bool:
    return event["content"]["body"].startswith("Visio démarrée par")


def _reply_to(event: dict) -> str | None:
    relation = event["content"].get("m.relates_to", {})
    return relation.get("m.in_reply_to", {}).get("event_id")


def _edit_of(event: dict) -> str | None:
    relation = event["content"].get("m.relates_to", {})
    return relation.get("event_id") if relation.get("rel_type") == "m.replace" else None


async def test_bot_joins_on_invite_and_says_hello(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    [hello] = await alice.wait_for(room, lambda e: "!visio" in e["content"]["body"])
    assert hello["content"]["body"].startswith("Bonjour")
    assert hello["content"]["msgtype"] == "m.notice"


async def test_the_status_message_as_a_client_receives_it(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.send(room, "/visio")
    [status] = await alice.wait_for(room, _starts)
    content = status["content"]
    match = LINK.search(content["body"])
    assert match, content["body"]
    link = match.group(0)
    assert content["msgtype"] == "m.notice"
    assert content["body"] == f"Visio démarrée par Alice — rejoindre\u00a0: {link}"
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == (
        f'Visio démarrée par Alice — rejoindre\u00a0: <a href="{link}">{link}</a>'
    )
    assert _reply_to(status) is None
    # Ending it: the status message is edited (m.replace, with the HTML in m.new_content) and a
    # reply to it notifies the room.
    await alice.send(room, "!visio end")
    [edit] = await alice.wait_for(room, lambda e: _edit_of(e) == status["event_id"])
    new_content = edit["content"]["m.new_content"]
    assert new_content["body"].startswith("Visio terminée par Alice —")
    assert new_content["msgtype"] == "m.notice"
    assert new_content["format"] == "org.matrix.custom.html"
    [ended] = await alice.wait_for(room, lambda e: _reply_to(e) == status["event_id"])
    assert ended["content"]["body"] == new_content["body"]
    # A command's answer replies to the command.
    command = await alice.send(room, "!visio status")
    [answer] = await alice.wait_for(room, lambda e: _reply_to(e) == command)
    assert answer["content"]["body"].startswith("Aucune visio n\u2019est en cours")
