"""End-to-bridge encryption: the bot's own device, so it can read and write encrypted rooms.

Tchap's private rooms are end-to-end encrypted. The bot gets a device (created with
`m.login.application_service`, or MSC4190 where the homeserver delegates logins to Matrix
Authentication Service), keeps its Olm/Megolm state in the bridge's database (mautrix's crypto
store, PostgreSQL or SQLite), receives to-device messages, device-list changes and one-time-key
counts inside homeserver transactions (MSC2409 / MSC3202), decrypts incoming events and
encrypts everything it sends to encrypted rooms. A lost crypto store, or a device the server
no longer knows, is replaced by a new device, which the log says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

from mautrix.appservice import IntentAPI
from mautrix.client import Client
from mautrix.client.state_store import MemoryStateStore
from mautrix.crypto import OlmMachine, PgCryptoStore, StateStore
from mautrix.errors import EncryptionError, MNotFound, SessionNotFound
from mautrix.types import (
    JSON,
    ASToDeviceEvent,
    DeviceID,
    DeviceLists,
    DeviceOTKCount,
    EncryptedEvent,
    EventType,
    LoginType,
    RoomEncryptionStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)
from mautrix.util.async_db import Database
from mautrix.util.logging import TraceLogger

log = logging.getLogger(__name__)

DEVICE_NAME = "visio-bridge"
# What installs without `encryption.pickle_key` used, and still use so their keys stay readable.
LEGACY_PICKLE_KEY = "visio-bridge.e2ee"


class Undecryptable(Exception):
    """An encrypted event whose keys have not arrived (yet)."""


class _RoomEncryption(StateStore):
    """What OlmMachine asks about rooms, answered from state events seen and the homeserver."""

    def __init__(self, bot: IntentAPI) -> None:
        self._bot = bot
        self._encryption: dict[str, RoomEncryptionStateEventContent | None] = {}

    def saw_encryption_event(self, room_id: str, content: Mapping[str, Any]) -> None:
        self._encryption[room_id] = RoomEncryptionStateEventContent.deserialize(
            cast(JSON, dict(content))
        )

    async def is_encrypted(self, room_id: RoomID) -> bool:
        return await self.get_encryption_info(room_id) is not None

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        if room_id not in self._encryption:
            try:
                content = await self._bot.get_state_event(room_id, EventType.ROOM_ENCRYPTION)
            except MNotFound:
                content = None
            self._encryption[room_id] = cast(RoomEncryptionStateEventContent | None, content)
        return self._encryption[room_id]

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        # Used to rotate sessions when someone's devices change; the bridge rotates on
        # membership changes instead (handle_member_event), so it need not track this.
        return []


class EndToBridgeEncryption:
    def __init__(
        self,
        *,
        homeserver_address: str,
        bot: IntentAPI,
        as_token: str,
        database_url: str,
        database_args: Mapping[str, Any],
        msc4190: bool,
        pickle_key: str = "",
    ) -> None:
        if not pickle_key:
            log.warning(
                "encryption.pickle_key is not set: the bot's keys are stored under the key every "
                "install shares; set one (visio-bridge generate-registration prints one)"
            )
        self._bot = bot
        self._as_token = as_token
        self._msc4190 = msc4190
        self._db = Database.create(
            database_url,
            upgrade_table=PgCryptoStore.upgrade_table,
            db_args=dict(database_args),
            log=cast(TraceLogger, logging.getLogger("mau.crypto.db")),
        )
        self.store = PgCryptoStore(str(bot.mxid), pickle_key or LEGACY_PICKLE_KEY, self._db)
        self._rooms = _RoomEncryption(bot)
        self.client = Client(
            base_url=homeserver_address,
            mxid=bot.mxid,
            state_store=MemoryStateStore(),
            sync_store=self.store,
            log=cast(TraceLogger, logging.getLogger("mau.crypto.client")),
        )
        self.machine = OlmMachine(self.client, self.store, self._rooms)
        self._sharing: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self._db.start()
        device_id = await self.store.get_device_id()
        await self._open_device(device_id)
        await self.machine.load()
        if not device_id:
            await self.store.put_device_id(self.client.device_id)
            log.info("Encryption: new bot device %s", self.client.device_id)
        elif not await self._keys_on_server():
            # The server forgot our device (or the store is from elsewhere): start afresh.
            log.warning(
                "Encryption: device %s has no keys on the homeserver; resetting the crypto "
                "store and creating a new device",
                device_id,
            )
            await self.store.delete()
            await self._open_device(None)
            await self.machine.load()
            await self.store.put_device_id(self.client.device_id)
            log.info("Encryption: new bot device %s", self.client.device_id)
        await self.machine.share_keys()

    async def _open_device(self, device_id: DeviceID | None) -> None:
        self.client.api.token = self._as_token
        if self._msc4190:
            await self.client.create_device_msc4190(
                device_id=device_id or "", initial_display_name=DEVICE_NAME
            )
        else:
            await self.client.login(
                login_type=LoginType.APPSERVICE,
                identifier=self.client.mxid,
                device_name=DEVICE_NAME,
                device_id=device_id,
            )

    async def _keys_on_server(self) -> bool:
        response = await self.client.query_keys([self.client.mxid])
        devices = response.device_keys.get(self.client.mxid, {})
        return self.client.device_id in devices

    async def stop(self) -> None:
        await self._db.stop()

    # ---- what arrives with transactions (before they are acknowledged) -----------------------

    async def handle_transaction_extras(self, body: Mapping[str, Any]) -> None:
        for raw in _with_fallback(body, "to_device", "de.sorunome.msc2409") or []:
            try:
                await self.machine.handle_as_to_device_event(
                    cast(ASToDeviceEvent, ASToDeviceEvent.deserialize(raw))
                )
            except Exception:
                log.exception("Encryption: to-device event not handled")
        lists = _with_fallback(body, "device_lists", "org.matrix.msc3202")
        if lists:
            await self.machine.handle_as_device_lists(DeviceLists.deserialize(lists))
        counts = _with_fallback(body, "device_one_time_keys_count", "org.matrix.msc3202") or {}
        if counts:
            await self.machine.handle_as_otk_counts(
                {
                    UserID(user): {
                        DeviceID(device): DeviceOTKCount.deserialize(count)
                        for device, count in devices.items()
                    }
                    for user, devices in counts.items()
                }
            )

    # ---- room events -----------------------------------------------------------------------

    async def observe_state(self, event: Mapping[str, Any]) -> None:
        """Track encryption settings and membership (a leave rotates the room's session)."""
        if event.get("type") == "m.room.encryption":
            self._rooms.saw_encryption_event(str(event["room_id"]), event.get("content") or {})
        elif event.get("type") == "m.room.member":
            await self.machine.handle_member_event(StateEvent.deserialize(cast(JSON, dict(event))))

    async def decrypt(self, event: Mapping[str, Any]) -> dict[str, Any]:
        encrypted = EncryptedEvent.deserialize(cast(JSON, dict(event)))
        try:
            decrypted = await self.machine.decrypt_megolm_event(encrypted)
        except SessionNotFound as err:
            # The room key may be on its way in a to-device message: wait a little.
            if await self.machine.wait_for_session(encrypted.room_id, err.session_id, timeout=3):
                decrypted = await self.machine.decrypt_megolm_event(encrypted)
            else:
                raise Undecryptable(
                    f"no session {err.session_id} for {encrypted.event_id}"
                ) from err
        plain = decrypted.serialize()
        plain["event_id"] = str(encrypted.event_id)
        plain["room_id"] = str(encrypted.room_id)
        plain["sender"] = str(encrypted.sender)
        return dict(plain)

    async def is_encrypted(self, room_id: str) -> bool:
        return await self._rooms.is_encrypted(RoomID(room_id))

    async def encrypt(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        """The `m.room.encrypted` content for an event to send to an encrypted room."""
        kind = EventType.find(event_type, EventType.Class.MESSAGE)
        try:
            encrypted = await self.machine.encrypt_megolm_event(RoomID(room_id), kind, content)
        except EncryptionError:
            lock = self._sharing.setdefault(room_id, asyncio.Lock())
            async with lock:
                # Another task may have shared the session while we waited.
                try:
                    encrypted = await self.machine.encrypt_megolm_event(
                        RoomID(room_id), kind, content
                    )
                except EncryptionError:
                    members = await self._bot.get_joined_members(RoomID(room_id))
                    await self.machine.share_group_session(RoomID(room_id), list(members))
                    encrypted = await self.machine.encrypt_megolm_event(
                        RoomID(room_id), kind, content
                    )
        return dict(encrypted.serialize())


def _with_fallback(body: Mapping[str, Any], key: str, prefix: str) -> Any:
    for name in (key, f"{prefix}.{key}"):
        if name in body:
            return body[name]
    return None
