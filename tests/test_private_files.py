"""What holds secrets or people's words is readable by the bridge's user only."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import cast

import pytest
from fast import FastBridge
from livekit_double import LiveKitDouble
from mautrix.appservice import AppServiceAPI
from mautrix.types import UserID
from mautrix.util.logging import TraceLogger

from appservice.demo import prepare_demo
from appservice.encryption import LEGACY_PICKLE_KEY, EndToBridgeEncryption


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_database_is_created_owner_only(tmp_path: Path, fast: FastBridge) -> None:
    assert _mode(tmp_path / "bridge.db") == 0o600


async def test_a_world_readable_sqlite_database_is_made_owner_only(
    tmp_path: Path, livekit: LiveKitDouble
) -> None:
    database = tmp_path / "bridge.db"
    database.touch(mode=0o644)
    database.chmod(0o644)  # whatever the umask
    async with FastBridge(tmp_path, livekit):
        assert _mode(database) == 0o600


def test_every_file_of_the_demo_is_owner_only(tmp_path: Path) -> None:
    setup = prepare_demo(tmp_path / "demo")
    for name in ("config.yaml", "registration.yaml", "demo-password"):
        assert _mode(setup.workdir / name) == 0o600, name


@pytest.mark.parametrize(("configured", "used"), [("k" * 43, "k" * 43), ("", LEGACY_PICKLE_KEY)])
async def test_the_bots_keys_are_pickled_with_the_configured_key(
    tmp_path: Path, configured: str, used: str
) -> None:
    api = AppServiceAPI(
        base_url="http://127.0.0.1:1",
        bot_mxid=UserID("@visio:localhost"),
        token="t",
        log=cast(TraceLogger, logging.getLogger("mau.as")),
    )
    crypto = EndToBridgeEncryption(
        homeserver_address="http://127.0.0.1:1",
        bot=api.bot_intent(),
        as_token="t",
        database_url=f"sqlite:{tmp_path / 'crypto.db'}",
        database_args={},
        msc4190=False,
        pickle_key=configured,
    )
    assert crypto.store.pickle_key == used
