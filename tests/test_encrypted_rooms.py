"""An encrypted room, with encryption off in the bridge: the bot says so once, not never.

Element creates encrypted rooms by default; a bot that cannot read them must not go silent.
Fast tier: the events arrive through the inbox as the homeserver sends them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from fast import ALICE, BOB, ROOM, FastBridge

from appservice.demo import demo_synapse, prepare_demo

OTHER_ROOM = "!other:localhost"


def _encrypted(sender: str = ALICE, room: str = ROOM) -> dict[str, object]:
    return {
        "type": "m.room.encrypted",
        "sender": sender,
        "room_id": room,
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "AwgAEnAC…",
            "device_id": "ALICEPHONE",
            "sender_key": "c2VuZGVyLWtleQ",
            "session_id": "c2Vzc2lvbg",
        },
    }


def _told(fast: FastBridge, room: str = ROOM) -> list[str]:
    return [text for text in fast.notices(room) if "chiffr" in text or "encrypt" in text]


async def test_an_encrypted_message_is_answered_once_per_room(
    fast: FastBridge, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        await fast.event(_encrypted())
    told = _told(fast)
    assert len(told) == 1, fast.notices()
    assert "encryption.enabled" in told[0]
    assert "chiffrement" in told[0]  # the room's language: French by default
    assert any("encryption is off" in record.getMessage() for record in caplog.records)

    await fast.event(_encrypted())
    await fast.event(_encrypted(sender=BOB))
    assert len(_told(fast)) == 1

    # A restart forgets what it said in memory; the homeserver still posts it only once.
    await fast.restart()
    await fast.event(_encrypted())
    assert len(_told(fast)) == 1


async def test_each_encrypted_room_is_told(fast: FastBridge) -> None:
    fast.matrix.room(OTHER_ROOM, members={ALICE: "Alice"})
    await fast.event(_encrypted())
    await fast.event(_encrypted(room=OTHER_ROOM))
    assert len(_told(fast)) == 1
    assert len(_told(fast, OTHER_ROOM)) == 1


async def test_the_bridges_own_encrypted_events_are_not_answered(fast: FastBridge) -> None:
    await fast.event(_encrypted(sender=fast.settings.bot_mxid))
    assert _told(fast) == []


# --- the demo reads encrypted rooms ---------------------------------------------------------


def test_the_demo_turns_encryption_on_with_what_synapse_needs(tmp_path: Path) -> None:
    setup = prepare_demo(tmp_path / "demo")
    encryption = setup.settings.encryption
    assert encryption.enabled
    assert len(encryption.pickle_key) >= 32
    registration = yaml.safe_load(setup.registration_path.read_text())
    assert registration["receive_ephemeral"] is True
    assert registration["de.sorunome.msc2409.push_ephemeral"] is True
    assert registration["org.matrix.msc3202"] is True
    config = demo_synapse(setup).config()
    assert config["experimental_features"] == {
        "msc2409_to_device_messages_enabled": True,
        "msc3202_device_masquerading": True,
        "msc3202_transaction_extensions": True,
    }
    assert config["app_service_config_files"] == [str(setup.registration_path)]
    # The next run keeps the same pickle key: the bot's stored keys stay readable.
    assert prepare_demo(tmp_path / "demo").settings.encryption == encryption


def test_a_demo_folder_from_before_gets_encryption_and_keeps_its_tokens(tmp_path: Path) -> None:
    prepare_demo(tmp_path)
    config_path, registration_path = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    old_config = yaml.safe_load(config_path.read_text())
    del old_config["encryption"]
    config_path.write_text(yaml.safe_dump(old_config))
    old = yaml.safe_load(registration_path.read_text())
    for key in ("receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "org.matrix.msc3202"):
        del old[key]
    registration_path.write_text(yaml.safe_dump(old))
    setup = prepare_demo(tmp_path)
    assert setup.settings.encryption.enabled
    registration = yaml.safe_load(registration_path.read_text())
    assert registration["org.matrix.msc3202"] is True
    assert (registration["as_token"], registration["hs_token"]) == (
        old["as_token"],
        old["hs_token"],
    )
    # A user who turned it off keeps it off.
    config = yaml.safe_load(config_path.read_text())
    config["encryption"] = {"enabled": False}
    config_path.write_text(yaml.safe_dump(config))
    assert not prepare_demo(tmp_path).settings.encryption.enabled
