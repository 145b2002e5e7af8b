"""`/visio` commands and the status message, as the room sees them (fast tier, no homeserver).

Every test drives the production wiring through `FastBridge`: a command goes in through the
inbox, and once `say()` returns the bridge has done all it will, so "nothing else was sent" is
read straight from the recorded timeline. The wire format (HTML as a real client receives it,
the bot joining on invite) stays in `test_visio_e2e.py`, over a real Synapse.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from fakes.matrix import Sent
from fast import ALICE, BOB, BOT, ROOM, FastBridge

CAROL = "@carol:localhost"
LINK = re.compile(r"https://visio\.test/m/([a-z]{3}-[a-z]{4}-[a-z]{3})")
NOTHING_TO_END = "Aucune visio n\u2019est en cours\u00a0: il n\u2019y a rien à terminer."
REFERENCE = re.compile(r"\(référence VB-[A-HJ-NP-Z2-9]{6}\)$")
ENGLISH = {"meetings": {"default_language": "en"}}
MINUTE_MS = 60_000
RETRY_MS = 1000  # the inbox's first retry delay (Options.retry_base_delay_ms)


def slug_in(text: str) -> str:
    match = LINK.search(text)
    assert match, text
    return match.group(1)


def status_message(fast: FastBridge) -> Sent:
    """The meeting's status message: the one notice that is neither a reply nor an edit."""
    [status] = [s for s in fast.matrix.in_room(ROOM, "notice") if s.reply_to is None]
    return status


def livekit_calls(fast: FastBridge) -> list[str]:
    """What the bridge asked LiveKit, beyond the start-up probe (ListRooms)."""
    return [r.method for r in fast.livekit.requests if r.method != "ListRooms"]


def command_event(body: str, *, event_id: str, sender: str = ALICE) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "m.room.message",
        "sender": sender,
        "room_id": ROOM,
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
    }


# --- starting -------------------------------------------------------------------------------


async def test_visio_posts_a_status_message_with_the_join_link_in_french(
    fast: FastBridge,
) -> None:
    await fast.say("/visio")
    status = status_message(fast)
    slug = slug_in(status.body)
    link = f"https://visio.test/m/{slug}"
    assert status.body == f"Visio démarrée par Alice — rejoindre\u00a0: {link}"
    assert status.html == f'Visio démarrée par Alice — rejoindre\u00a0: <a href="{link}">{link}</a>'
    # One LiveKit room, named after the slug, with Element Call's timeouts and the room's id.
    [create] = fast.livekit.calls("CreateRoom")
    assert create.request.name == f"visio-{slug}"
    assert (create.request.empty_timeout, create.request.departure_timeout) == (300, 20)
    assert json.loads(create.request.metadata) == {"matrix_room_id": ROOM, "slug": slug}
    assert list(fast.livekit.rooms) == [f"visio-{slug}"]
    # Only the slug reaches the room: no token, no secret; and nothing else is posted.
    assert "token" not in (status.body + status.html).lower()
    assert fast.livekit.api_secret not in status.body + status.html
    assert [s.kind for s in fast.matrix.sent] == ["notice"]


@pytest.mark.parametrize(
    "typed",
    [
        "!visio",
        "/visio",
        "!VISIO start",
        "//visio",
        "!visio démarrer",
        "Visio: visio",
        "visio: visio",
        "@visio:localhost visio",
        "  !visio  ",
    ],
)
async def test_other_ways_of_typing_the_command(fast: FastBridge, typed: str) -> None:
    await fast.say(typed)
    assert status_message(fast).body.startswith("Visio démarrée par Alice — rejoindre\u00a0: ")
    assert len(fast.livekit.calls("CreateRoom")) == 1


@pytest.mark.parametrize(
    "typed", ["Visio visio", "on lance !visio ?", "!visioconférence", "visio", "/vision"]
)
async def test_ordinary_messages_get_no_answer(fast: FastBridge, typed: str) -> None:
    await fast.say(typed)
    assert fast.matrix.sent == []
    assert livekit_calls(fast) == []


async def test_a_mention_pill_with_m_mentions_starts_a_call(fast: FastBridge) -> None:
    await fast.say(
        "Visio bot: visio",
        format="org.matrix.custom.html",
        formatted_body=f'<a href="https://matrix.to/#/{BOT}">Visio bot</a>: visio',
        **{"m.mentions": {"user_ids": [BOT]}},
    )
    assert status_message(fast).body.startswith("Visio démarrée par Alice")


async def test_a_second_visio_gives_the_same_link_and_no_second_room(fast: FastBridge) -> None:
    await fast.say("/visio")
    link = f"https://visio.test/m/{slug_in(status_message(fast).body)}"
    again = await fast.say("!visio", sender=BOB)
    [answer] = fast.matrix.replies_to(again)
    assert (
        answer.body == f"Une visio est déjà en cours (démarrée par Alice) — rejoindre\u00a0: {link}"
    )
    assert f'<a href="{link}">{link}</a>' in answer.html
    assert len(fast.livekit.calls("CreateRoom")) == 1
    assert len(fast.notices()) == 2


async def test_twenty_commands_at_once_make_one_livekit_room(fast: FastBridge) -> None:
    events = [command_event("!visio", event_id=f"$burst{n}") for n in range(20)]
    await asyncio.gather(
        *(
            fast.running.inbox.accept(f"txn-burst-{n}", [event], fast.clock.now_ms())
            for n, event in enumerate(events)
        )
    )
    await fast.settle()
    status = status_message(fast)
    slug = slug_in(status.body)
    answers = [fast.answers_to(str(event["event_id"])) for event in events]
    # Each command is answered once; the first started the call, the others got its link.
    assert sorted(len(a) for a in answers) == [0] + [1] * 19
    assert all(a[0].startswith("Une visio est déjà en cours") for a in answers if a)
    assert {slug_in(a[0]) for a in answers if a} == {slug}
    assert len(fast.livekit.calls("CreateRoom")) == 1
    assert list(fast.livekit.rooms) == [f"visio-{slug}"]


async def test_names_are_escaped_in_the_html(fast: FastBridge) -> None:
    eve = "@eve:localhost"
    fast.matrix.room(ROOM, members={eve: "Ève <b>&</b>"})
    await fast.say("!visio", sender=eve)
    status = status_message(fast)
    assert status.body.startswith("Visio démarrée par Ève <b>&</b> — ")
    assert status.html.startswith("Visio démarrée par Ève &lt;b&gt;&amp;&lt;/b&gt; — ")


# --- ending ---------------------------------------------------------------------------------


async def test_end_by_the_starter_deletes_the_room_and_ends_the_status_message(
    fast: FastBridge,
) -> None:
    await fast.say("!visio")
    status = status_message(fast)
    slug = slug_in(status.body)
    end = await fast.say("!visio end")
    ended = "Visio terminée par Alice — moins d\u2019une minute, 0 personne."
    # The status message now says it is over, and a reply to it notifies the room.
    assert fast.matrix.current_text(status.event_id) == ended
    [notice] = fast.matrix.replies_to(status.event_id)
    assert notice.body == ended
    assert fast.answers_to(end) == []
    [delete] = fast.livekit.calls("DeleteRoom")
    assert delete.request.room == f"visio-{slug}"
    assert fast.livekit.rooms == {}
    status_query = await fast.say("!visio status")
    assert fast.answers_to(status_query) == [
        "Aucune visio n\u2019est en cours. Tapez !visio pour en démarrer une."
    ]


async def test_end_is_refused_to_a_plain_member_who_did_not_start_it(fast: FastBridge) -> None:
    fast.matrix.room(ROOM, members={CAROL: "Carol"})
    await fast.say("!visio", sender=BOB)
    status = status_message(fast)
    sent_before = len(fast.matrix.sent)
    refused = await fast.say("!visio end", sender=CAROL)
    assert fast.answers_to(refused) == [
        "Cette visio ne peut être terminée que par la personne qui l\u2019a démarrée (Bob) ou par "
        "les modérateurs (niveau 50)."
    ]
    assert len(fast.matrix.sent) == sent_before + 1
    assert fast.livekit.calls("DeleteRoom") == []
    assert fast.matrix.edits_of(status.event_id) == []
    # A moderator (Alice, power 100) may end someone else's call.
    await fast.say("!visio end", sender=ALICE)
    assert len(fast.livekit.calls("DeleteRoom")) == 1
    assert fast.matrix.current_text(status.event_id).startswith("Visio terminée par Alice —")


async def test_the_starter_may_end_their_call_without_any_power(fast: FastBridge) -> None:
    await fast.say("!visio", sender=BOB)
    await fast.say("!visio stop", sender=BOB)
    status = status_message(fast)
    assert fast.matrix.current_text(status.event_id).startswith("Visio terminée par Bob —")
    assert len(fast.livekit.calls("DeleteRoom")) == 1


async def test_end_with_no_call_running_says_so(fast: FastBridge) -> None:
    end = await fast.say("!visio end")
    assert fast.answers_to(end) == [NOTHING_TO_END]
    assert fast.livekit.calls("DeleteRoom") == []


async def test_end_failing_in_livekit_keeps_the_call_and_gives_a_reference(
    fast: FastBridge,
) -> None:
    await fast.say("!visio")
    status = status_message(fast)
    fast.livekit.fail_next("DeleteRoom")
    end = await fast.say("!visio end")
    [answer] = fast.answers_to(end)
    assert answer.startswith("La visio n\u2019a pas pu être terminée\u00a0: ")
    assert REFERENCE.search(answer), answer
    assert fast.matrix.edits_of(status.event_id) == []
    assert len(fast.livekit.rooms) == 1
    # The call is still on, and ending it again works.
    await fast.say("!visio end")
    assert fast.matrix.current_text(status.event_id).startswith("Visio terminée par Alice —")
    assert fast.livekit.rooms == {}


# --- status, help, unknown ------------------------------------------------------------------


async def test_status_tells_how_long_the_call_has_run(fast: FastBridge) -> None:
    none = await fast.say("!visio status")
    assert fast.answers_to(none) == [
        "Aucune visio n\u2019est en cours. Tapez !visio pour en démarrer une."
    ]
    await fast.say("!visio", sender=BOB)
    link = f"https://visio.test/m/{slug_in(status_message(fast).body)}"
    # From the start LiveKit stamped (its webhook runs on the wall clock, in whole seconds).
    started = await fast.running.db.fetchval(
        "SELECT COALESCE(started_at, created_at) FROM meetings"
    )
    fast.clock.now = started + 5 * MINUTE_MS
    early = await fast.say("!visio statut")
    assert fast.answers_to(early) == [
        f"Visio en cours depuis 5\u00a0min, démarrée par Bob — rejoindre\u00a0: {link}"
    ]
    fast.clock.now += 70 * MINUTE_MS
    late = await fast.say("!visio état")
    [answer] = fast.matrix.replies_to(late)
    assert (
        answer.body
        == f"Visio en cours depuis 1\u00a0h\u00a015, démarrée par Bob — rejoindre\u00a0: {link}"
    )
    assert f'<a href="{link}">{link}</a>' in answer.html


@pytest.mark.parametrize("typed", ["!visio aide", "!visio help", "!visio AIDE"])
async def test_help_lists_the_commands(fast: FastBridge, typed: str) -> None:
    command = await fast.say(typed)
    [help_text] = fast.matrix.replies_to(command)
    assert help_text.body.startswith("Commandes Visio\u00a0:\n• !visio — démarrer une visio")
    assert "• !visio fin — terminer la visio" in help_text.body
    assert "<br>• !visio statut — " in help_text.html
    assert livekit_calls(fast) == []


async def test_an_unknown_subcommand_is_named_and_followed_by_the_help(fast: FastBridge) -> None:
    command = await fast.say("!visio frobnicate now")
    [answer] = fast.matrix.replies_to(command)
    assert answer.body.startswith(
        "Commande inconnue\u00a0: «\u00a0frobnicate\u00a0».\nCommandes Visio\u00a0:\n"
    )
    assert answer.html.startswith(
        "Commande inconnue\u00a0: «\u00a0frobnicate\u00a0».<br>Commandes Visio\u00a0:"
    )
    escaped = await fast.say("!visio <img>")
    [answer] = fast.matrix.replies_to(escaped)
    assert answer.body.startswith("Commande inconnue\u00a0: «\u00a0<img>\u00a0».")
    assert answer.html.startswith("Commande inconnue\u00a0: «\u00a0&lt;img&gt;\u00a0».")
    assert livekit_calls(fast) == []


@pytest.mark.parametrize("fast", [ENGLISH], indirect=True)
async def test_a_room_in_english_gets_english_answers(fast: FastBridge) -> None:
    none = await fast.say("!visio status")
    assert fast.answers_to(none) == ["No video call running. Type !visio to start one."]
    await fast.say("!visio")
    link = f"https://visio.test/m/{slug_in(status_message(fast).body)}"
    assert status_message(fast).body == f"Video call started by Alice — join: {link}"
    again = await fast.say("!visio", sender=BOB)
    assert fast.answers_to(again) == [
        f"A video call is already running (started by Alice) — join: {link}"
    ]
    unknown = await fast.say("!visio frobnicate")
    assert fast.answers_to(unknown)[0].startswith(
        "Unknown command: “frobnicate”.\nVisio commands:\n"
    )
    await fast.say("!visio end")
    [ended] = fast.matrix.replies_to(status_message(fast).event_id)
    assert ended.body == "Video call ended by Alice — less than a minute, 0 participants."


# --- LiveKit failing ------------------------------------------------------------------------


async def test_livekit_refusing_gives_a_clear_message_and_nothing_stays_live(
    fast: FastBridge,
) -> None:
    fast.livekit.fail_next("CreateRoom", status=403, code="permission_denied")
    command = await fast.say("!visio")
    [error] = fast.answers_to(command)
    assert error.startswith(
        "La visio n\u2019a pas pu être créée\u00a0: le serveur de "
        "visioconférence a refusé la demande. "
    )
    assert REFERENCE.search(error), error
    assert [s.kind for s in fast.matrix.sent] == ["notice"]  # no status message
    assert fast.livekit.rooms == {}
    status = await fast.say("!visio status")
    assert fast.answers_to(status)[0].startswith("Aucune visio n\u2019est en cours")
    # The next attempt works: the failed meeting freed the room.
    await fast.say("!visio")
    assert status_message(fast).body.startswith("Visio démarrée par Alice")
    assert len(fast.livekit.rooms) == 1


async def test_livekit_down_gives_a_clear_message(fast: FastBridge) -> None:
    await fast.livekit.stop()
    command = await fast.say("!visio")
    [error] = fast.answers_to(command)
    assert error.startswith(
        "La visio n\u2019a pas pu être créée\u00a0: le serveur de visioconférence ne répond pas. "
        "Réessayez dans quelques minutes. "
    )
    assert REFERENCE.search(error), error
    assert len(fast.matrix.sent) == 1
    status = await fast.say("!visio status")
    assert fast.answers_to(status)[0].startswith("Aucune visio n\u2019est en cours")


# --- replays and an unreachable homeserver --------------------------------------------------


@pytest.mark.parametrize("typed", ["!visio", "!visio status", "!visio aide", "!visio what"])
async def test_a_command_delivered_twice_is_answered_once(fast: FastBridge, typed: str) -> None:
    event = command_event(typed, event_id="$replayed")
    await fast.event(event)
    sent = list(fast.matrix.sent)
    assert len(sent) == 1
    # The homeserver sends the same event again, in another transaction.
    await fast.running.inbox.accept("txn-again", [event], fast.clock.now_ms())
    await fast.settle()
    assert fast.matrix.sent == sent
    assert len(fast.livekit.calls("CreateRoom")) == (1 if typed == "!visio" else 0)


@pytest.mark.parametrize("typed", ["!visio", "!visio status", "!visio aide"])
async def test_a_command_handled_again_after_a_crash_is_answered_once(
    fast: FastBridge, typed: str
) -> None:
    command = await fast.say(typed)
    sent = list(fast.matrix.sent)
    # A crash after the answer went out but before the inbox recorded the event as done.
    await fast.running.db.execute("UPDATE inbox SET state='pending' WHERE event_id=$1", command)
    assert await fast.running.inbox.pending_count() == 1
    await fast.settle()
    assert fast.matrix.sent == sent
    assert len(fast.livekit.calls("CreateRoom")) == (1 if typed == "!visio" else 0)


async def test_end_handled_again_after_a_crash_is_answered_once(fast: FastBridge) -> None:
    await fast.say("!visio")
    end = await fast.say("!visio end")
    sent = [s.body for s in fast.matrix.sent]
    await fast.running.db.execute("UPDATE inbox SET state='pending' WHERE event_id=$1", end)
    assert await fast.running.inbox.pending_count() == 1
    await fast.settle()
    assert len(fast.livekit.calls("DeleteRoom")) == 1
    assert [s.body for s in fast.matrix.sent] == sent


async def test_a_call_started_while_the_homeserver_is_down_is_announced_once_it_is_back(
    fast: FastBridge,
) -> None:
    await fast.say("!visio aide")  # the room's settings are known: the next command goes far
    before = len(fast.matrix.sent)
    fast.matrix.homeserver_down()
    await fast.say("!visio")
    # LiveKit's room is made, but the room cannot be told yet.
    assert len(fast.livekit.rooms) == 1
    assert len(fast.matrix.sent) == before
    fast.matrix.homeserver_back()
    await fast.settle()
    assert len(fast.matrix.sent) == before  # the retry waits for its delay
    fast.clock.now += RETRY_MS
    await fast.settle()
    [status] = fast.matrix.sent[before:]
    assert status.body.startswith("Visio démarrée par Alice — rejoindre\u00a0: ")
    assert f"visio-{slug_in(status.body)}" in fast.livekit.rooms
    assert len(fast.livekit.calls("CreateRoom")) == 1


@pytest.mark.parametrize("typed", ["!visio status", "!visio aide", "!visio zut"])
async def test_an_answer_waits_for_the_homeserver_to_come_back(
    fast: FastBridge, typed: str
) -> None:
    fast.matrix.homeserver_down()
    command = await fast.say(typed)
    fast.clock.now += RETRY_MS
    await fast.settle()  # still down: this retry fails too, the next waits longer
    assert fast.matrix.sent == []
    fast.matrix.homeserver_back()
    fast.clock.now += 2 * RETRY_MS
    await fast.settle()
    [answer] = fast.matrix.sent
    assert answer.reply_to == command
    assert answer.body.startswith(
        ("Aucune visio n\u2019est en cours.", "Commandes Visio\u00a0:", "Commande in")
    )


async def test_an_end_while_the_homeserver_is_down_happens_once_it_is_back(
    fast: FastBridge,
) -> None:
    await fast.say("!visio")
    status = status_message(fast)
    fast.matrix.homeserver_down()
    await fast.say("!visio end")
    assert fast.livekit.calls("DeleteRoom") == []
    fast.matrix.homeserver_back()
    fast.clock.now += RETRY_MS
    await fast.settle()
    assert [s.kind for s in fast.matrix.sent] == ["notice", "edit", "notice"]
    assert fast.matrix.current_text(status.event_id).startswith("Visio terminée par Alice —")
    [ended] = fast.matrix.replies_to(status.event_id)
    assert ended.body.startswith("Visio terminée par Alice —")
    assert len(fast.livekit.calls("DeleteRoom")) == 1


# --- what is not a command ------------------------------------------------------------------


async def test_an_edited_message_is_not_run_again(fast: FastBridge) -> None:
    await fast.say("!visio")
    sent = list(fast.matrix.sent)
    await fast.say(
        "* !visio end",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "!visio end"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$old"},
        },
    )
    assert fast.matrix.sent == sent
    assert fast.livekit.calls("DeleteRoom") == []


async def test_the_bot_never_answers_itself_nor_the_bridges_users(fast: FastBridge) -> None:
    await fast.say("!visio", sender=BOT)
    await fast.say("!visio", sender="@visio_guest1:localhost")
    assert fast.matrix.sent == []
    assert livekit_calls(fast) == []


# --- joining a room -------------------------------------------------------------------------


async def test_the_bot_joins_on_invite_and_says_hello(fast: FastBridge) -> None:
    room = "!new:localhost"
    await fast.event(
        {
            "type": "m.room.member",
            "sender": ALICE,
            "room_id": room,
            "state_key": BOT,
            "content": {"membership": "invite"},
        }
    )
    assert room in fast.matrix.joined_rooms
    [hello] = fast.notices(room)
    assert hello.startswith(
        "Bonjour\u202f! Pour démarrer une visioconférence dans ce salon, tapez !visio"
    )


async def test_an_invite_from_a_server_not_allowed_is_declined(fast: FastBridge) -> None:
    room = "!elsewhere:other.example"
    await fast.event(
        {
            "type": "m.room.member",
            "sender": "@mallory:other.example",
            "room_id": room,
            "state_key": BOT,
            "content": {"membership": "invite"},
        }
    )
    assert fast.matrix.joined_rooms == set()
    assert fast.matrix.left_rooms == [(room, "This bridge is not available to you.")]
    assert fast.notices(room) == []


async def test_a_later_end_after_the_call_ended_says_there_is_nothing_to_end(
    fast: FastBridge,
) -> None:
    await fast.say("!visio")
    await fast.say("!visio end")
    fast.clock.now += 5 * 60_000
    again = await fast.say("!visio end")
    assert fast.answers_to(again) == [
        "Aucune visio n\u2019est en cours\u00a0: il n\u2019y a rien à terminer."
    ]
