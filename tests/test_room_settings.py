"""Room settings (the state event and `!visio config`), operator limits and the widget.

Everything here runs on the fast tier: the settings state event is delivered as the homeserver
sends it, the bot's own state events come back to it the same way, and the room's answers are
read from what the bot sent. The homeserver's own storage and power-level check stay in
`test_room_settings_e2e.py`.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from fast import ALICE, BOB, BOT, ROOM, FastBridge
from livekit.protocol import room as proto_room

from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.widgets import LAYOUT_EVENT, WIDGET_EVENT, WIDGET_ID


def _reactions(fast: FastBridge, event_id: str) -> list[str]:
    return [sent.key for sent in fast.matrix.replies_to(event_id) if sent.kind == "reaction"]


def _answers(fast: FastBridge, event_id: str) -> list[str]:
    return [sent.body for sent in fast.matrix.replies_to(event_id) if sent.kind == "notice"]


def _room_limit(fast: FastBridge) -> int:
    """The participant limit the call was created with in LiveKit."""
    [create] = fast.livekit.calls("CreateRoom")
    assert isinstance(create.request, proto_room.CreateRoomRequest)
    return create.request.max_participants


def _state_writes(fast: FastBridge, event_type: str) -> list[dict[str, Any]]:
    return [s.content for s in fast.matrix.sent if s.kind == "state" and s.key == event_type]


async def _room_state(fast: FastBridge, event_type: str, state_key: str = "") -> Any:
    return await fast.matrix.state_content(ROOM, event_type, state_key)


async def _settings(fast: FastBridge, content: dict[str, Any], sender: str = ALICE) -> str:
    """A member writes the settings event; it must be accepted (✅, and nothing said)."""
    event_id = await fast.put_state(ROOM_CONFIG_EVENT, content, sender=sender)
    assert _reactions(fast, event_id) == ["✅"], fast.notices()
    assert _answers(fast, event_id) == []
    return event_id


async def _refused(fast: FastBridge, content: dict[str, Any], sender: str = ALICE) -> str:
    """A member writes the settings event; it must be refused: ⛔ and one answer, returned."""
    event_id = await fast.put_state(ROOM_CONFIG_EVENT, content, sender=sender)
    assert _reactions(fast, event_id) == ["⛔"]
    [answer] = _answers(fast, event_id)
    return answer


async def test_disabled_room_answers_that_visio_is_off(fast: FastBridge) -> None:
    await _settings(fast, {"enabled": False})
    command = await fast.say("!visio", sender=BOB)
    [answer] = _answers(fast, command)
    assert answer.startswith("Les visios sont désactivées dans ce salon")
    assert fast.livekit.calls("CreateRoom") == []
    # Empty content also means off; then turning it back on works.
    await _settings(fast, {})
    command = await fast.say("!visio", sender=BOB)
    assert _answers(fast, command)[0].startswith("Les visios sont désactivées")
    await _settings(fast, {"enabled": True})
    await fast.say("!visio", sender=BOB)
    assert fast.notices()[-1].startswith("Visio démarrée par Bob")
    assert len(fast.livekit.calls("CreateRoom")) == 1


async def test_start_power_level_refuses_plain_members_with_the_reason(fast: FastBridge) -> None:
    await _settings(fast, {"start_power_level": 50})
    command = await fast.say("!visio", sender=BOB)
    [refusal] = _answers(fast, command)
    assert refusal == (
        "Dans ce salon, une visio ne peut être démarrée que par les modérateurs (niveau 50) "
        "(votre niveau\u00a0: 0)."
    )
    assert fast.livekit.calls("CreateRoom") == []
    await fast.say("!visio")
    assert fast.notices()[-1].startswith("Visio démarrée par Alice")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"language": "de"}, "language"),
        ({"start_power_level": "cinquante"}, "start_power_level"),
        ({"start_power_level": 50.0}, "start_power_level"),
        ({"max_participants": 10**12}, "max_participants"),
        ({"couleur": "bleu"}, "couleur"),
        ({"access": {"nested": ["x"]}}, "access"),
        ({"enabled": [None, {"x": 1}]}, "enabled"),
    ],
)
async def test_malformed_settings_keep_the_old_config_and_say_why(
    fast: FastBridge, content: dict[str, Any], field: str
) -> None:
    await _settings(fast, {"language": "en"})
    answer = await _refused(fast, content)
    # In English, the last good language, naming the field.
    assert answer.startswith("Visio settings refused") and f"“{field}”" in answer
    await fast.say("!visio", sender=BOB)
    assert fast.notices()[-1].startswith("Video call started by Bob")


async def test_content_that_is_not_an_object_is_refused(fast: FastBridge) -> None:
    # A homeserver only stores objects; the bridge still refuses anything else by itself.
    event_id = await fast.event(
        {
            "type": ROOM_CONFIG_EVENT,
            "state_key": "",
            "sender": ALICE,
            "room_id": ROOM,
            "content": ["enabled", False],
        }
    )
    assert _reactions(fast, event_id) == ["⛔"]
    [answer] = _answers(fast, event_id)
    assert answer.startswith("Réglages Visio refusés\u00a0: l\u2019événement doit contenir")
    await fast.say("!visio", sender=BOB)
    assert fast.notices()[-1].startswith("Visio démarrée par Bob")


async def test_the_bot_accepts_its_own_changes_silently(fast: FastBridge) -> None:
    """`!visio config` is answered once, in words; the bot's own settings event coming back
    from the homeserver gets no ✅ and no second answer."""
    command = await fast.say("!visio config start_power_level 50")
    [written] = [sent for sent in fast.matrix.sent if sent.kind == "state"]
    assert written.key == ROOM_CONFIG_EVENT and written.content["start_power_level"] == 50
    assert [sent.kind for sent in fast.matrix.sent] == ["state", "notice"]
    assert _answers(fast, command) == ["Le réglage «\u00a0start_power_level\u00a0» est enregistré."]


async def test_an_under_privileged_change_is_rolled_back(fast: FastBridge) -> None:
    # The homeserver lets anyone write the event; the bridge still asks for level 50.
    fast.matrix.set_state_level(ROOM, ROOM_CONFIG_EVENT, 0)
    await _settings(fast, {"language": "fr", "start_power_level": 0})
    notice = await _refused(fast, {"enabled": False}, sender=BOB)
    assert notice == (
        "Les réglages Visio ne peuvent être modifiés que par les modérateurs (niveau 50), et le "
        "niveau de Bob est 0\u00a0: les réglages précédents sont rétablis."
    )
    # Back to the last good config, in the room too.
    assert await _room_state(fast, ROOM_CONFIG_EVENT) == {"enabled": True, "language": "fr"}
    await fast.say("!visio", sender=BOB)
    assert fast.notices()[-1].startswith("Visio démarrée par Bob")


async def test_a_roll_back_the_bot_cannot_write_says_what_it_needs(fast: FastBridge) -> None:
    # The homeserver wants 10 for the event: Bob has it, the bot does not; the bridge wants 50.
    fast.matrix.set_state_level(ROOM, ROOM_CONFIG_EVENT, 10)
    fast.matrix.set_level(ROOM, BOB, 10)
    fast.matrix.set_level(ROOM, BOT, 0)
    await _settings(fast, {"start_power_level": 0})
    notice = await _refused(fast, {"enabled": False}, sender=BOB)
    first, second = notice.split("\n")
    assert first.startswith("Les réglages Visio ne peuvent être modifiés que par les modérateurs")
    assert first.endswith("le niveau de Bob est 10\u00a0: les réglages précédents sont rétablis.")
    assert second.startswith("Je dois être de niveau 10 pour enregistrer les réglages Visio")
    # The room still shows Bob's change; the bridge keeps the last good config.
    assert await _room_state(fast, ROOM_CONFIG_EVENT) == {"enabled": False}
    await fast.say("!visio", sender=BOB)
    assert fast.notices()[-1].startswith("Visio démarrée par Bob")


async def test_opening_to_guests_needs_more_than_changing_settings(fast: FastBridge) -> None:
    fast.matrix.set_level(ROOM, BOB, 50)
    await _settings(fast, {"access": "members"})
    notice = await _refused(fast, {"access": "guests"}, sender=BOB)
    assert notice.startswith(
        "Les réglages Visio ne peuvent être modifiés que par les administrateurs (niveau 100),"
    )
    assert await _room_state(fast, ROOM_CONFIG_EVENT) == {"enabled": True, "access": "members"}
    # Other changes are within Bob's reach.
    await _settings(fast, {"access": "members", "language": "en"}, sender=BOB)


async def test_config_command_round_trip_and_language_switch(fast: FastBridge) -> None:
    command = await fast.say("!visio config")
    [shown] = _answers(fast, command)
    assert shown.startswith("Réglages Visio de ce salon")
    assert "language\u00a0: fr (valeur par défaut du serveur)" in shown
    assert "• access\u00a0: invités\n" in shown and "• widget\u00a0: désactivé\n" in shown
    # The bot may not write the settings: it says what it needs.
    fast.matrix.set_level(ROOM, BOT, 0)
    command = await fast.say("!visio config language en")
    [answer] = _answers(fast, command)
    assert answer.startswith("Je dois être modérateur (niveau 50) pour enregistrer")
    assert await _room_state(fast, ROOM_CONFIG_EVENT) is None
    fast.matrix.set_level(ROOM, BOT, 50)
    # A plain member may not change settings.
    command = await fast.say("!visio config language en", sender=BOB)
    [answer] = _answers(fast, command)
    assert answer == (
        "Ce réglage ne peut être modifié que par les modérateurs (niveau 50) "
        "(votre niveau\u00a0: 0)."
    )
    assert await _room_state(fast, ROOM_CONFIG_EVENT) is None
    command = await fast.say("!visio config language en")
    assert _answers(fast, command) == ["Setting “language” saved."]
    assert await _room_state(fast, ROOM_CONFIG_EVENT) == {"enabled": True, "language": "en"}
    await fast.say("!visio", sender=BOB)
    assert fast.notices()[-1].startswith("Video call started by Bob")
    command = await fast.say("!visio config")
    [shown] = _answers(fast, command)
    assert shown.startswith("Visio settings of this room") and "language: en\n" in shown
    # A bad value through the command: refused, nothing written.
    command = await fast.say("!visio config access everyone")
    [answer] = _answers(fast, command)
    assert "“access”" in answer and "only takes “members”, “guests” or “lobby”." in answer
    assert (await _room_state(fast, ROOM_CONFIG_EVENT)).get("access") is None
    # No value: the usage, with every setting.
    command = await fast.say("!visio config access")
    [answer] = _answers(fast, command)
    assert answer.startswith("Usage: !visio config") and "widget" in answer


async def test_members_only_rooms_refuse_guests_on_the_join_page(fast: FastBridge) -> None:
    await _settings(fast, {"access": "members"})
    await fast.say("!visio")
    found = re.search(r"/m/([a-z-]+)", fast.notices()[-1])
    assert found, fast.notices()
    page = f"{fast.base_url}/m/{found.group(1)}"
    async with aiohttp.ClientSession() as session:
        async with session.post(page, data={"name": "Intrus"}, allow_redirects=False) as response:
            assert response.status == 403
            assert "réservée aux membres" in await response.text()


async def test_settings_survive_a_restart(fast: FastBridge) -> None:
    await _settings(fast, {"language": "en", "start_power_level": 50})
    await fast.restart()
    command = await fast.say("!visio", sender=BOB)
    [refusal] = _answers(fast, command)
    assert refusal.startswith("In this room, only moderators (power level 50) can start")


# --- operator limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [{"meetings": {"max_participants": 5}}], indirect=True)
async def test_the_operator_cap_on_participants_wins_and_is_said(fast: FastBridge) -> None:
    event_id = await fast.put_state(ROOM_CONFIG_EVENT, {"max_participants": 10})
    assert _reactions(fast, event_id) == ["✅"]
    assert fast.notices() == [
        "Ce serveur limite les visios à 5 personnes\u00a0: la limite demandée (10) "
        "ne s\u2019appliquera pas au-delà."
    ]
    command = await fast.say("!visio config")
    assert "• max_participants\u00a0: 10 (limite du serveur\u00a0: 5)" in _answers(fast, command)[0]
    await fast.say("!visio")
    assert _room_limit(fast) == 5


@pytest.mark.parametrize("fast", [{"meetings": {"max_participants": 50}}], indirect=True)
async def test_a_room_limit_under_the_operator_cap_applies(fast: FastBridge) -> None:
    await _settings(fast, {"max_participants": 10})
    assert fast.notices() == []
    await fast.say("!visio")
    assert _room_limit(fast) == 10


async def test_transcription_turned_off_by_the_operator_is_said(fast: FastBridge) -> None:
    event_id = await fast.put_state(ROOM_CONFIG_EVENT, {"transcription": "on"})
    assert _reactions(fast, event_id) == ["✅"]
    assert fast.notices() == [
        "La transcription est désactivée sur ce serveur\u00a0: "
        "le réglage est enregistré, mais il n\u2019aura pas d\u2019effet."
    ]
    command = await fast.say("!visio config")
    assert (
        "• transcription\u00a0: activée (désactivée sur ce serveur)" in _answers(fast, command)[0]
    )


@pytest.mark.parametrize(
    "fast", [{"meetings": {"settings_power_level": 0, "guests_power_level": 50}}], indirect=True
)
async def test_the_operator_sets_the_levels_to_change_settings(fast: FastBridge) -> None:
    fast.matrix.set_state_level(ROOM, ROOM_CONFIG_EVENT, 0)
    await _settings(fast, {"access": "members", "language": "en"}, sender=BOB)
    notice = await _refused(fast, {"access": "lobby"}, sender=BOB)
    assert notice.startswith("Only moderators (power level 50) can change the Visio settings,")
    kept = {"enabled": True, "access": "members", "language": "en"}
    assert await _room_state(fast, ROOM_CONFIG_EVENT) == kept


# --- the widget ----------------------------------------------------------------------------


async def test_settings_changed_during_a_call_apply_to_it_at_once(fast: FastBridge) -> None:
    """Turning the widget on while a call runs shows it now, not at the next join or leave."""
    await fast.say("!visio")
    assert fast.notices()[0].startswith("Visio démarrée par Alice")
    assert await _room_state(fast, WIDGET_EVENT, WIDGET_ID) is None
    await _settings(fast, {"widget": "on"})
    widget = await _room_state(fast, WIDGET_EVENT, WIDGET_ID)
    assert widget["id"] == WIDGET_ID and widget["creatorUserId"] == BOT
    assert widget["url"].startswith("https://visio.test/")
    assert "userId=$matrix_user_id" in widget["url"]
    assert await _room_state(fast, LAYOUT_EVENT) is None  # "on" does not pin it
    await _settings(fast, {"widget": "off"})
    assert await _room_state(fast, WIDGET_EVENT, WIDGET_ID) == {}
    assert len(_state_writes(fast, WIDGET_EVENT)) == 2


async def test_a_pinned_widget_comes_and_goes_with_the_call(fast: FastBridge) -> None:
    other = {"widgets": {"other": {"container": "right"}}}
    fast.matrix.put_state(ROOM, LAYOUT_EVENT, other, sender=ALICE)  # the room's own layout
    await _settings(fast, {"widget": "pinned"})
    assert _state_writes(fast, WIDGET_EVENT) == []  # no call, no widget
    await fast.say("!visio")
    widget = await _room_state(fast, WIDGET_EVENT, WIDGET_ID)
    assert widget["data"]["meeting_id"]
    layout = await _room_state(fast, LAYOUT_EVENT)
    assert layout["widgets"]["other"] == {"container": "right"}  # the room's layout is kept
    assert layout["widgets"][WIDGET_ID]["container"] == "top"
    await fast.say("!visio end")
    assert await _room_state(fast, WIDGET_EVENT, WIDGET_ID) == {}
    assert await _room_state(fast, LAYOUT_EVENT) == other


async def test_a_bot_without_power_for_widgets_says_what_it_needs_once(fast: FastBridge) -> None:
    fast.matrix.set_state_level(ROOM, WIDGET_EVENT, 100)
    fast.matrix.set_level(ROOM, BOT, 50)
    await _settings(fast, {"widget": "on"})
    await fast.say("!visio")
    await fast.say("!visio", sender=BOB)
    lacking = [n for n in fast.notices() if "ajouter la visio comme widget" in n]
    assert lacking == [
        "Je dois être administrateur (niveau 100) pour ajouter la visio comme widget dans ce "
        "salon. Un administrateur du salon peut me donner ce niveau."
    ]
    assert _state_writes(fast, WIDGET_EVENT) == []
