"""Encrypted rooms: the bot decrypts `/visio` and answers encrypted, with its own device.

Real Synapse configured for appservice encryption (MSC2409 to-device push, MSC3202 device
lists and masquerading); matrix-nio with end-to-end encryption plays the person.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from harness import BOT, Stack
from live_calls import bridge_in_call, join_as_guest, running_live_stack
from livekit_double import LiveKitDouble

from appservice.wiring import Options
from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytest.importorskip("olm")
pytestmark = pytest.mark.synapse

SYNAPSE_E2EE = {
    "experimental_features": {
        "msc2409_to_device_messages_enabled": True,
        "msc3202_device_masquerading": True,
        "msc3202_transaction_extensions": True,
    }
}
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


def _encrypting_stack(tmp_path: Path, livekit: LiveKitDouble) -> Stack:
    return Stack(
        tmp_path,
        livekit,
        config_overrides={"encryption": {"enabled": True}},
        synapse_config=SYNAPSE_E2EE,
    )


@pytest.fixture
async def e2ee_stack(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[Stack]:
    async with _encrypting_stack(tmp_path, livekit) as running:
        yield running


@pytest.fixture
async def e2ee_live_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Encryption on, with the real livekit-server and the bridge's real call participant."""
    overrides = {"encryption": {"enabled": True}}
    async with running_live_stack(tmp_path, overrides, synapse_config=SYNAPSE_E2EE) as running:
        yield running


class EncryptedPerson:
    """A person on an encrypting matrix-nio client, reading their room through /sync."""

    def __init__(self, client: nio.AsyncClient) -> None:
        self.client = client
        self.seen: list[Any] = []

    @classmethod
    async def create(cls, stack: Stack, localpart: str, name: str, store: Path) -> EncryptedPerson:
        password = f"pw-{localpart}-secret"
        user = await stack.synapse.register_user(localpart, password, displayname=name)
        store.mkdir(parents=True, exist_ok=True)
        client = nio.AsyncClient(
            stack.synapse.base_url,
            user.user_id,
            store_path=str(store),
            config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
        )
        login = await client.login(password, device_name="test")
        assert isinstance(login, nio.LoginResponse), login
        if client.should_upload_keys:
            await client.keys_upload()
        return cls(client)

    async def sync(self) -> None:
        response = await self.client.sync(timeout=500)
        assert isinstance(response, nio.SyncResponse), response
        for room in response.rooms.join.values():
            self.seen.extend(room.timeline.events)
        if self.client.should_query_keys:
            await self.client.keys_query()

    async def send(self, room_id: str, body: str) -> None:
        await self.sync()
        response = await self.client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, nio.RoomSendResponse), response

    async def wait_for_any(self, text: str, timeout: float = 30) -> Any:
        """A decrypted message from anyone containing `text`."""
        return await self._wait(lambda event: text in getattr(event, "body", ""), timeout)

    async def wait_for_bot(self, text: str, timeout: float = 30) -> Any:
        return await self._wait(
            lambda event: (
                getattr(event, "sender", None) == BOT and text in getattr(event, "body", "")
            ),
            timeout,
        )

    async def _wait(self, predicate: Any, timeout: float) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await self.sync()
            for event in self.seen:
                if predicate(event):
                    return event
        undecrypted = [e for e in self.seen if isinstance(e, nio.MegolmEvent)]
        raise AssertionError(f"no such decrypted message; undecrypted: {undecrypted}")


async def _encrypted_room(person: EncryptedPerson) -> str:
    created = await person.client.room_create(
        name="Secret", invite=[BOT], initial_state=[ENCRYPTION]
    )
    assert isinstance(created, nio.RoomCreateResponse), created
    for _ in range(100):
        members = await person.client.joined_members(created.room_id)
        if isinstance(members, nio.JoinedMembersResponse) and any(
            m.user_id == BOT for m in members.members
        ):
            return str(created.room_id)
        await asyncio.sleep(0.1)
    raise AssertionError("the bot did not join the encrypted room")


async def test_visio_in_an_encrypted_room(e2ee_stack: Stack, tmp_path: Path) -> None:
    alice = await EncryptedPerson.create(e2ee_stack, "alice", "Alice", tmp_path / "alice-store")
    try:
        room = await _encrypted_room(alice)
        hello = await alice.wait_for_bot("Bonjour")
        assert isinstance(hello, nio.RoomMessageNotice)
        assert hello.source["type"] == "m.room.encrypted" or hello.decrypted
        await alice.send(room, "!visio")
        started = await alice.wait_for_bot("Visio démarrée par Alice")
        assert started.decrypted  # it reached Alice encrypted, and her client could read it
        assert len(e2ee_stack.livekit.calls("CreateRoom")) == 1
    finally:
        await alice.client.close()


async def test_restart_keeps_the_device_and_a_wiped_store_gets_a_new_one(
    e2ee_stack: Stack, tmp_path: Path
) -> None:
    stack = e2ee_stack
    device = stack.running.crypto.client.device_id
    await stack.stop_bridge()
    await stack.start_bridge()
    assert stack.running.crypto.client.device_id == device
    # Lose the crypto store: the bridge starts with a new device instead of wedging.
    await stack.stop_bridge()
    db_path = Path(stack.settings.database_url.removeprefix("sqlite:"))
    with sqlite3.connect(db_path) as conn:
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'crypto_%'"
        ).fetchall()
        assert tables
        for (table,) in tables:
            conn.execute(f'DROP TABLE "{table}"')
    await stack.start_bridge()
    new_device = stack.running.crypto.client.device_id
    assert new_device and new_device != device
    # And it still works in an encrypted room.
    alice = await EncryptedPerson.create(stack, "alice", "Alice", tmp_path / "alice-store")
    try:
        room = await _encrypted_room(alice)
        await alice.send(room, "!visio")
        await alice.wait_for_bot("Visio démarrée par Alice")
    finally:
        await alice.client.close()


async def test_settings_chat_and_plain_rooms_with_encryption_on(
    e2ee_live_stack: Stack, tmp_path: Path
) -> None:
    stack = e2ee_live_stack
    alice = await EncryptedPerson.create(stack, "alice", "Alice", tmp_path / "alice-store")
    try:
        room = await _encrypted_room(alice)
        await alice.wait_for_bot("Bonjour")
        # A settings change in an encrypted room: obeyed, and the answers are encrypted.
        await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"language": "en"})
        await alice.send(room, "!visio")
        started = await alice.wait_for_bot("Video call started by Alice")
        assert started.decrypted
        slug = re.search(r"/m/([a-z-]+)", started.body)
        assert slug
        # The chat mirror: a guest in the call speaks through a ghost, encrypted too.
        zoe = await join_as_guest(stack, slug.group(1), "Zoé")
        await bridge_in_call(zoe)
        await zoe.say("bonjour de la visio")
        relayed = await alice.wait_for_any("bonjour de la visio")
        assert relayed.decrypted and relayed.sender == stack.running.chat.ghost_for(zoe.identity)
        # Room → call: Alice's encrypted message is read and mirrored.
        await alice.send(room, "merci")
        await zoe.wait_heard(lambda line: line.text == "Alice: merci")
    finally:
        await alice.client.close()
    # Unencrypted rooms work as before.
    bob = await stack.human("bob", "Bob")
    plain = await stack.room_with_bot(bob)
    await bob.send(plain, "!visio")
    [status] = await bob.wait_for(plain, lambda e: "Visio démarrée par Bob" in e["content"]["body"])
    assert status["type"] == "m.room.message"


@pytest.fixture
async def impatient_e2ee_stack(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[Stack]:
    async with _encrypting_stack(tmp_path, livekit) as running:
        await running.stop_bridge()
        await running.start_bridge(
            Options(retry_base_delay_ms=100, max_attempts=2, call_chat=running.call_chat)
        )
        yield running


async def test_an_undecryptable_message_gets_a_clear_notice(
    impatient_e2ee_stack: Stack, tmp_path: Path
) -> None:
    alice = await EncryptedPerson.create(
        impatient_e2ee_stack, "alice", "Alice", tmp_path / "alice-store"
    )
    try:
        room = await _encrypted_room(alice)
        await alice.wait_for_bot("Bonjour")
        # An encrypted event whose session the bot never received.
        bogus = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg",
            "device_id": "NOPE",
            "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
            "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
        }
        # Sent raw: nio would encrypt it once more.
        url = (
            f"{impatient_e2ee_stack.synapse.base_url}/_matrix/client/v3/rooms/{room}"
            "/send/m.room.encrypted/bogus-1"
        )
        headers = {"Authorization": f"Bearer {alice.client.access_token}"}
        async with aiohttp.ClientSession() as session:
            async with session.put(url, json=bogus, headers=headers) as response:
                assert response.status == 200, await response.text()
        notice = await alice.wait_for_bot("pas pu déchiffrer le message de Alice", timeout=40)
        assert notice.decrypted
    finally:
        await alice.client.close()
