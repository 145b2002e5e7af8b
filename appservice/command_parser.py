"""Recognising a `/visio` command in a message, whichever way the client let the user type it.

Element-based clients (Tchap) intercept unknown slash commands, so besides `/visio` we accept
`!visio`, `//visio` (Element's escape for a literal slash), and a mention of the bot followed
by `visio`. Parsing is pure: it sees the message content and the bot's identity, nothing else.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Action(enum.Enum):
    START = "start"
    END = "end"
    STATUS = "status"
    HELP = "help"
    UNKNOWN = "unknown"


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
}

_PREFIXED = re.compile(r"^(?:/{1,2}|!)visio(?:\s+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
_AFTER_MENTION = re.compile(r"^[\s:,]*visio\b(?:\s+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
MAX_COMMAND_LENGTH = 1000


@dataclass(frozen=True)
class Command:
    action: Action
    argument: str = ""  # the subcommand word as typed, for "unknown command" answers


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
    return Command(_ACTIONS.get(word, Action.UNKNOWN), argument=words[0] if words else "")


def _after_mention(
    body: str, content: Mapping[str, Any], bot_mxid: str, bot_displayname: str
) -> re.Match[str] | None:
    """`visio …` following a leading mention of the bot, however the client wrote the mention."""
    localpart = bot_mxid[1:].split(":", 1)[0]
    # Clients write a pill's plain text as the display name, the user id or "@localpart".
    names = {bot_mxid, f"@{localpart}", bot_displayname, localpart} - {""}
    rests = [body[len(name) :] for name in names if body.lower().startswith(name.lower())]
    # A pill whose text is something else (a room-specific name): trust m.mentions and
    # take what follows the pill's "Name:" separator.
    mentions = content.get("m.mentions")
    if isinstance(mentions, Mapping) and bot_mxid in (mentions.get("user_ids") or []):
        rests.append(body.split(":", 1)[1] if ":" in body[:80] else "")
    for rest in rests:
        if match := _AFTER_MENTION.match(rest):
            return match
    return None
