"""`bridge.ports.Matrix` over mautrix's IntentAPI: the client-server calls the bridge makes.

Kept thin on purpose: it translates between the bridge's plain values and mautrix types, and
mautrix's and aiohttp's errors into the bridge's (`MatrixUnavailable`, `BotLacksPower`). Sends
carry the caller's transaction id, so a replay after a crash makes the homeserver return the
first send's event instead of posting twice.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

import aiohttp
from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.crypto.attachments import encrypt_attachment
from mautrix.errors import MatrixConnectionError, MForbidden, MNotFound
from mautrix.types import (
    EventID,
    EventType,
    FileInfo,
    Format,
    MediaMessageEventContent,
    MessageType,
    PowerLevelStateEventContent,
    RoomID,
    TextMessageEventContent,
    UserID,
)

from bridge.messages.render import Notice
from bridge.ports import BotLacksPower, MatrixUnavailable

log = logging.getLogger(__name__)


class Encryptor(Protocol):
    async def is_encrypted(self, room_id: str) -> bool: ...

    async def encrypt(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> dict[str, Any]: ...


# Room versions before MSC4289 (room v12), where creators are ordinary power-level holders.
_VERSIONS_WITHOUT_PRIVILEGED_CREATORS = frozenset(str(version) for version in range(1, 12))
# Stands for "infinite": above any power level a room can grant.
CREATOR_POWER_LEVEL = 2**53


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unreachable_as_bridge_error(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Make "the homeserver did not answer" a `MatrixUnavailable`, whichever library said it."""

    @functools.wraps(method)
    async def translated(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except (MatrixConnectionError, aiohttp.ClientError, TimeoutError) as err:
            raise MatrixUnavailable(f"homeserver unreachable: {err!r}") from err

    return translated


class MatrixAdapter:
    """The `Matrix` port over mautrix's IntentAPI, as the bot and its ghost users."""

    def __init__(self, bot: IntentAPI, ghosts: Callable[[UserID], IntentAPI] | None = None) -> None:
        self._bot = bot
        self._crypto: Encryptor | None = None
        self._ghosts = ghosts
        self._ghost_names: dict[str, str] = {}
        self._creators: dict[str, frozenset[str]] = {}

    def use_encryption(self, crypto: Encryptor) -> None:
        """From now on, events for encrypted rooms are encrypted before they are sent."""
        self._crypto = crypto

    async def _send(
        self, intent: IntentAPI, room_id: str, event_type: EventType, content: Any, txn_id: str
    ) -> str:
        if self._crypto is not None and await self._crypto.is_encrypted(room_id):
            raw = content.serialize() if hasattr(content, "serialize") else dict(content)
            encrypted = await self._crypto.encrypt(room_id, str(event_type), raw)
            event_type, content = EventType.ROOM_ENCRYPTED, encrypted
        event_id = await intent.send_message_event(
            RoomID(room_id), event_type, content, txn_id=txn_id
        )
        return str(event_id)

    @property
    def bot_intent(self) -> IntentAPI:
        return self._bot

    @property
    def bot_mxid(self) -> str:
        return str(self._bot.mxid)

    @_unreachable_as_bridge_error
    async def send_notice(
        self,
        room_id: str,
        notice: Notice,
        *,
        txn_id: str,
        reply_to: str | None = None,
        thread_root: str | None = None,
    ) -> str:
        content = _notice_content(notice)
        if reply_to:
            content.set_reply(EventID(reply_to))
        if thread_root:
            content["m.relates_to"] = _in_thread(thread_root)
        # The bot never pings anyone with a notice: names appear as text, not mentions.
        content["m.mentions"] = {}
        return await self._send(self._bot, room_id, EventType.ROOM_MESSAGE, content, txn_id)

    @_unreachable_as_bridge_error
    async def edit_notice(self, room_id: str, event_id: str, notice: Notice, *, txn_id: str) -> str:
        content = _notice_content(notice)
        # mautrix builds the `m.new_content` copy and the "* " fallback body itself.
        content.set_edit(EventID(event_id))
        content["m.mentions"] = {}
        return await self._send(self._bot, room_id, EventType.ROOM_MESSAGE, content, txn_id)

    @_unreachable_as_bridge_error
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
        """Send chat as an `m.text` (by the bot, or by the ghost `sender`), or edit one."""
        intent = await self._ghost(sender, sender_name, room_id) if sender else self._bot
        content = TextMessageEventContent(
            msgtype=MessageType.TEXT,
            body=notice.plain,
            format=Format.HTML,
            formatted_body=notice.html,
        )
        if edit_of:
            content.set_edit(EventID(edit_of))
        content["m.mentions"] = {}
        return await self._send(intent, room_id, EventType.ROOM_MESSAGE, content, txn_id)

    async def _ghost(self, user_id: str, displayname: str | None, room_id: str) -> IntentAPI:
        """The ghost's intent, registered, named and joined to the room (invited by the bot)."""
        if self._ghosts is None:
            raise RuntimeError("no ghost users in this bridge")
        intent = self._ghosts(UserID(user_id))
        await intent.ensure_registered()
        if displayname and self._ghost_names.get(user_id) != displayname:
            await intent.set_displayname(displayname)
            self._ghost_names[user_id] = displayname
        await intent.ensure_joined(RoomID(room_id))
        return intent

    @_unreachable_as_bridge_error
    async def display_name(self, room_id: str, user_id: str) -> str:
        """The user's display name in the room, falling back to their user id."""
        try:
            member = await self._bot.get_room_member_info(
                RoomID(room_id), UserID(user_id), ignore_cache=True
            )
        except (MNotFound, MForbidden):
            return user_id
        name = getattr(member, "displayname", None) if member else None
        return str(name) if name else user_id

    @_unreachable_as_bridge_error
    async def is_joined(self, room_id: str, user_id: str) -> bool:
        """Whether the user is joined to the room now (asked fresh, never from a cache)."""
        try:
            member = await self._bot.api.request(
                Method.GET, Path.v3.rooms[RoomID(room_id)].state["m.room.member"][user_id]
            )
        except (MNotFound, MForbidden):
            return False
        return isinstance(member, dict) and member.get("membership") == "join"

    @_unreachable_as_bridge_error
    async def power_level(self, room_id: str, user_id: str) -> int:
        """The user's power level, counting room creators of v12+ rooms as above everyone."""
        if user_id in await self._privileged_creators(room_id):
            return CREATOR_POWER_LEVEL
        levels: PowerLevelStateEventContent = await self._bot.get_power_levels(
            RoomID(room_id), ignore_cache=True
        )
        return int(levels.get_user_level(UserID(user_id)))

    async def _privileged_creators(self, room_id: str) -> frozenset[str]:
        # Room version 12 (MSC4289) gives the creators infinite power and leaves them out of
        # m.room.power_levels, so reading power levels alone would call the owner a nobody.
        # The create event never changes: cache it per room.
        if room_id not in self._creators:
            # The state endpoint returns only content; ?format=event adds the sender.
            create = await self._bot.api.request(
                Method.GET,
                Path.v3.rooms[RoomID(room_id)].state["m.room.create"][""],
                query_params={"format": "event"},
            )
            content = create.get("content", create)
            creators: frozenset[str] = frozenset()
            if str(content.get("room_version", "1")) not in _VERSIONS_WITHOUT_PRIVILEGED_CREATORS:
                sender = create.get("sender") or content.get("creator", "")
                additional = content.get("additional_creators") or []
                creators = frozenset([str(sender), *(str(user) for user in additional)])
            self._creators[room_id] = creators
        return self._creators[room_id]

    @_unreachable_as_bridge_error
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
        """Upload `data` and post it as an `m.file` (an encrypted attachment in encrypted rooms)."""
        content = MediaMessageEventContent(
            msgtype=MessageType.FILE,
            body=filename,
            filename=filename,
            info=FileInfo(mimetype=mimetype, size=len(data)),
        )
        if self._crypto is not None and await self._crypto.is_encrypted(room_id):
            ciphertext, encrypted_file = encrypt_attachment(data)
            encrypted_file.url = await self._bot.upload_media(
                ciphertext, mime_type="application/octet-stream"
            )
            content.file = encrypted_file
        else:
            content.url = await self._bot.upload_media(data, mime_type=mimetype, filename=filename)
        if thread_root:
            content["m.relates_to"] = _in_thread(thread_root)
        return await self._send(self._bot, room_id, EventType.ROOM_MESSAGE, content, txn_id)

    @_unreachable_as_bridge_error
    async def react(self, room_id: str, event_id: str, key: str, *, txn_id: str) -> None:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        await self._send(self._bot, room_id, EventType.REACTION, content, txn_id)

    @_unreachable_as_bridge_error
    async def state_content(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        """The content of a room state event, or None when there is none."""
        try:
            content = await self._bot.api.request(
                Method.GET, Path.v3.rooms[RoomID(room_id)].state[event_type][state_key]
            )
        except MNotFound:
            return None
        return dict(content) if isinstance(content, dict) else None

    @_unreachable_as_bridge_error
    async def send_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        """Write a state event as the bot; raises `BotLacksPower` when the room forbids it."""
        try:
            response = await self._bot.api.request(
                Method.PUT, Path.v3.rooms[RoomID(room_id)].state[event_type][state_key], content
            )
        except MForbidden as err:
            needed = await self.level_needed_for_state(room_id, event_type)
            raise BotLacksPower(needed) from err
        return str(response.get("event_id", ""))

    @_unreachable_as_bridge_error
    async def level_needed_for_state(self, room_id: str, event_type: str) -> int:
        levels = await self._bot.get_power_levels(RoomID(room_id), ignore_cache=True)
        # mautrix keys `events` by EventType objects of unknown class: compare by name.
        for key, level in levels.events.items():
            if str(key) == event_type:
                return int(level)
        return int(levels.state_default)

    @_unreachable_as_bridge_error
    async def join(self, room_id: str) -> None:
        await self._bot.join_room(RoomID(room_id))

    @_unreachable_as_bridge_error
    async def leave(self, room_id: str, reason: str) -> None:
        await self._bot.leave_room(RoomID(room_id), reason=reason)


def _in_thread(root: str) -> dict[str, Any]:
    # Clients without threads show a reply to the root instead (the falling-back form).
    return {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root},
    }


def _notice_content(notice: Notice) -> TextMessageEventContent:
    return TextMessageEventContent(
        msgtype=MessageType.NOTICE,
        body=notice.plain,
        format=Format.HTML,
        formatted_body=notice.html,
    )
