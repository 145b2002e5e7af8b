"""Which messages the bot takes as a `/visio` command, and which it must leave alone.

Pure tests of `appservice.command_parser.parse_command`: a message content in, a `Command` (or
None when the message is not for the bot) out.
"""

from __future__ import annotations

from typing import Any

import pytest

from appservice.command_parser import Action, Command, parse_command

BOT = "@visio:example.org"
NAME = "Visio"


def parse(body: Any, **content: Any) -> Command | None:
    return parse_command({"body": body, **content}, BOT, NAME)


def pill(body: str, *user_ids: str) -> Command | None:
    """A message opening with a pill for the first of `user_ids`, written as `Name: …` in `body`."""
    name, _, rest = body.partition(":")
    formatted = f'<a href="https://matrix.to/#/{user_ids[0]}">{name}</a>:{rest}'
    return parse(
        body,
        format="org.matrix.custom.html",
        formatted_body=formatted,
        **{"m.mentions": {"user_ids": list(user_ids)}},
    )


@pytest.mark.parametrize("body", ["/visio", "!visio", "//visio"])
def test_prefixes_start_a_meeting(body: str) -> None:
    assert parse(body) == Command(Action.START)


@pytest.mark.parametrize("body", ["/VISIO", "!Visio", "//ViSiO"])
def test_command_is_case_insensitive(body: str) -> None:
    assert parse(body) == Command(Action.START)


@pytest.mark.parametrize(
    ("word", "action"),
    [
        ("start", Action.START),
        ("démarrer", Action.START),
        ("end", Action.END),
        ("stop", Action.END),
        ("fin", Action.END),
        ("terminer", Action.END),
        ("status", Action.STATUS),
        ("statut", Action.STATUS),
        ("état", Action.STATUS),
        ("help", Action.HELP),
        ("aide", Action.HELP),
    ],
)
def test_subcommands_in_english_and_french(word: str, action: Action) -> None:
    command = parse(f"!visio {word}")
    assert command is not None
    assert command.action is action


@pytest.mark.parametrize("word", ["END", "Fin", "ÉTAT", "Aide"])
def test_subcommand_is_case_insensitive(word: str) -> None:
    command = parse(f"/visio {word}")
    assert command is not None
    assert command.action is not Action.UNKNOWN


def test_unknown_subcommand_keeps_the_typed_word() -> None:
    assert parse("!visio Lancer maintenant") == Command(
        Action.UNKNOWN, argument="Lancer", args=("maintenant",)
    )


def test_config_keeps_its_arguments() -> None:
    assert parse("!visio config access  lobby") == Command(
        Action.CONFIG, argument="config", args=("access", "lobby")
    )


def test_extra_whitespace_and_newlines_are_ignored() -> None:
    command = parse("  \n /visio \n\t  statut  \n")
    assert command is not None
    assert command.action is Action.STATUS


@pytest.mark.parametrize(
    ("body", "action"),
    [
        ("Visio: visio end", Action.END),
        ("@visio:example.org visio", Action.START),
        ("@visio visio status", Action.STATUS),
        ("visio: visio aide", Action.HELP),
    ],
)
def test_mention_of_the_bot_then_visio(body: str, action: Action) -> None:
    command = parse(body)
    assert command is not None
    assert command.action is action


def test_pill_with_another_name_is_trusted_through_m_mentions() -> None:
    command = pill("Salle de réunion bot: visio fin", BOT)
    assert command is not None
    assert command.action is Action.END


def test_pill_with_another_name_needs_the_bot_in_m_mentions() -> None:
    assert pill("Salle de réunion bot: visio fin", "@alice:example.org") is None


@pytest.mark.parametrize(
    "body",
    [
        "visioconférence demain ?",
        "/visioconference",
        "!visios",
        "je lance !visio plus tard",
        "on fait une /visio ?",
        "",
    ],
)
def test_ordinary_messages_are_not_commands(body: str) -> None:
    assert parse(body) is None


def test_mentioning_the_bot_without_visio_is_not_a_command() -> None:
    assert parse("@visio:example.org bonjour") is None
    assert pill("Visio: merci beaucoup", BOT) is None


@pytest.mark.parametrize("body", [None, 42, ["/visio"], {"text": "/visio"}])
def test_non_string_body_is_ignored(body: Any) -> None:
    assert parse(body) is None


def test_missing_body_is_ignored() -> None:
    assert parse_command({"msgtype": "m.text"}, BOT, NAME) is None


def test_huge_body_is_ignored() -> None:
    assert parse("/visio " + "x" * 10_000) is None


def test_mention_not_at_start_is_not_a_command() -> None:
    body = "Rappel : visio demain avec Visio"
    formatted = f'Rappel : visio demain avec <a href="https://matrix.to/#/{BOT}">Visio</a>'
    assert parse(body, formatted_body=formatted, **{"m.mentions": {"user_ids": [BOT]}}) is None


def test_bare_words_are_not_a_mention() -> None:
    assert parse("visio visio") is None
    assert parse("Visio visio demain ?") is None
