"""Test harness: a real Synapse with the bridge registered, the bridge, and a human on matrix-nio.

Nothing here replaces the project's own code: the bridge runs through `BridgeServer`, the
same wiring as `visio-bridge run`, against real Synapse and either the real livekit-server
(`LocalLiveKit`, with the bridge's real rtc participant) or the LiveKit double (egress, faults).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nio
import yaml
from call_participant_double import CallParticipantDouble
from livekit_double import LiveKitDouble

from appservice.app import BRIDGE, BridgeServer
from appservice.local.livekit import LocalLiveKit
from appservice.local.ports import free_port
from appservice.local.synapse import LocalSynapse
from appservice.registration import new_registration
from appservice.settings import Settings, parse_settings
from appservice.wiring import Bridge, Options

SERVER_NAME = "localhost"
BOT = f"@visio:{SERVER_NAME}"


@dataclass(frozen=True)
class DatabaseTarget:
    url: str
    args: Mapping[str, Any]


class ManualClock:
    """A clock the test moves by hand (the `Clock` port), for retry and lease timings."""

    def __init__(self) -> None:
        self.now = 1_000_000

    def now_ms(self) -> int:
        return self.now


LiveKit = LiveKitDouble | LocalLiveKit


def bridge_config(
    *,
    synapse_port: int,
    bridge_port: int,
    livekit: LiveKit,
    database: DatabaseTarget,
    recordings_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": SERVER_NAME},
        "appservice": {
            "address": f"http://127.0.0.1:{bridge_port}",
            "hostname": "127.0.0.1",
            "port": bridge_port,
            "as_token": "unused-until-registration",
            "hs_token": "unused-until-registration",
        },
        "public_url": "https://visio.test",
        "database": {"url": database.url, "args": dict(database.args)},
        "livekit": {
            # What browsers are sent to; the real server is reached on loopback as they would.
            "url": livekit.rtc_url if isinstance(livekit, LocalLiveKit) else "wss://livekit.test",
            "api_url": livekit.url,
            "api_key": livekit.api_key,
            "api_secret": livekit.api_secret,
        },
        "permissions": {SERVER_NAME: "user"},
    }
    if recordings_dir is not None:
        # Each test's own folder: the bridge's participant records into it whenever a room's
        # transcript is on.
        config["transcription"] = {"recordings_dir": str(recordings_dir)}
    for key, value in (overrides or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


class Human:
    """A person on a Matrix client (matrix-nio), with waits that poll the room's history."""

    def __init__(self, client: nio.AsyncClient) -> None:
        self.client = client
        self.user_id: str = client.user_id

    async def create_room(self, *, invite_bot: bool = True, name: str = "Réunion") -> str:
        response = await self.client.room_create(name=name, invite=[BOT] if invite_bot else [])
        assert isinstance(response, nio.RoomCreateResponse), response
        return str(response.room_id)

    async def send(self, room_id: str, body: str, **extra: Any) -> str:
        content = {"msgtype": "m.text", "body": body, **extra}
        response = await self.client.room_send(room_id, "m.room.message", content)
        assert isinstance(response, nio.RoomSendResponse), response
        return str(response.event_id)

    async def history(self, room_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The room's events, oldest first, as raw dicts."""
        response = await self.client.room_messages(room_id, start="", limit=limit)
        assert isinstance(response, nio.RoomMessagesResponse), response
        return [event.source for event in reversed(response.chunk)]

    async def bot_notices(self, room_id: str) -> list[dict[str, Any]]:
        return [
            event
            for event in await self.history(room_id)
            if event.get("sender") == BOT
            and event.get("type") == "m.room.message"
            and event["content"].get("msgtype") == "m.notice"
        ]

    async def wait_for(
        self,
        room_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 15.0,
        count: int = 1,
    ) -> list[dict[str, Any]]:
        """Wait until `count` bot notices satisfy `predicate`; return them (oldest first)."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [event for event in await self.bot_notices(room_id) if predicate(event)]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                notices = [event["content"]["body"] for event in await self.bot_notices(room_id)]
                raise AssertionError(f"timed out waiting for {count} notice(s); saw {notices}")
            await asyncio.sleep(0.1)

    async def wait_joined(self, room_id: str, user_id: str = BOT, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = await self.client.joined_members(room_id)
            if isinstance(response, nio.JoinedMembersResponse) and any(
                member.user_id == user_id for member in response.members
            ):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{user_id} did not join {room_id}")

    async def close(self) -> None:
        await self.client.close()


@dataclass
class Stack:
    """Synapse + bridge + LiveKit (the real server or the double) for one test, torn down after.

    With the real server, the bridge joins calls with its real rtc participant, and
    `bridge_port` must be the port the server's webhooks were configured to reach.
    """

    workdir: Path
    livekit: LiveKit
    database: DatabaseTarget | None = None
    bridge_port: int | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)
    synapse_config: dict[str, Any] = field(default_factory=dict)
    transcriber: Any = None  # a Transcriber for the bridge's in-process worker, if any
    synapse: LocalSynapse = field(init=False)
    settings: Settings = field(init=False)
    bridge: BridgeServer | None = field(init=False, default=None)
    humans: list[Human] = field(init=False, default_factory=list)
    call_chat: CallParticipantDouble = field(init=False)
    config: dict[str, Any] = field(init=False)  # the bridge's config file, as a mapping

    async def __aenter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.call_chat = CallParticipantDouble(self.livekit.api_key, self.livekit.api_secret)
        database = self.database or DatabaseTarget(f"sqlite:{self.workdir / 'bridge.db'}", {})
        synapse_port, bridge_port = free_port(), self.bridge_port or free_port()
        config = bridge_config(
            synapse_port=synapse_port,
            bridge_port=bridge_port,
            livekit=self.livekit,
            database=database,
            recordings_dir=self.workdir / "recordings",
            overrides=self.config_overrides,
        )
        unsigned = parse_settings(config, self.workdir, {}, need_tokens=False)
        registration = new_registration(unsigned)
        registration_path = self.workdir / "registration.yaml"
        registration_path.write_text(yaml.safe_dump(registration))
        config["appservice"]["as_token"] = registration["as_token"]
        config["appservice"]["hs_token"] = registration["hs_token"]
        self.settings = parse_settings(config, self.workdir, {})
        self.config = config
        self.synapse = LocalSynapse(
            self.workdir / "synapse",
            server_name=SERVER_NAME,
            port=synapse_port,
            registration_files=[registration_path],
            extra_config=self.synapse_config,
        )
        await self.synapse.start()
        await self.start_bridge()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for human in self.humans:
            await human.close()
        await self.stop_bridge()
        await self.synapse.stop()

    async def start_bridge(self, options: Options | None = None) -> BridgeServer:
        options = options or Options(retry_base_delay_ms=200, status_coalesce_s=0.3)
        if options.call_chat is None and self.real_livekit is None:
            options = replace(options, call_chat=self.call_chat)
        if options.transcriber is None and self.transcriber is not None:
            options = replace(options, transcriber=self.transcriber, job_poll_s=0.1)
        self.bridge = BridgeServer(self.settings, options)
        await self.bridge.start()
        if isinstance(self.livekit, LiveKitDouble):
            self.livekit.webhook_url = f"{self.settings.appservice.address}/livekit/webhook"
        return self.bridge

    @property
    def real_livekit(self) -> LocalLiveKit | None:
        return self.livekit if isinstance(self.livekit, LocalLiveKit) else None

    @property
    def double(self) -> LiveKitDouble:
        assert isinstance(self.livekit, LiveKitDouble), "this test needs the LiveKit double"
        return self.livekit

    async def stop_bridge(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()
            self.bridge = None

    @property
    def app(self) -> Any:
        assert self.bridge is not None
        return self.bridge.app

    @property
    def running(self) -> Bridge:
        """The started bridge's objects (database, lifecycle, chat mirror…)."""
        return self.app[BRIDGE]

    async def human(self, localpart: str, displayname: str, *, admin: bool = False) -> Human:
        password = f"pw-{localpart}-secret"
        user = await self.synapse.register_user(
            localpart, password, admin=admin, displayname=displayname
        )
        client = nio.AsyncClient(self.synapse.base_url, user.user_id)
        login = await client.login(password)
        assert isinstance(login, nio.LoginResponse), login
        human = Human(client)
        self.humans.append(human)
        return human

    async def room_with_bot(self, human: Human) -> str:
        room_id = await human.create_room()
        await human.wait_joined(room_id)
        return room_id
