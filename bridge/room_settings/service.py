"""Room settings in the room: the state event handler, `/visio config`, and reads for the rest.

The settings state event is the one way into configuration (hookshot's pattern): the
`/visio config` command writes the state event as the bot, and `on_state_event` is the only
code that applies what a state event says. A change that is invalid leaves the last good
config in force and gets ⛔ plus a notice naming the field; a change by someone below the
required power level is rolled back; a good change gets ✅. The last good config of each room is
kept in the database (with a memory cache in front), read from the room state on a miss.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.ids import RoomID
from bridge.messages import i18n
from bridge.messages.render import Notice, notice
from bridge.ports import BotLacksPower, Clock, Matrix, txn_id_for
from bridge.room_settings.config import (
    BOOLEAN_FIELDS,
    FIELDS,
    ROOM_CONFIG_EVENT,
    Access,
    RoomConfig,
    RoomConfigError,
    parse_room_config,
    with_field,
)
from bridge.room_settings.store import RoomConfigStore

log = logging.getLogger(__name__)

ACCEPTED = "✅"
_OPENNESS = {Access.MEMBERS: 0, Access.LOBBY: 1, Access.GUESTS: 2}
REFUSED = "⛔"


@dataclass(frozen=True)
class OperatorPolicy:
    """What the operator's config says about rooms; it wins over any room's settings."""

    default_language: str
    moderator_power_level: int
    max_participants: int
    transcription_allowed: bool
    settings_power_level: int
    guests_power_level: int


@dataclass(frozen=True)
class EffectiveConfig:
    """A room's config with the operator's defaults and limits applied."""

    room: RoomConfig
    language: str
    end_power_level: int
    max_participants: int
    transcription: bool
    transcript_language: str


class RoomSettings:
    def __init__(
        self, store: RoomConfigStore, matrix: Matrix, policy: OperatorPolicy, clock: Clock
    ) -> None:
        self._store = store
        self._matrix = matrix
        self._policy = policy
        self._clock = clock
        self._cache: dict[str, RoomConfig] = {}
        self._on_changed: Callable[[str], Awaitable[None]] | None = None

    def notify_changes_to(self, on_changed: Callable[[str], Awaitable[None]]) -> None:
        """Call `on_changed(room_id)` once new settings are in force (a live meeting follows
        them at once: the chat participant leaves or joins, the widget appears)."""
        self._on_changed = on_changed

    # ---- reads -------------------------------------------------------------------------

    async def config(self, room_id: str) -> RoomConfig:
        cached = self._cache.get(room_id)
        if cached is not None:
            return cached
        stored = await self._store.get(RoomID(room_id))
        if stored is None:
            config = await self._read_from_room(room_id)
        else:
            config = _parse_or_default(stored.content)
        self._cache[room_id] = config
        return config

    async def effective(self, room_id: str) -> EffectiveConfig:
        return self.apply_policy(await self.config(room_id))

    async def language(self, room_id: str) -> str:
        return (await self.effective(room_id)).language

    def apply_policy(self, config: RoomConfig) -> EffectiveConfig:
        policy = self._policy
        language = config.language or policy.default_language
        caps = [cap for cap in (config.max_participants, policy.max_participants) if cap]
        return EffectiveConfig(
            room=config,
            language=language,
            end_power_level=(
                config.end_power_level
                if config.end_power_level is not None
                else policy.moderator_power_level
            ),
            max_participants=min(caps) if caps else 0,
            transcription=config.transcription and policy.transcription_allowed,
            transcript_language=config.transcript_language or language,
        )

    async def _read_from_room(self, room_id: str) -> RoomConfig:
        """First read of a room (bot just joined, or a cache miss): its current state event."""
        content = await self._matrix.state_content(room_id, ROOM_CONFIG_EVENT)
        try:
            config = RoomConfig() if content is None else parse_room_config(content)
        except RoomConfigError as err:
            log.warning("Room %s has invalid Visio settings (%s); using defaults", room_id, err)
            config = RoomConfig()
            content = None
        await self._store.put(RoomID(room_id), content, None, self._clock.now_ms())
        return config

    async def reread(self, room_id: str) -> RoomConfig:
        """Read the room's settings from its state again (the bot (re)joined the room)."""
        config = await self._read_from_room(room_id)
        self._cache[room_id] = config
        return config

    # ---- the state event handler: the only code that applies configuration ---------------

    async def on_state_event(self, event: Mapping[str, Any]) -> None:
        room_id = str(event["room_id"])
        event_id = str(event["event_id"])
        sender = str(event["sender"])
        content = event.get("content")
        previous = await self.config(room_id)
        language = self.apply_policy(previous).language
        by_bot = sender == self._matrix.bot_mxid
        try:
            config = parse_room_config(content)
        except RoomConfigError as err:
            log.info("Refused Visio settings %s in %s: %s", event_id, room_id, err)
            if not by_bot:
                await self._refuse(room_id, event_id, _invalid_notice(language, err))
            return
        if not by_bot:
            needed = self.level_to_change(previous, config)
            level = await self._matrix.power_level(room_id, sender)
            if level < needed:
                await self._roll_back(room_id, event_id, sender, previous, needed, level, language)
                return
        await self._store.put(RoomID(room_id), dict(content or {}), event_id, self._clock.now_ms())
        self._cache[room_id] = config
        log.info("Visio settings of %s changed by %s: %s", room_id, sender, config)
        if self._on_changed is not None:
            await self._on_changed(room_id)
        if not by_bot:
            await self._matrix.react(room_id, event_id, ACCEPTED, txn_id=txn_id_for(event_id, "ok"))
        for warning in self._policy_warnings(config, self.apply_policy(config).language):
            await self._matrix.send_notice(
                room_id, warning, txn_id=txn_id_for(event_id, "policy", warning.plain)
            )

    def level_to_change(self, previous: RoomConfig, new: RoomConfig) -> int:
        # Any widening counts: members → lobby, members → guests, and lobby → guests (which
        # lets guests in without anyone admitting them).
        if _OPENNESS[new.access] > _OPENNESS[previous.access]:
            return max(self._policy.settings_power_level, self._policy.guests_power_level)
        return self._policy.settings_power_level

    async def _roll_back(
        self,
        room_id: str,
        event_id: str,
        sender: str,
        previous: RoomConfig,
        needed: int,
        level: int,
        language: str,
    ) -> None:
        log.info(
            "Rolling back Visio settings %s in %s: %s has %d < %d",
            event_id,
            room_id,
            sender,
            level,
            needed,
        )
        name = await self._matrix.display_name(room_id, sender)
        message = notice(language, "config_rolled_back", user=name, level=needed, yours=level)
        try:
            await self._matrix.send_state(room_id, ROOM_CONFIG_EVENT, previous.to_content())
        except BotLacksPower as err:
            message = _joined(message, notice(language, "bot_lacks_power", level=err.needed))
        await self._refuse(room_id, event_id, message)

    async def _refuse(self, room_id: str, event_id: str, message: Notice) -> None:
        await self._matrix.react(room_id, event_id, REFUSED, txn_id=txn_id_for(event_id, "refused"))
        await self._matrix.send_notice(
            room_id, message, reply_to=event_id, txn_id=txn_id_for(event_id, "refusal")
        )

    def _policy_warnings(self, config: RoomConfig, language: str) -> list[Notice]:
        warnings = []
        cap = self._policy.max_participants
        if cap and config.max_participants > cap:
            warnings.append(
                notice(language, "config_capped", cap=cap, asked=config.max_participants)
            )
        if config.transcription and not self._policy.transcription_allowed:
            warnings.append(notice(language, "transcription_not_allowed"))
        return warnings

    # ---- /visio config ---------------------------------------------------------------------

    async def show(self, room_id: str) -> Notice:
        effective = await self.effective(room_id)
        return render_config(effective, self._policy)

    async def change(self, room_id: str, sender: str, args: tuple[str, ...]) -> Notice:
        """Apply `/visio config <field> <value>` by writing the state event; the notice to answer
        with (the state event, echoed back by the homeserver, then applies the change)."""
        current = await self.config(room_id)
        language = self.apply_policy(current).language
        if len(args) < 2:
            return notice(language, "config_usage", fields=", ".join(FIELDS))
        try:
            new = with_field(current, args[0], " ".join(args[1:]))
        except RoomConfigError as err:
            return _invalid_notice(language, err)
        needed = self.level_to_change(current, new)
        level = await self._matrix.power_level(room_id, sender)
        if level < needed:
            return notice(language, "config_command_forbidden", level=needed, yours=level)
        try:
            await self._matrix.send_state(room_id, ROOM_CONFIG_EVENT, new.to_content())
        except BotLacksPower as err:
            return notice(language, "bot_lacks_power", level=err.needed)
        # Said in the room's language after the change: `language fr` answers in French.
        return notice(self.apply_policy(new).language, "config_changed", field=args[0].lower())


def _parse_or_default(content: dict[str, Any] | None) -> RoomConfig:
    if content is None:
        return RoomConfig()
    try:
        return parse_room_config(content)
    except RoomConfigError:
        return RoomConfig()  # only valid content is ever stored; this is belt and braces


def _invalid_notice(language: str, err: RoomConfigError) -> Notice:
    if not err.field:
        return notice(language, "config_invalid_content")
    problem = i18n.text(language, f"config_problem_{err.problem}", allowed=_allowed(language, err))
    return notice(language, "config_invalid", field=err.field, problem=problem)


def _allowed(language: str, err: RoomConfigError) -> str:
    """What a field takes, in the room's language: « de 0 à 10 000 », « oui » ou « non »."""
    if err.bounds is not None:
        low, high = err.bounds
        return i18n.text(language, "config_allowed_range", low=low, high=high)
    if not err.choices:
        return err.allowed  # the setting names, for an unknown setting
    if err.field in BOOLEAN_FIELDS:
        words = [i18n.text(language, "yes"), i18n.text(language, "no")]
    else:
        words = [_value_word(language, err.field, choice) for choice in err.choices]
    quoted = [i18n.text(language, "config_quoted", value=word) for word in words]
    if len(quoted) == 1:
        return quoted[0]
    return i18n.text(language, "config_allowed_or", first=", ".join(quoted[:-1]), last=quoted[-1])


def _value_word(language: str, field: str, value: str) -> str:
    """A choice value as shown in the room's language (« salle d'attente » for `lobby`)."""
    key = f"config_{field}_{value}"
    return i18n.text(language, key) if key in i18n.FR else value


def _joined(first: Notice, second: Notice) -> Notice:
    return Notice(plain=f"{first.plain}\n{second.plain}", html=f"{first.html}<br>{second.html}")


def render_config(effective: EffectiveConfig, policy: OperatorPolicy) -> Notice:
    language = effective.language
    room = effective.room
    yes, no = i18n.text(language, "yes"), i18n.text(language, "no")
    default = f" ({i18n.text(language, 'config_default')})"
    rows: list[tuple[str, str]] = [
        ("enabled", yes if room.enabled else no),
        ("language", effective.language + (default if room.language is None else "")),
        ("start_power_level", i18n.number(language, room.start_power_level)),
        (
            "end_power_level",
            i18n.number(language, effective.end_power_level)
            + (default if room.end_power_level is None else ""),
        ),
        ("access", _value_word(language, "access", room.access.value)),
        (
            "max_participants",
            i18n.number(language, room.max_participants)
            + (
                f" ({i18n.text(language, 'config_operator_cap', cap=policy.max_participants)})"
                if policy.max_participants
                else ""
            ),
        ),
        (
            "transcription",
            _value_word(language, "transcription", "on" if room.transcription else "off")
            + (
                ""
                if policy.transcription_allowed
                else f" ({i18n.text(language, 'config_operator_off')})"
            ),
        ),
        ("transcript_language", effective.transcript_language),
        ("chat_mirror", yes if room.chat_mirror else no),
        ("widget", _value_word(language, "widget", room.widget.value)),
    ]
    title = i18n.text(language, "config_title")
    footer = i18n.text(language, "config_footer")
    colon = "\u00a0: " if language == "fr" else ": "  # no-break space before a French colon
    plain = "\n".join([title, *(f"• {name}{colon}{value}" for name, value in rows), footer])
    items = "".join(f"<li><code>{name}</code>{colon}{_escape(value)}</li>" for name, value in rows)
    formatted = f"{_escape(title)}<ul>{items}</ul>{_escape(footer)}"
    return Notice(plain=plain, html=formatted)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
