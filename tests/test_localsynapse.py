"""End-to-end check of the throwaway Synapse used by the fixtures and the demo."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yaml

from appservice.local.synapse import LocalSynapse

pytest.importorskip("synapse")
nio = pytest.importorskip("nio")

pytestmark = pytest.mark.synapse

AS_TOKEN = "as_token_for_tests"


def _write_registration(path: pathlib.Path) -> None:
    registration = {
        "id": "visio",
        # Nothing listens there: the homeserver only pushes transactions to it.
        "url": "http://127.0.0.1:9",
        "as_token": AS_TOKEN,
        "hs_token": "hs_token_for_tests",
        "sender_localpart": "visio",
        "namespaces": {
            "users": [{"exclusive": True, "regex": "@visio_.*:localhost"}],
            "aliases": [],
            "rooms": [],
        },
        "rate_limited": False,
    }
    path.write_text(yaml.safe_dump(registration), encoding="utf-8")


@pytest.fixture
async def synapse(tmp_path: pathlib.Path) -> AsyncIterator[LocalSynapse]:
    registration = tmp_path / "registration.yaml"
    _write_registration(registration)
    async with LocalSynapse(tmp_path / "hs", registration_files=[registration]) as hs:
        print(f"LocalSynapse started in {hs.start_duration:.2f}s")
        yield hs
    assert not hs.running
    await hs.stop()  # stopping twice is harmless


async def test_user_can_log_in_create_room_and_send(synapse: LocalSynapse) -> None:
    user = await synapse.register_user("alice", "correct horse", displayname="Alice")
    assert user.user_id == "@alice:localhost"

    client = nio.AsyncClient(synapse.base_url, user.user_id)
    try:
        login = await client.login("correct horse")
        assert isinstance(login, nio.LoginResponse), login
        room = await client.room_create(name="Réunion")
        assert isinstance(room, nio.RoomCreateResponse), room
        sent = await client.room_send(
            room.room_id, "m.room.message", {"msgtype": "m.text", "body": "bonjour"}
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        profile = await client.get_displayname(user.user_id)
        assert isinstance(profile, nio.ProfileGetDisplayNameResponse), profile
        assert profile.displayname == "Alice"
    finally:
        await client.close()


async def test_appservice_token_is_accepted(synapse: LocalSynapse) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{synapse.base_url}/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {AS_TOKEN}"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["user_id"] == "@visio:localhost"
