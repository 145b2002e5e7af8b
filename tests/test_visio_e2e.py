"""`/visio` end to end: a person on a real Synapse, the bridge, and the LiveKit double."""

from __future__ import annotations

import asyncio
import re

import pytest
from harness import BOT, Stack

pytestmark = pytest.mark.synapse

LINK = re.compile(r"https://visio\.test/m/([a-z]{3}-[a-z]{4}-[a-z]{3})")


def _starts(event: dict) -> bool:
    return event["content"]["body"].startswith("Visio démarrée par")


def _slug(event: dict) -> str:
    match = LINK.search(event["content"]["body"])
    assert match, event["content"]["body"]
    return match.group(1)


async def test_bot_joins_on_invite_and_says_hello(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    [hello] = await alice.wait_for(room, lambda e: "!visio" in e["content"]["body"])
    assert hello["content"]["body"].startswith("Bonjour")


async def test_slash_visio_posts_a_link_in_french_with_html(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    command = await alice.send(room, "/visio")
    [status] = await alice.wait_for(room, _starts)
    content = status["content"]
    slug = _slug(status)
    assert content["body"] == f"Visio démarrée par Alice — rejoindre : https://visio.test/m/{slug}"
    assert f'<a href="https://visio.test/m/{slug}">' in content["formatted_body"]
    assert content["format"] == "org.matrix.custom.html"
    # One LiveKit room, named after the slug, with Element Call's timeouts.
    [create] = stack.livekit.calls("CreateRoom")
    assert create.request.name == f"visio-{slug}"
    assert create.request.empty_timeout == 300
    assert f"visio-{slug}" in stack.livekit.rooms
    # No token or secret in the room, only the slug.
    assert "token" not in content["body"].lower()
    assert command  # the command itself stays in the room


@pytest.mark.parametrize(
    "typed", ["!visio", "!VISIO start", "//visio", "Visio: visio", "visio: visio"]
)
async def test_other_ways_of_typing_the_command(stack: Stack, typed: str) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.send(room, typed)
    await alice.wait_for(room, _starts)
    assert len(stack.livekit.calls("CreateRoom")) == 1


async def test_mention_pill_with_m_mentions(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.send(
        room,
        "Visio bot: visio",
        format="org.matrix.custom.html",
        formatted_body=f'<a href="https://matrix.to/#/{BOT}">Visio bot</a>: visio',
        **{"m.mentions": {"user_ids": [BOT]}},
    )
    await alice.wait_for(room, _starts)


async def test_second_visio_gives_the_same_link_and_no_second_room(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    bob = await stack.human("bob", "Bob")
    room = await stack.room_with_bot(alice)
    await alice.client.room_invite(room, bob.user_id)
    await bob.client.join(room)
    await alice.send(room, "/visio")
    [status] = await alice.wait_for(room, _starts)
    await bob.send(room, "!visio")
    [again] = await bob.wait_for(room, lambda e: "déjà en cours" in e["content"]["body"])
    assert _slug(again) == _slug(status)
    assert "démarrée par Alice" in again["content"]["body"]
    assert len(stack.livekit.calls("CreateRoom")) == 1


async def test_end_by_starter_deletes_room_and_edits_status(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.send(room, "!visio")
    [status] = await alice.wait_for(room, _starts)
    await alice.send(room, "!visio end")
    [ended] = await alice.wait_for(room, lambda e: _ended_by(e, "Alice") and _is_reply(e))
    assert ended["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == status["event_id"]
    assert ended["content"]["body"].endswith(
        "Visio terminée par Alice — moins d'une minute, 0 participant."
    )
    [delete] = stack.livekit.calls("DeleteRoom")
    assert delete.request.room == f"visio-{_slug(status)}"
    [edit] = await alice.wait_for(room, lambda e: _edit_of(e) == status["event_id"])
    assert edit["content"]["m.new_content"]["body"].startswith("Visio terminée par Alice —")
    await alice.send(room, "!visio status")
    await alice.wait_for(room, lambda e: e["content"]["body"].startswith("Aucune visio en cours"))


def _ended_by(event: dict, name: str) -> bool:
    return f"Visio terminée par {name} —" in event["content"]["body"]


def _is_reply(event: dict) -> bool:
    return "m.in_reply_to" in event["content"].get("m.relates_to", {})


def _edit_of(event: dict) -> str | None:
    relation = event["content"].get("m.relates_to", {})
    return relation.get("event_id") if relation.get("rel_type") == "m.replace" else None


async def test_end_refused_for_plain_member_allowed_for_moderator(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")  # room creator: power level 100
    bob = await stack.human("bob", "Bob")
    carol = await stack.human("carol", "Carol")
    room = await stack.room_with_bot(alice)
    for person in (bob, carol):
        await alice.client.room_invite(room, person.user_id)
        await person.client.join(room)
    await bob.send(room, "!visio")
    await bob.wait_for(room, _starts)
    await carol.send(room, "!visio end")
    [refusal] = await carol.wait_for(room, lambda e: "Seule la personne" in e["content"]["body"])
    assert "(Bob)" in refusal["content"]["body"] and "50" in refusal["content"]["body"]
    assert stack.livekit.calls("DeleteRoom") == []
    await alice.send(room, "!visio end")
    await alice.wait_for(room, lambda e: _ended_by(e, "Alice") and _is_reply(e))
    assert len(stack.livekit.calls("DeleteRoom")) == 1


async def test_status_help_and_unknown(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.send(room, "!visio status")
    await alice.wait_for(room, lambda e: e["content"]["body"].startswith("Aucune visio en cours"))
    await alice.send(room, "!visio aide")
    await alice.wait_for(room, lambda e: e["content"]["body"].startswith("Commandes Visio"))
    await alice.send(room, "!visio frobnicate")
    [unknown] = await alice.wait_for(room, lambda e: "frobnicate" in e["content"]["body"])
    assert "Commandes Visio" in unknown["content"]["body"]
    await alice.send(room, "!visio")
    await alice.wait_for(room, _starts)
    await alice.send(room, "!visio status")
    await alice.wait_for(room, lambda e: e["content"]["body"].startswith("Visio en cours depuis"))


async def test_twenty_parallel_visio_make_one_livekit_room(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    stack.livekit.delay = 0.05  # keep CreateRoom in flight while the others arrive
    # Synapse now and then answers two identical parallel sends with one event (about one run
    # in five here): the bridge answers each event the homeserver really has.
    commands = set(await asyncio.gather(*(alice.send(room, "!visio") for _ in range(20))))
    answers = await alice.wait_for(
        room, lambda e: "rejoindre" in e["content"]["body"], count=len(commands), timeout=30
    )
    assert len({_slug(answer) for answer in answers}) == 1
    assert len([a for a in answers if _starts(a)]) == 1
    assert len(stack.livekit.calls("CreateRoom")) == 1
    assert len(stack.livekit.rooms) == 1


async def test_livekit_refusing_gives_a_clear_message_and_nothing_stays_live(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    stack.livekit.fail_next("CreateRoom", status=403, code="permission_denied")
    await alice.send(room, "!visio")
    [error] = await alice.wait_for(room, lambda e: "n'a pas pu être créée" in e["content"]["body"])
    assert re.search(r"référence VB-[A-Z2-9]{6}", error["content"]["body"])
    await alice.send(room, "!visio status")
    await alice.wait_for(room, lambda e: e["content"]["body"].startswith("Aucune visio en cours"))
    # The next attempt works: the failed meeting freed the room.
    await alice.send(room, "!visio")
    await alice.wait_for(room, _starts)


async def test_livekit_down_gives_a_clear_message(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await stack.livekit.stop()
    await alice.send(room, "!visio")
    [error] = await alice.wait_for(room, lambda e: "ne répond pas" in e["content"]["body"])
    assert "référence VB-" in error["content"]["body"]
