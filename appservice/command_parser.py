"""Recognising a `/visio` command in a message, whichever way the client let the user type it.

Element-based clients (Tchap) intercept unknown slash commands, so besides `/visio` we accept
`!visio`, `//visio` (Element's escape for a literal slash), and a mention of the bot followed
by `visio`. Parsing is pure: it sees the message content and the bot's identity, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from bridge.commands import Action, Command

# French and English words for each subcommand; the help text shows the English ones.
_ACTIONS: Mapping[str, Action] = {
    "": Action.START,
    "start": Action.START,
    "démarrer": Action.START,
    "demarrer": Action.START,
    "end": Action.END,
    "stop": Action.END,
    "fin": Action.END,
    "terminer": Action.END,
    "status": Action.STATUS,
    "statut": Action.STATUS,
    "état": Action.STATUS,
    "etat": Action.STATUS,
    "help": Action.HELP,
    "aide": Action.HELP,
    "transcript": Action.TRANSCRIPT,
    "transcription": Action.TRANSCRIPT,
    "config": Action.CONFIG,
    "settings": Action.CONFIG,
    "réglages": Action.CONFIG,
    "reglages": Action.CONFIG,
}

_PREFIXED = re.compile(r"^(?:/{1,2}|!)visio(?:\s+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
_AFTER_MENTION = re.compile(r"^[\s:,]*visio\b(?:\s+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
_LEADING_LINK = re.compile(r"""^\s*<a\s+href=["'](?P<href>[^"']+)["']""", re.IGNORECASE)
MAX_COMMAND_LENGTH = 1000


def parse_command(
    content: Mapping[str, Any], bot_mxid: str, bot_displayname: str
) -> Command | None:
    """The command in a message's content, or None when the message is not for the bot."""
    body = content.get("body")
    if not isinstance(body, str) or len(body) > MAX_COMMAND_LENGTH:
        return None
    body = body.strip()
    match = _PREFIXED.match(body) or _after_mention(body, content, bot_mxid, bot_displayname)
    if match is None:
        return None
    return _command(match.group("rest") or "")


def _command(rest: str) -> Command:
    words = rest.split()
    word = words[0].lower() if words else ""
    return Command(
        _ACTIONS.get(word, Action.UNKNOWN),
        argument=words[0] if words else "",
        args=tuple(words[1:]),
    )


def _after_mention(
    body: str, content: Mapping[str, Any], bot_mxid: str, bot_displayname: str
) -> re.Match[str] | None:
    """`visio …` following a leading mention of the bot, however the client wrote the mention."""
    localpart = bot_mxid[1:].split(":", 1)[0]
    lowered = body.lower()
    rests: list[str] = []
    # A user id typed out ("@visio:server visio", "@visio visio") is unambiguous.
    for name in (bot_mxid, f"@{localpart}"):
        if lowered.startswith(name.lower()):
            rests.append(body[len(name) :])
    # Clients write a pill's plain text as "Display Name: "; a bare name without the colon is
    # ordinary prose ("Visio visio…"), not a mention.
    for name in {bot_displayname, localpart} - {""}:
        if lowered.startswith(name.lower()) and body[len(name) : len(name) + 1] in (":", ","):
            rests.append(body[len(name) :])
    # A pill with a room-specific name: trust it only when the formatted body starts with it.
    if _starts_with_pill(content, bot_mxid) and ":" in body[:100]:
        rests.append(body.split(":", 1)[1])
    for rest in rests:
        if match := _AFTER_MENTION.match(rest):
            return match
    return None


def _starts_with_pill(content: Mapping[str, Any], bot_mxid: str) -> bool:
    formatted = content.get("formatted_body")
    if not isinstance(formatted, str):
        return False
    match = _LEADING_LINK.match(formatted)
    return match is not None and unquote(match.group("href")).endswith("/#/" + bot_mxid)
