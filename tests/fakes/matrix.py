"""A recording implementation of the `Matrix` port, for the fast tests.

It behaves as a homeserver does where the bridge relies on it: a transaction id sent twice
returns the first event (so a replayed command shows the room one answer), state events read
back what was written, and a room that forbids the bot raises `BotLacksPower`. Everything the
bridge sends is kept, in order, as `Sent` records that tests read like a room's timeline.
Members, display names and power levels are set by the test; `homeserver_down()` makes every
call raise `MatrixUnavailable` until `homeserver_back()`; `hold_sends()` makes it slow.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from bridge.messages.render import Notice
from bridge.ports import BotLacksPower, MatrixUnavailable

BOT = "@visio:localhost"


@dataclass(frozen=True)
class Sent:
    """One event the bridge sent."""

    event_id: str
    room_id: str
    kind: str  # notice, edit, text, file, reaction, state
    body: str = ""
    html: str = ""
    txn_id: str = ""
    reply_to: str | None = None
    thread_root: str | None = None
    edit_of: str | None = None
    sender: str = BOT
    sender_name: str | None = None
    key: str = ""  # a reaction's key, a state event's type
    content: dict[str, Any] = field(default_factory=dict)  # state events and files


class _Gate:
    """A slow homeserver: `arrived` is set when a send is waiting; `open()` lets all through."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.opened = asyncio.Event()

    def open(self) -> None:
        self.opened.set()


@dataclass
class _Room:
    members: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    state_levels: dict[str, int] = field(default_factory=dict)
    state_default: int = 50
    state: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


class FakeMatrix:
    def __init__(self, bot_mxid: str = BOT) -> None:
        self._bot = bot_mxid
        self._rooms: dict[str, _Room] = {}
        self._by_txn: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._down = False
        self._gate: _Gate | None = None
        self.sent: list[Sent] = []
        self.joined_rooms: set[str] = set()
        self.left_rooms: list[tuple[str, str]] = []
        self._echoes: list[dict[str, Any]] = []  # the bot's state events, not yet sent back

    # --- what the test sets up ------------------------------------------------------------

    def room(
        self,
        room_id: str,
        *,
        members: dict[str, str] | None = None,
        levels: dict[str, int] | None = None,
    ) -> str:
        """A room with these members (user id → display name) and power levels; the bot is in."""
        room = self._rooms.setdefault(room_id, _Room())
        for user_id, name in (members or {}).items():
            room.members.add(user_id)
            room.names[user_id] = name
        room.members.add(self._bot)
        room.levels.update(levels or {})
        room.levels.setdefault(self._bot, 100)
        return room_id

    def set_level(self, room_id: str, user_id: str, level: int) -> None:
        self._rooms[room_id].levels[user_id] = level

    def set_state_level(self, room_id: str, event_type: str, level: int) -> None:
        self._rooms[room_id].state_levels[event_type] = level

    def leave_room(self, room_id: str, user_id: str) -> None:
        self._rooms[room_id].members.discard(user_id)

    def put_state(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        sender: str,
        state_key: str = "",
    ) -> None:
        """A member writes a state event: stored if their level allows it, as a homeserver does."""
        room = self._rooms[room_id]
        needed = room.state_levels.get(event_type, room.state_default)
        if room.levels.get(sender, 0) < needed:
            raise PermissionError(f"{sender} needs level {needed} for {event_type}")
        room.state[(event_type, state_key)] = dict(content)

    def take_echoes(self) -> list[dict[str, Any]]:
        """The bot's state events since the last call, as the homeserver sends them back."""
        echoes, self._echoes = self._echoes, []
        return echoes

    def hold_sends(self) -> _Gate:
        """Make the homeserver slow: every send waits, from now on, until the gate opens."""
        self._gate = _Gate()
        return self._gate

    def homeserver_down(self) -> None:
        self._down = True

    def homeserver_back(self) -> None:
        self._down = False

    # --- what the test reads --------------------------------------------------------------

    def in_room(self, room_id: str, kind: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.room_id == room_id and kind in (None, s.kind)]

    def notices(self, room_id: str) -> list[str]:
        """The plain text of every notice posted in the room, oldest first (edits excluded)."""
        return [s.body for s in self.in_room(room_id, "notice")]

    def replies_to(self, event_id: str) -> list[Sent]:
        return [s for s in self.sent if s.reply_to == event_id]

    def edits_of(self, event_id: str) -> list[Sent]:
        return [s for s in self.sent if s.kind == "edit" and s.edit_of == event_id]

    def current_text(self, event_id: str) -> str:
        """What a client shows for an event now: its last edit, or itself."""
        edits = self.edits_of(event_id)
        if edits:
            return edits[-1].body
        return next(s.body for s in self.sent if s.event_id == event_id)

    # --- the Matrix port ------------------------------------------------------------------

    @property
    def bot_mxid(self) -> str:
        return self._bot

    async def send_notice(
        self,
        room_id: str,
        notice: Notice,
        *,
        txn_id: str,
        reply_to: str | None = None,
        thread_root: str | None = None,
    ) -> str:
        await self._through_gate()
        return self._record(
            Sent(
                "",
                room_id,
                "notice",
                notice.plain,
                notice.html,
                txn_id,
                reply_to=reply_to,
                thread_root=thread_root,
            )
        )

    async def edit_notice(self, room_id: str, event_id: str, notice: Notice, *, txn_id: str) -> str:
        await self._through_gate()
        return self._record(
            Sent("", room_id, "edit", notice.plain, notice.html, txn_id, edit_of=event_id)
        )

    async def send_text(
        self,
        room_id: str,
        notice: Notice,
        *,
        txn_id: str,
        sender: str | None = None,
        sender_name: str | None = None,
        edit_of: str | None = None,
    ) -> str:
        await self._through_gate()
        return self._record(
            Sent(
                "",
                room_id,
                "text",
                notice.plain,
                notice.html,
                txn_id,
                edit_of=edit_of,
                sender=sender or self._bot,
                sender_name=sender_name,
            )
        )

    async def send_file(
        self,
        room_id: str,
        data: bytes,
        *,
        filename: str,
        mimetype: str,
        txn_id: str,
        thread_root: str | None = None,
    ) -> str:
        content = {"filename": filename, "mimetype": mimetype, "data": data}
        await self._through_gate()
        return self._record(
            Sent(
                "", room_id, "file", filename, "", txn_id, thread_root=thread_root, content=content
            )
        )

    async def react(self, room_id: str, event_id: str, key: str, *, txn_id: str) -> None:
        await self._through_gate()
        self._record(Sent("", room_id, "reaction", "", "", txn_id, reply_to=event_id, key=key))

    async def display_name(self, room_id: str, user_id: str) -> str:
        self._check_up()
        room = self._rooms.get(room_id)
        return room.names.get(user_id, user_id) if room else user_id

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        self._check_up()
        room = self._rooms.get(room_id)
        return room is not None and user_id in room.members

    async def power_level(self, room_id: str, user_id: str) -> int:
        self._check_up()
        room = self._rooms.get(room_id)
        return room.levels.get(user_id, 0) if room else 0

    async def level_needed_for_state(self, room_id: str, event_type: str) -> int:
        self._check_up()
        room = self._rooms[room_id]
        return room.state_levels.get(event_type, room.state_default)

    async def state_content(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        self._check_up()
        room = self._rooms.get(room_id)
        content = room.state.get((event_type, state_key)) if room else None
        return dict(content) if content is not None else None

    async def send_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        self._check_up()
        room = self._rooms[room_id]
        needed = await self.level_needed_for_state(room_id, event_type)
        if room.levels.get(self._bot, 0) < needed:
            raise BotLacksPower(needed)
        room.state[(event_type, state_key)] = dict(content)
        event_id = self._new_event_id()
        self.sent.append(Sent(event_id, room_id, "state", key=event_type, content=dict(content)))
        self._echoes.append(
            {
                "type": event_type,
                "state_key": state_key,
                "sender": self._bot,
                "room_id": room_id,
                "event_id": event_id,
                "content": dict(content),
            }
        )
        return event_id

    async def join(self, room_id: str) -> None:
        self._check_up()
        self.joined_rooms.add(room_id)
        self._rooms.setdefault(room_id, _Room()).members.add(self._bot)

    async def leave(self, room_id: str, reason: str) -> None:
        self._check_up()
        self.left_rooms.append((room_id, reason))
        if room_id in self._rooms:
            self._rooms[room_id].members.discard(self._bot)

    # --- internals ------------------------------------------------------------------------

    async def _through_gate(self) -> None:
        if self._gate is not None:
            self._gate.arrived.set()
            await self._gate.opened.wait()

    def _check_up(self) -> None:
        if self._down:
            raise MatrixUnavailable("the fake homeserver is down")

    def _new_event_id(self) -> str:
        return f"$fake{next(self._ids)}"

    def _record(self, sent: Sent) -> str:
        self._check_up()
        # A homeserver answers a repeated transaction id with the first event, posting nothing.
        scoped = f"{sent.sender}|{sent.txn_id}"
        if sent.txn_id and scoped in self._by_txn:
            return self._by_txn[scoped]
        event_id = self._new_event_id()
        self.sent.append(
            Sent(**{**sent.__dict__, "event_id": event_id})  # frozen: rebuild with its id
        )
        if sent.txn_id:
            self._by_txn[scoped] = event_id
        return event_id
