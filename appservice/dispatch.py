"""Routing one homeserver event to what the bridge does about it.

Only two kinds matter for now: an invite of the bot (join if the operator allows the inviter)
and a message that is a `/visio` command. Everything the bridge's own users send is ignored,
so the bot never answers itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from appservice.command_parser import parse_command
from appservice.encryption import EndToBridgeEncryption, Undecryptable
from appservice.settings import Settings
from bridge.commands import CommandContext, VisioCommands
from bridge.ids import EventID, RoomID, UserID
from bridge.messages.render import notice
from bridge.ports import Matrix, txn_id_for
from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[None]]


class EventDispatcher:
    def __init__(
        self,
        settings: Settings,
        matrix: Matrix,
        commands: VisioCommands,
        room_settings: RoomSettings,
    ) -> None:
        self._settings = settings
        self._matrix = matrix
        self._commands = commands
        self._room_settings = room_settings
        self._subscribers: dict[str, list[Handler]] = {}
        self._crypto: EndToBridgeEncryption | None = None
        self._told_encryption_off: set[str] = set()  # rooms told so since this start
        self._bot = settings.bot_mxid
        domain = re.escape(settings.homeserver.domain)
        prefix = re.escape(settings.appservice.user_prefix)
        self._own_users = re.compile(rf"^@{prefix}.+:{domain}$")

    def use_encryption(self, crypto: EndToBridgeEncryption) -> None:
        """Decrypt `m.room.encrypted` events, and keep the crypto state in step with rooms."""
        self._crypto = crypto

    def subscribe(self, event_type: str, handler: Handler) -> None:
        """Room events of `event_type` from people (not commands, not the bridge's own users)
        also go to `handler`: reactions to the lobby, messages and redactions to the chat mirror."""
        self._subscribers.setdefault(event_type, []).append(handler)

    def is_own_user(self, user_id: str) -> bool:
        return user_id == self._bot or self._own_users.match(user_id) is not None

    async def handle(self, event: Mapping[str, Any]) -> None:
        sender = event.get("sender")
        room_id = event.get("room_id")
        event_id = event.get("event_id")
        if not (isinstance(sender, str) and isinstance(room_id, str) and isinstance(event_id, str)):
            return
        if event.get("type") == ROOM_CONFIG_EVENT and event.get("state_key") == "":
            # Settings changes count whoever sent them, the bot included: the bot writes them
            # for `/visio config` and for roll-backs, and this handler alone applies them.
            await self._room_settings.on_state_event(event)
            return
        if self._crypto is not None and event.get("type") in ("m.room.encryption", "m.room.member"):
            await self._crypto.observe_state(event)
        if self.is_own_user(sender):
            return
        if event.get("type") == "m.room.encrypted":
            if self._crypto is None:
                # Encryption is off in this bridge: nothing to read, but say so, once.
                await self._encryption_off(RoomID(room_id))
                return
            # Raises Undecryptable while the keys are missing: the inbox retries later.
            await self.handle(await self._crypto.decrypt(event))
            return
        content = event.get("content")
        if not isinstance(content, Mapping):
            return
        event_type = str(event.get("type"))
        if event_type == "m.room.member" and event.get("state_key") == self._bot:
            if content.get("membership") == "invite":
                await self._on_invite(RoomID(room_id), UserID(sender), EventID(event_id))
            return
        # Edits are not commands: re-running `/visio end` because someone fixed a typo in an
        # old message would surprise everyone.
        if event_type == "m.room.message" and "m.new_content" not in content:
            command = parse_command(content, self._bot, self._settings.appservice.bot_displayname)
            if command is not None:
                ctx = CommandContext(
                    room_id=RoomID(room_id),
                    sender=UserID(sender),
                    event_id=EventID(event_id),
                    config=await self._room_settings.effective(room_id),
                    sent_at_ms=_timestamp(event),
                )
                await self._commands.run(ctx, command)
                return
        for handler in self._subscribers.get(event_type, ()):
            await handler(event)

    async def gave_up(self, event: Mapping[str, Any], error: Exception) -> None:
        """The inbox stopped retrying `event`; tell the sender when it could not be read."""
        if not isinstance(error, Undecryptable):
            return
        room_id, sender = str(event.get("room_id")), str(event.get("sender"))
        language = await self._room_settings.language(room_id)
        name = await self._matrix.display_name(room_id, sender)
        await self._matrix.send_notice(
            room_id,
            notice(language, "undecryptable", user=name),
            reply_to=str(event.get("event_id")),
            txn_id=txn_id_for(str(event.get("event_id")), "undecryptable"),
        )

    async def _encryption_off(self, room_id: RoomID) -> None:
        """Tell an encrypted room, once, that the bot cannot read it until the operator turns
        encryption on; otherwise every command there would go unanswered without a word.

        The transaction id is derived from the room alone: a restart, or a replay of the same
        events, sends the same transaction again, which the homeserver answers with the first
        notice's event instead of posting a second one."""
        if room_id in self._told_encryption_off:
            return
        log.warning(
            "Encrypted message in %s ignored: encryption is off in this bridge "
            "(set encryption.enabled: true in the config to read encrypted rooms)",
            room_id,
        )
        language = await self._room_settings.language(room_id)
        await self._matrix.send_notice(
            room_id,
            notice(language, "encryption_off"),
            txn_id=txn_id_for(room_id, "encryption-off"),
        )
        self._told_encryption_off.add(room_id)

    async def _on_invite(self, room_id: RoomID, inviter: UserID, event_id: EventID) -> None:
        if not self._settings.may_invite(inviter):
            log.info("Refusing invite to %s from %s (not allowed by permissions)", room_id, inviter)
            await self._matrix.leave(room_id, reason="This bridge is not available to you.")
            return
        log.info("Joining %s, invited by %s", room_id, inviter)
        await self._matrix.join(room_id)
        # A room we (re)join may have changed its settings while we were out: read them anew.
        await self._room_settings.reread(room_id)
        language = await self._room_settings.language(room_id)
        await self._matrix.send_notice(
            room_id, notice(language, "hello"), txn_id=txn_id_for(event_id, "hello")
        )


def _timestamp(event: Mapping[str, Any]) -> int:
    sent_at = event.get("origin_server_ts")
    return sent_at if isinstance(sent_at, int) and not isinstance(sent_at, bool) else 0
