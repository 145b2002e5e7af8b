"""The room settings validator: what it accepts, what it refuses (naming the field), totality."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.room_settings.config import (
    FIELDS,
    Access,
    RoomConfig,
    RoomConfigError,
    Widget,
    parse_room_config,
    with_field,
)


def test_a_full_valid_config() -> None:
    config = parse_room_config(
        {
            "enabled": True,
            "language": "en",
            "start_power_level": 50,
            "end_power_level": 75,
            "access": "lobby",
            "max_participants": 40,
            "transcription": "on",
            "transcript_language": "fr",
            "chat_mirror": False,
            "widget": "pinned",
        }
    )
    assert config == RoomConfig(
        enabled=True,
        language="en",
        start_power_level=50,
        end_power_level=75,
        access=Access.LOBBY,
        max_participants=40,
        transcription=True,
        transcript_language="fr",
        chat_mirror=False,
        widget=Widget.PINNED,
    )


def test_empty_content_or_enabled_false_turns_visio_off() -> None:
    assert parse_room_config({}).enabled is False
    assert parse_room_config({"enabled": False}).enabled is False
    assert parse_room_config({"language": "en"}).enabled is True


@pytest.mark.parametrize(
    ("content", "field", "problem"),
    [
        ({"language": "de"}, "language", "not_allowed"),
        ({"enabled": "yes"}, "enabled", "wrong_type"),
        ({"start_power_level": "50"}, "start_power_level", "wrong_type"),
        ({"start_power_level": 50.0}, "start_power_level", "wrong_type"),
        ({"start_power_level": True}, "start_power_level", "wrong_type"),
        ({"start_power_level": 10**100}, "start_power_level", "out_of_range"),
        ({"max_participants": -1}, "max_participants", "out_of_range"),
        ({"access": ["guests"]}, "access", "not_allowed"),
        ({"widget": None}, "widget", "not_allowed"),
        ({"langage": "fr"}, "langage", "unknown_field"),
        ({"x" * 5000: 1}, "…", "unknown_field"),
        (["enabled"], "", "not_object"),
        ("enabled", "", "not_object"),
        (None, "", "not_object"),
    ],
)
def test_refusals_name_the_field(content: Any, field: str, problem: str) -> None:
    with pytest.raises(RoomConfigError) as refused:
        parse_room_config(content)
    assert (refused.value.field, refused.value.problem) == (field, problem)
    assert refused.value.allowed


def test_to_content_round_trips() -> None:
    config = RoomConfig(language="en", access=Access.MEMBERS, transcription=True)
    assert parse_room_config(config.to_content()) == config
    # Defaults alone still say "enabled", so the content is never the empty "off" object.
    assert RoomConfig().to_content() == {"enabled": True}


@pytest.mark.parametrize(
    ("field", "typed", "expected"),
    [
        ("enabled", "non", RoomConfig(enabled=False)),
        ("enabled", "true", RoomConfig()),
        ("start_power_level", "50", RoomConfig(start_power_level=50)),
        ("access", "lobby", RoomConfig(access=Access.LOBBY)),
        ("transcription", "on", RoomConfig(transcription=True)),
        ("widget", "pinned", RoomConfig(widget=Widget.PINNED)),
    ],
)
def test_command_words_become_settings(field: str, typed: str, expected: RoomConfig) -> None:
    assert with_field(RoomConfig(), field, typed) == expected


def test_command_with_a_bad_value_or_field_is_refused() -> None:
    with pytest.raises(RoomConfigError) as bad_value:
        with_field(RoomConfig(), "start_power_level", "beaucoup")
    assert bad_value.value.field == "start_power_level"
    with pytest.raises(RoomConfigError) as bad_field:
        with_field(RoomConfig(), "couleur", "bleu")
    assert bad_field.value.problem == "unknown_field"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)
CONFIG_LIKE = st.dictionaries(st.sampled_from([*FIELDS, "other"]), JSON, max_size=len(FIELDS))


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, CONFIG_LIKE))
def test_any_json_gives_a_config_or_a_named_refusal(content: Any) -> None:
    json.dumps(content)  # the input really is JSON
    try:
        config = parse_room_config(content)
    except RoomConfigError as refusal:
        assert isinstance(refusal.field, str) and refusal.problem and refusal.allowed
    else:
        assert isinstance(config, RoomConfig)
        assert parse_room_config(config.to_content()) == config
