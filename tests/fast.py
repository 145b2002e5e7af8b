"""The fast tier: every feature of the bridge, wired as in production, without a homeserver.

`FastBridge` runs `start_features` (the production wiring) over the recording `FakeMatrix`, a
SQLite (or PostgreSQL) database, a `ManualClock` and the LiveKit double, with no background
loop: a test delivers Matrix events through the inbox, then `settle()`s, which drains the inbox
and waits for every follow-up (status edits, widgets, recordings) the events caused. Nothing
sleeps to prove that nothing else happened: once settled, the bridge has done all it will.
The bridge's HTTP routes (webhooks, join page, token API…) answer on a loopback port,
`base_url`; LiveKit's webhooks reach them there.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from call_participant_double import CallParticipantDouble
from fakes.matrix import BOT, FakeMatrix
from harness import DatabaseTarget, ManualClock, bridge_config
from livekit_double import LiveKitDouble

from appservice.app import BRIDGE, add_routes
from appservice.local.ports import free_port
from appservice.settings import Settings, parse_settings
from appservice.wiring import Bridge, Options, open_database, open_livekit, start_features

ROOM = "!room:localhost"
ALICE = "@alice:localhost"
BOB = "@bob:localhost"


class FastBridge:
    def __init__(
        self,
        workdir: Path,
        livekit: LiveKitDouble,
        database: DatabaseTarget | None = None,
        config_overrides: dict[str, Any] | None = None,
        options: Options | None = None,
    ) -> None:
        self.workdir = workdir
        self.livekit = livekit
        self.matrix = FakeMatrix()
        self.clock = ManualClock()
        # From the wall time: the LiveKit double stamps its webhooks with it, and a meeting's
        # start comes from `room_started`, so durations need both clocks to agree.
        self.clock.now = time.time_ns() // 1_000_000
        self._database = database or DatabaseTarget(f"sqlite:{workdir / 'bridge.db'}", {})
        self._overrides = config_overrides or {}
        self._options = options or Options()
        self._stack = contextlib.AsyncExitStack()
        self._ids = itertools.count(1)
        self.settings: Settings
        self.running: Bridge

    async def __aenter__(self) -> FastBridge:
        self.workdir.mkdir(parents=True, exist_ok=True)
        http_port = free_port()
        config = bridge_config(
            synapse_port=1,  # never contacted: Matrix is the fake
            bridge_port=http_port,
            livekit=self.livekit,
            database=self._database,
            recordings_dir=self.workdir / "recordings",
            overrides=self._overrides,
        )
        config["appservice"].update(as_token="as-token-fast", hs_token="hs-token-fast")
        self.settings = parse_settings(config, self.workdir, {})
        await self._stack.__aenter__()
        db = open_database(self.settings)
        await db.start()
        self._stack.push_async_callback(db.stop)
        livekit = await open_livekit(self.settings, self._stack, probe=False)
        self.call_chat = CallParticipantDouble(self.livekit.api_key, self.livekit.api_secret)
        options = replace(
            self._options,
            clock=self.clock,
            background=False,
            status_coalesce_s=0,
            call_chat=self._options.call_chat or self.call_chat,
        )
        self.running = await start_features(
            self.settings, options, self._stack, db, self.matrix, livekit
        )
        await self._serve_http(http_port)
        self.matrix.room(ROOM, members={ALICE: "Alice", BOB: "Bob"}, levels={ALICE: 100})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def restart(self) -> None:
        """Stop the bridge and start it again: same database, homeserver (fake) and clock."""
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        await self.__aenter__()

    async def _serve_http(self, port: int) -> None:
        app = web.Application()
        app[BRIDGE] = self.running
        add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"
        self.livekit.webhook_url = f"{self.base_url}/livekit/webhook"

    # --- Matrix events in ---------------------------------------------------------------------

    async def event(self, event: dict[str, Any]) -> str:
        """Deliver one event as the homeserver would (through the inbox), then settle."""
        event = {"event_id": f"$in{next(self._ids)}", "origin_server_ts": self.clock.now, **event}
        await self.running.inbox.accept(f"txn-{event['event_id']}", [event], self.clock.now_ms())
        await self.settle()
        return str(event["event_id"])

    async def put_state(
        self,
        event_type: str,
        content: dict[str, Any],
        *,
        sender: str = ALICE,
        room: str = ROOM,
        state_key: str = "",
    ) -> str:
        """A member writes a state event: the homeserver stores it, then sends it to the bridge."""
        self.matrix.put_state(room, event_type, content, sender=sender, state_key=state_key)
        return await self.event(
            {
                "type": event_type,
                "state_key": state_key,
                "sender": sender,
                "room_id": room,
                "content": content,
            }
        )

    async def say(self, body: str, *, sender: str = ALICE, room: str = ROOM, **extra: Any) -> str:
        content = {"msgtype": "m.text", "body": body, **extra}
        return await self.event(
            {"type": "m.room.message", "sender": sender, "room_id": room, "content": content}
        )

    async def settle(self) -> None:
        """Process everything due, and wait for everything that caused (edits, widgets…)."""
        for _ in range(100):
            while await self.running.processor.drain():
                pass
            await self.running.observers.settled()
            await self.running.status.settled()
            # The homeserver sends the bot's own state events back (settings are applied then).
            echoes = self.matrix.take_echoes()
            if not echoes:
                return
            txn = f"txn-echo-{echoes[0]['event_id']}"
            await self.running.inbox.accept(txn, echoes, self.clock.now_ms())
        raise AssertionError(f"the bridge keeps answering its own state events: {echoes}")

    # --- what the room shows -----------------------------------------------------------------

    def notices(self, room: str = ROOM) -> list[str]:
        return self.matrix.notices(room)

    def answers_to(self, event_id: str) -> list[str]:
        return [sent.body for sent in self.matrix.replies_to(event_id)]


__all__ = ["ALICE", "BOB", "BOT", "ROOM", "FastBridge"]
