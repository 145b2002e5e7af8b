"""A room's Visio settings: the one validator for the room state event, the commands and reads.

Room admins write a namespaced state event (`ROOM_CONFIG_EVENT`, state_key ""); its content is
parsed here into a `RoomConfig`, or refused with a `RoomConfigError` that names the field and
what it allows. Absent event: defaults. Empty content or `enabled: false`: Visio off in the room.
Unknown fields are refused too, so a typo ("langage") is reported instead of silently ignored.
The parser is pure and total: any JSON value gives a config or a `RoomConfigError`.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ROOM_CONFIG_EVENT = "fr.visio_bridge.settings"
LANGUAGES = ("fr", "en")
MAX_POWER_LEVEL = 100
MAX_PARTICIPANTS = 10_000
# State events are limited to 64 KiB by the spec; the settings need a few hundred bytes.
MAX_CONTENT_BYTES = 4096


class Access(enum.StrEnum):
    MEMBERS = "members"
    GUESTS = "guests"
    LOBBY = "lobby"


class Widget(enum.StrEnum):
    OFF = "off"
    ON = "on"
    PINNED = "pinned"


@dataclass(frozen=True)
class RoomConfig:
    enabled: bool = True
    language: str | None = None  # None: the operator's default
    start_power_level: int = 0
    end_power_level: int | None = None  # None: the operator's moderator level
    access: Access = Access.GUESTS
    max_participants: int = 0  # 0: no limit of the room's own
    transcription: bool = False
    transcript_language: str | None = None  # None: the room's language
    chat_mirror: bool = True
    widget: Widget = Widget.OFF

    def to_content(self) -> dict[str, Any]:
        """The state event content that parses back to this config (only non-defaults)."""
        default = RoomConfig()
        content: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value != getattr(default, field.name):
                content[field.name] = _to_json(field.name, value)
        content.setdefault("enabled", self.enabled)
        return content


class RoomConfigError(ValueError):
    """Content that cannot be a room config; `field` is "" when the whole content is at fault.

    `allowed` says what the field takes, for logs; `choices` (the values a choice or boolean field
    takes) and `bounds` (an integer field's range) let a notice say it in the room's language.
    """

    def __init__(
        self,
        field: str,
        problem: str,
        allowed: str,
        *,
        choices: tuple[str, ...] = (),
        bounds: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(f"{field or 'content'}: {problem} (allowed: {allowed})")
        self.field = field
        self.problem = problem
        self.allowed = allowed
        self.choices = choices
        self.bounds = bounds


def _to_json(name: str, value: Any) -> Any:
    if name == "transcription":
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise RoomConfigError(name, "wrong_type", "true, false", choices=("true", "false"))


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    raise RoomConfigError(name, "not_allowed", ", ".join(choices), choices=choices)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    # JSON has no integer type; 50.0 is a float in Python and refused like "50".
    if isinstance(value, bool) or not isinstance(value, int):
        raise RoomConfigError(name, "wrong_type", f"{low}-{high}", bounds=(low, high))
    if not low <= value <= high:
        raise RoomConfigError(name, "out_of_range", f"{low}-{high}", bounds=(low, high))
    return value


_PARSERS: Mapping[str, Any] = {
    "enabled": lambda v: _boolean("enabled", v),
    "language": lambda v: _choice("language", v, LANGUAGES),
    "start_power_level": lambda v: _integer("start_power_level", v, 0, MAX_POWER_LEVEL),
    "end_power_level": lambda v: _integer("end_power_level", v, 0, MAX_POWER_LEVEL),
    "access": lambda v: Access(_choice("access", v, tuple(a.value for a in Access))),
    "max_participants": lambda v: _integer("max_participants", v, 0, MAX_PARTICIPANTS),
    "transcription": lambda v: _choice("transcription", v, ("off", "on")) == "on",
    "transcript_language": lambda v: _choice("transcript_language", v, LANGUAGES),
    "chat_mirror": lambda v: _boolean("chat_mirror", v),
    "widget": lambda v: Widget(_choice("widget", v, tuple(w.value for w in Widget))),
}
FIELDS = tuple(_PARSERS)


def parse_room_config(content: Any) -> RoomConfig:
    """Parse a state event's content; raises `RoomConfigError` naming the faulty field."""
    if not isinstance(content, Mapping):
        raise RoomConfigError("", "not_object", "{…}")
    if not content:
        return RoomConfig(enabled=False)
    values: dict[str, Any] = {}
    for name, value in content.items():
        parser = _PARSERS.get(name) if isinstance(name, str) else None
        if parser is None:
            shown = name if isinstance(name, str) and len(name) <= 40 else "…"
            raise RoomConfigError(shown, "unknown_field", ", ".join(FIELDS))
        values[name] = parser(value)
    return RoomConfig(**values)


def with_field(config: RoomConfig, name: str, raw: str) -> RoomConfig:
    """`config` with one field set from command text (`/visio config access lobby`)."""
    if name not in _PARSERS:
        raise RoomConfigError(name[:40], "unknown_field", ", ".join(FIELDS))
    content = config.to_content()
    content[name] = _from_text(name, raw)
    return parse_room_config(content)


_TRUE_WORDS = frozenset({"true", "yes", "on", "oui", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "non", "0"})
BOOLEAN_FIELDS = frozenset({"enabled", "chat_mirror"})
_INTEGER_FIELDS = frozenset({"start_power_level", "end_power_level", "max_participants"})
# ASCII digits only, one optional minus (so "-5" is refused as out of range, not as a type),
# and few enough that no one makes int() work hard. Not str.isdigit(): it takes "²" and "٣",
# which int() then refuses or reads; "--5" passed lstrip("-") but not int().
_INTEGER_WORD = re.compile(r"-?[0-9]{1,9}")


# The French words `/visio config` shows in French rooms, accepted on input besides the values
# themselves; keys are written as `_plain_word` leaves them (lower case, no accents, ' for U+2019).
_FRENCH_VALUES: Mapping[str, Mapping[str, str]] = {
    "access": {
        "membres": "members",
        "salle d'attente": "lobby",
        "attente": "lobby",
        "invites": "guests",
        "invite": "guests",
        "personnes invitees": "guests",
    },
    "widget": {"desactive": "off", "non": "off", "active": "on", "oui": "on", "epingle": "pinned"},
    "transcription": {
        "desactivee": "off",
        "desactive": "off",
        "non": "off",
        "activee": "on",
        "active": "on",
        "oui": "on",
    },
}


def _plain_word(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower().replace("\u2019", "'"))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def _from_text(name: str, raw: str) -> Any:
    """The JSON value a word typed in a command stands for, given the field it is for."""
    word = raw.strip()
    french = _FRENCH_VALUES.get(name, {}).get(_plain_word(word))
    if french is not None:
        return french
    if name in BOOLEAN_FIELDS:
        if word.lower() in _TRUE_WORDS:
            return True
        if word.lower() in _FALSE_WORDS:
            return False
    elif name in _INTEGER_FIELDS and _INTEGER_WORD.fullmatch(word):
        return int(word)
    return word  # anything else is refused by the field's own parser, with its message
