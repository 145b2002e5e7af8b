"""Latency benchmark for visio-bridge on loopback: the real livekit-server next to the LiveKit
double, with a bare echo appservice and a bare aiohttp handler as baselines, in the same run.

What it measures (all in milliseconds):

1. The bridge's own processing time for `!visio`: for each command, `processed_at -
   received_at` from the bridge's `inbox` table (stored -> handled, status notice sent). The
   columns hold milliseconds, so this figure has 1 ms resolution.
2. The `!visio` -> status notice (with the join link) round trip through a real Synapse, seen
   by a matrix-nio client (send, then the reply arrives on a /sync long-poll that is always in
   flight), with the bridge on the real livekit-server and on the double, next to the round
   trip of a minimal echo appservice registered on the double's Synapse. Each `!visio` goes to
   a fresh room; the echo appservice uses one room.
3. The acknowledgement time of 100-event appservice transactions PUT straight to a
   `BridgeServer` whose inbox lives in a throwaway PostgreSQL schema, the same on SQLite, and a
   bare aiohttp handler that only parses the JSON, as a baseline. The inbox is drained between
   transactions (not timed), so each figure is the ack alone.
4. A guest joining the call -> the status message edit that names them, on that /sync. Real
   server: a guest takes a token from the join page, then the clock runs from just before its
   WebRTC `connect()` (livekit rtc SDK) until the edit, the server's `participant_joined`
   webhook in between; its `connect()` time is shown apart. Double: from `double.join()`, which
   posts the same webhook. The bridge's status-edit coalescing (1 s in production) is 0 unless
   `--coalesce` says otherwise, so the figure is the pipeline, not that wait.

Each LiveKit has its own Synapse and bridge (on SQLite); their rounds are interleaved with the
echo's so that load from elsewhere falls on all alike. A round is a whole meeting: `!visio`, the
guest joins and leaves, the call ends (awaited, untimed). Without the livekit-server binary,
only the double is measured. Everything but Synapse and livekit-server (subprocesses) runs in
this process's event loop; only 127.0.0.x is used. The run stops itself after 170 s. From the
repository root:

    .venv/bin/python bench/visio_bench.py [--rounds 20] [--txns 50] [--livekit both|real|double]
        [--coalesce 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import nio  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from call_chat_double import CallChatDouble  # noqa: E402
from call_people import CallPerson  # noqa: E402
from harness import (  # noqa: E402
    BOT,
    SERVER_NAME,
    DatabaseTarget,
    LiveKit,
    bridge_config,
    free_port,
)
from livekit import api  # noqa: E402
from livekit.protocol.models import ParticipantInfo  # noqa: E402
from livekit_double import LiveKitDouble  # noqa: E402

from appservice.app import BRIDGE, BridgeServer  # noqa: E402
from appservice.local.livekit import (  # noqa: E402
    INSTALL_HINT,
    LIVEKIT_VERSION,
    LiveKitStartError,
    LocalLiveKit,
    find_livekit_server,
)
from appservice.local.synapse import LocalSynapse  # noqa: E402
from appservice.registration import new_registration  # noqa: E402
from appservice.settings import Settings, parse_settings  # noqa: E402
from appservice.wiring import Options  # noqa: E402
from bridge.chat.messages import BRIDGE_IDENTITY  # noqa: E402

POSTGRES_DSN = os.environ.get("VISIO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
ECHO_BOT = f"@echo:{SERVER_NAME}"
WAIT_S = 15.0  # longest any single reply or drain may take before the run is declared broken
SETTLE_S = 0.05  # pause before each timed send, so the previous round's work has finished
WARMUP_ROUNDS = 1
WARMUP_TXNS = 5
EVENTS_PER_TXN = 100
OVERALL_LIMIT_S = 170.0

# Only room timelines matter to the watcher; the limit keeps a busy room from being cut short.
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 100},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]
Arrival = tuple[float, Event]  # when an event arrived on /sync (ms, perf_counter), and the event


def now_ms() -> float:
    return time.perf_counter() * 1000.0


# -- statistics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        p95 = (
            statistics.quantiles(ordered, n=100, method="inclusive")[94]
            if len(ordered) > 1
            else ordered[0]
        )
        return cls(len(ordered), statistics.median(ordered), p95, ordered[0], ordered[-1])

    def as_json(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "median_ms": round(self.median, 3),
            "p95_ms": round(self.p95, 3),
            "min_ms": round(self.min, 3),
            "max_ms": round(self.max, 3),
        }


# -- the echo appservice -----------------------------------------------------------------


class EchoAppservice:
    """The smallest useful appservice: joins when invited, answers `!echo X` with a notice `X`.

    No database and no queue: each event is answered by a task started as soon as the
    transaction is parsed, and the transaction is acknowledged at once.
    """

    def __init__(self, homeserver_url: str) -> None:
        self.port = free_port()
        self.as_token = secrets.token_urlsafe(32)
        self.hs_token = secrets.token_urlsafe(32)
        self._homeserver_url = homeserver_url
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def registration(self) -> dict[str, Any]:
        return {
            "id": "echo",
            "url": f"http://127.0.0.1:{self.port}",
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": "echo",
            "rate_limited": False,
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@echo_.*:{SERVER_NAME}"}],
                "aliases": [],
                "rooms": [],
            },
        }

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", self._transaction)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.as_token}"},
            timeout=aiohttp.ClientTimeout(total=WAIT_S),
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def register_sender(self) -> None:
        """Make sure the sender user exists (Synapse answers M_USER_IN_USE if it does)."""
        body = {"type": "m.login.application_service", "username": "echo"}
        async with self._client().post(self._url("/register"), json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200 and data.get("errcode") != "M_USER_IN_USE":
                raise RuntimeError(f"registering {ECHO_BOT} failed ({resp.status}): {data}")

    def _client(self) -> aiohttp.ClientSession:
        assert self._session is not None, "EchoAppservice.start() first"
        return self._session

    def _url(self, path: str) -> str:
        return f"{self._homeserver_url}/_matrix/client/v3{path}"

    async def _transaction(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.hs_token}":
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        body = json.loads(await request.read())
        for event in body.get("events", []):
            if event.get("sender") == ECHO_BOT:
                continue
            content = event.get("content") or {}
            if event.get("type") == "m.room.member" and event.get("state_key") == ECHO_BOT:
                if content.get("membership") == "invite":
                    self._spawn(self._join(event["room_id"]))
            elif event.get("type") == "m.room.message":
                text = content.get("body")
                if isinstance(text, str) and text.startswith("!echo "):
                    reply = text.removeprefix("!echo ")
                    self._spawn(self._notice(event["room_id"], event["event_id"], reply))
        return web.json_response({})

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, room_id: str) -> None:
        async with self._client().post(self._url(f"/join/{quote(room_id, safe='')}"), json={}):
            pass

    async def _notice(self, room_id: str, event_id: str, text: str) -> None:
        path = f"/rooms/{quote(room_id, safe='')}/send/m.room.message/{quote(event_id, safe='')}"
        content = {"msgtype": "m.notice", "body": text}
        async with self._client().put(self._url(path), json=content) as resp:
            resp.raise_for_status()


# -- the client side ---------------------------------------------------------------------


@dataclass
class _Waiter:
    room_id: str
    predicate: Predicate
    future: asyncio.Future[Arrival]


class SyncWatcher:
    """Keeps one /sync long-poll in flight and stamps each timeline event with its arrival.

    Every event seen is kept, so a wait registered after its event already arrived returns
    at once with the original arrival time.
    """

    def __init__(self, client: nio.AsyncClient) -> None:
        self._client = client
        self._seen: dict[str, list[tuple[float, Event]]] = defaultdict(list)
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        first = await self._client.sync(timeout=0, sync_filter=SYNC_FILTER)
        if not isinstance(first, nio.SyncResponse):
            raise RuntimeError(f"initial sync failed: {first}")
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        try:
            while True:
                response = await self._client.sync(timeout=25_000, sync_filter=SYNC_FILTER)
                arrived = now_ms()
                if not isinstance(response, nio.SyncResponse):
                    raise RuntimeError(f"sync failed: {response}")
                for room_id, room in response.rooms.join.items():
                    for event in room.timeline.events:
                        self._record(room_id, arrived, event.source)
        except Exception as err:
            for waiter in self._waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(err)
            raise

    def _record(self, room_id: str, arrived: float, event: Event) -> None:
        self._seen[room_id].append((arrived, event))
        for waiter in list(self._waiters):
            if waiter.room_id == room_id and waiter.predicate(event):
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result((arrived, event))

    def expect(self, room_id: str, predicate: Predicate) -> asyncio.Future[Arrival]:
        """A future for the first matching event and its arrival time (ms, perf_counter)."""
        future: asyncio.Future[Arrival] = asyncio.get_running_loop().create_future()
        for arrived, event in self._seen[room_id]:
            if predicate(event):
                future.set_result((arrived, event))
                return future
        self._waiters.append(_Waiter(room_id, predicate, future))
        return future


def notice_from(sender: str, test: Callable[[str], bool] = lambda _: True) -> Predicate:
    def predicate(event: Event) -> bool:
        content = event.get("content") or {}
        return (
            event.get("sender") == sender
            and event.get("type") == "m.room.message"
            and content.get("msgtype") == "m.notice"
            and test(str(content.get("body", "")))
        )

    return predicate


def joined(user_id: str) -> Predicate:
    def predicate(event: Event) -> bool:
        return (
            event.get("type") == "m.room.member"
            and event.get("state_key") == user_id
            and (event.get("content") or {}).get("membership") == "join"
        )

    return predicate


async def arrival(expected: asyncio.Future[Arrival], what: str) -> Arrival:
    # A RuntimeError, not a TimeoutError: those mean the whole run went over its limit.
    try:
        return await asyncio.wait_for(expected, WAIT_S)
    except TimeoutError:
        raise RuntimeError(f"no {what} within {WAIT_S:.0f} s") from None


class Person:
    """The human on matrix-nio: creates rooms, sends messages, times the replies."""

    def __init__(self, client: nio.AsyncClient, watcher: SyncWatcher) -> None:
        self.client = client
        self.watcher = watcher

    async def create_room(self, name: str, invite: str) -> str:
        response = await self.client.room_create(name=name, invite=[invite])
        if not isinstance(response, nio.RoomCreateResponse):
            raise RuntimeError(f"room creation failed: {response}")
        return str(response.room_id)

    async def wait(self, room_id: str, predicate: Predicate, what: str) -> Arrival:
        return await arrival(self.watcher.expect(room_id, predicate), f"{what} in {room_id}")

    async def round_trip(
        self, room_id: str, body: str, reply: Predicate
    ) -> tuple[str, float, Event]:
        """Send `body`; return its event id, the ms until a `reply` arrives on /sync, the reply."""
        await asyncio.sleep(SETTLE_S)
        reply_seen = self.watcher.expect(room_id, reply)
        began = now_ms()
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        if not isinstance(response, nio.RoomSendResponse):
            raise RuntimeError(f"send failed: {response}")
        arrived, event = await arrival(reply_seen, f"reply to {body!r} in {room_id}")
        return str(response.event_id), arrived - began, event


# -- parts 1, 2 and 4: through Synapse, with each LiveKit --------------------------------


def _starts(body: str) -> bool:
    return body.startswith("Visio démarrée par")


@dataclass
class Side:
    """One Synapse + bridge + LiveKit (the real server or the double), and Alice on it.

    Each LiveKit gets its own Synapse and bridge: two bridges cannot share a homeserver (the
    same bot user), and the real server's webhooks must reach the port its config names.
    """

    name: str  # "double" or "real"
    livekit: LiveKit
    settings: Settings
    bridge: BridgeServer
    alice: Person
    server_api: api.LiveKitAPI | None  # the real server's API, to see the bridge's agent
    echo_room: str | None = None  # set on the side whose Synapse also runs the echo AS
    visio_events: list[str] = field(default_factory=list)
    visio_rtt: list[float] = field(default_factory=list)
    join_edit: list[float] = field(default_factory=list)
    rtc_connect: list[float] = field(default_factory=list)


def write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(document)))
    return path


async def open_side(
    stack: contextlib.AsyncExitStack,
    workdir: Path,
    livekit: LiveKit,
    bridge_port: int,
    coalesce_s: float,
    *,
    with_echo: bool,
) -> Side:
    """Start Synapse and the bridge for `livekit`; everything stops when `stack` closes."""
    name = "real" if isinstance(livekit, LocalLiveKit) else "double"
    synapse_port = free_port()
    config = bridge_config(
        synapse_port=synapse_port,
        bridge_port=bridge_port,
        livekit=livekit,
        database=DatabaseTarget(f"sqlite:{workdir / 'bridge.db'}", {}),
        # As tests/conftest.py's live_stack: the real server closes a room one second after
        # its last guest leaves (not 20), so each round can wait for the end before the next.
        overrides={"livekit": {"room": {"departure_timeout": 1}}},
    )
    registration = new_registration(parse_settings(config, workdir, {}, need_tokens=False))
    config["appservice"]["as_token"] = registration["as_token"]
    config["appservice"]["hs_token"] = registration["hs_token"]
    settings = parse_settings(config, workdir, {})
    homeserver_url = f"http://127.0.0.1:{synapse_port}"
    registration_files = [write_yaml(workdir / "visio.yaml", registration)]
    echo = EchoAppservice(homeserver_url) if with_echo else None
    if echo is not None:
        registration_files.append(write_yaml(workdir / "echo.yaml", echo.registration()))
        await echo.start()
        stack.push_async_callback(echo.stop)

    synapse = LocalSynapse(
        workdir / "synapse",
        server_name=SERVER_NAME,
        port=synapse_port,
        registration_files=registration_files,
        # One room per round: lift Synapse's room-creation limit (LocalSynapse lifts the others).
        extra_config={"rc_room_creation": {"per_second": 10_000, "burst_count": 100_000}},
    )
    await synapse.start()
    stack.push_async_callback(synapse.stop)
    if echo is not None:
        await echo.register_sender()

    # The status edit is normally held back `coalesce_s` (1 s in production) to merge a burst
    # of joins into one edit; that wait is a constant, so the bench sets it small to see the
    # rest. With the double, the bridge's own call participant is the tests' stand-in (the
    # double speaks no WebRTC); with the real server it is the real rtc participant.
    options = Options(status_coalesce_s=coalesce_s)
    server_api: api.LiveKitAPI | None = None
    if isinstance(livekit, LiveKitDouble):
        options = replace(options, call_chat=CallChatDouble(livekit.api_key, livekit.api_secret))
        livekit.webhook_url = f"{settings.appservice.address}/livekit/webhook"
    else:
        server_api = api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret)
        stack.push_async_callback(server_api.aclose)
    bridge = BridgeServer(settings, options)
    await bridge.start()
    stack.push_async_callback(bridge.stop)

    user = await synapse.register_user("alice", admin=False, displayname="Alice")
    client = nio.AsyncClient(homeserver_url, user.user_id)
    client.restore_login(user.user_id, user.device_id, user.access_token)
    stack.push_async_callback(client.close)
    watcher = SyncWatcher(client)
    await watcher.start()
    stack.push_async_callback(watcher.stop)
    side = Side(name, livekit, settings, bridge, Person(client, watcher), server_api)
    if echo is not None:
        side.echo_room = await side.alice.create_room("echo bench", ECHO_BOT)
        await side.alice.wait(side.echo_room, joined(ECHO_BOT), "echo bot join")
    return side


def status_edit(status_id: str, wanted: str) -> Predicate:
    """The bot's edit of the status message `status_id` whose new text contains `wanted`."""

    def predicate(event: Event) -> bool:
        content = event.get("content") or {}
        relation = content.get("m.relates_to") or {}
        return (
            event.get("sender") == BOT
            and relation.get("rel_type") == "m.replace"
            and relation.get("event_id") == status_id
            and wanted in str((content.get("m.new_content") or {}).get("body", ""))
        )

    return predicate


async def meeting_round(side: Side, index: int, timed: bool) -> None:
    """`!visio` in a fresh room, a guest joins the call and leaves, the call ends.

    Timed: `!visio` -> the notice with the link, and the guest's join -> the status edit that
    names them. The end of the call is awaited untimed, so that no round's call outlives it.
    """
    alice = side.alice
    room = await alice.create_room(f"visio bench {side.name} {index}", BOT)
    await alice.wait(room, notice_from(BOT), "bridge hello")
    event_id, visio_ms, status = await alice.round_trip(room, "!visio", notice_from(BOT, _starts))
    found = re.search(r"/m/([a-z]{3}-[a-z]{4}-[a-z]{3})", str(status["content"]["body"]))
    if found is None:
        raise RuntimeError(f"no join link in the status notice: {status['content']['body']!r}")
    slug, status_id = found.group(1), str(status["event_id"])
    lk_room = f"visio-{slug}"
    guest = f"Zoé {index:02d}"
    shows_guest = side.alice.watcher.expect(room, status_edit(status_id, guest))
    ended = side.alice.watcher.expect(room, status_edit(status_id, "Visio terminée"))
    if isinstance(side.livekit, LiveKitDouble):
        join_ms, connect_ms = await _double_guest(side.livekit, lk_room, guest, shows_guest)
        await side.livekit.finish_room(lk_room)
    else:
        join_ms, connect_ms = await _real_guest(side, slug, lk_room, guest, index, shows_guest)
    await arrival(ended, f"end of the call in {room}")
    if timed:
        side.visio_events.append(event_id)
        side.visio_rtt.append(visio_ms)
        side.join_edit.append(join_ms)
        if connect_ms is not None:
            side.rtc_connect.append(connect_ms)


async def _double_guest(
    double: LiveKitDouble, lk_room: str, guest: str, shows_guest: asyncio.Future[Arrival]
) -> tuple[float, None]:
    """`double.join` (it returns once the bridge has answered the webhook) -> status edit."""
    identity = f"guest-{secrets.token_hex(4)}"
    await asyncio.sleep(SETTLE_S)
    began = now_ms()
    await double.join(lk_room, identity, guest)
    arrived, _ = await arrival(shows_guest, f"status edit naming {guest}")
    await double.leave(lk_room, identity)
    return arrived - began, None


async def _real_guest(
    side: Side,
    slug: str,
    lk_room: str,
    guest: str,
    index: int,
    shows_guest: asyncio.Future[Arrival],
) -> tuple[float, float]:
    """A guest with a join-page token connects over WebRTC -> status edit; then leaves.

    Timed from just before `connect()`: the server sends participant_joined once the guest's
    peer connection is up, which may be before or after `connect()` returns, so the rtc
    connect time is kept apart rather than subtracted.
    """
    await _bridge_agent_active(side, lk_room)
    token = await join_page_token(side.settings, slug, guest, index)
    await asyncio.sleep(SETTLE_S)
    person = CallPerson()
    began = now_ms()
    try:
        await person.join(side.settings.livekit.url, token)
        connected = now_ms()
        arrived, _ = await arrival(shows_guest, f"status edit naming {guest}")
    finally:
        await person.leave()
    return arrived - began, connected - began


async def _bridge_agent_active(side: Side, lk_room: str) -> None:
    """Wait (untimed) until the bridge's own participant is in the call, as a guest finds it.

    It connects in the background after `!visio`; a guest joining meanwhile would time the
    bridge's WebRTC set-up too.
    """
    assert side.server_api is not None
    deadline = time.monotonic() + WAIT_S
    while True:
        listing = await side.server_api.room.list_participants(
            api.ListParticipantsRequest(room=lk_room)
        )
        if any(
            p.identity == BRIDGE_IDENTITY and p.state == ParticipantInfo.State.ACTIVE
            for p in listing.participants
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bridge's participant never became active in {lk_room}")
        await asyncio.sleep(0.02)


async def join_page_token(settings: Settings, slug: str, name: str, index: int) -> str:
    """What a guest's browser gets from the join page: the token in the front end's URL.

    Each guest posts from its own loopback address (127.0.0.2, .3, ...): the page allows an
    address 10 joins then 30 a minute, which one address would exhaust over 20 rounds.
    """
    page = f"{settings.appservice.address}/m/{slug}"
    source = f"127.0.0.{2 + index % 250}"
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post(page, data={"name": name}, allow_redirects=False) as response,
    ):
        if response.status != 303:
            raise RuntimeError(f"join page answered {response.status}: {await response.text()}")
        location = response.headers["Location"]
    return parse_qs(urlparse(location).query)["token"][0]


async def through_synapse(sides: Sequence[Side], rounds: int) -> dict[str, Summary]:
    """Interleaved rounds: a meeting on each side, then an `!echo` on the echo side.

    Round by round, so that load from elsewhere on the machine falls on all of them alike;
    the sides take turns going first.
    """
    echo_side = next(side for side in sides if side.echo_room is not None)
    assert echo_side.echo_room is not None
    echo_rtt: list[float] = []
    for index in range(WARMUP_ROUNDS + rounds):
        timed = index >= WARMUP_ROUNDS
        for side in sides if index % 2 == 0 else list(reversed(sides)):
            await meeting_round(side, index, timed)
        nonce = f"{index}-{secrets.token_hex(4)}"
        _, echo_ms, _ = await echo_side.alice.round_trip(
            echo_side.echo_room, f"!echo {nonce}", notice_from(ECHO_BOT, nonce.__eq__)
        )
        if timed:
            echo_rtt.append(echo_ms)

    results = {"echo_round_trip": Summary.of(echo_rtt)}
    for side in sides:
        processing = await _processing_times(side.bridge, side.visio_events)
        results[f"visio_processing_{side.name}"] = Summary.of(processing)
        results[f"visio_round_trip_{side.name}"] = Summary.of(side.visio_rtt)
        results[f"join_edit_{side.name}"] = Summary.of(side.join_edit)
        if side.rtc_connect:
            results[f"rtc_connect_{side.name}"] = Summary.of(side.rtc_connect)
    return results


async def _processing_times(bridge: BridgeServer, event_ids: Sequence[str]) -> list[float]:
    """processed_at - received_at of each event, once the bridge has marked all of them."""
    await _drained(bridge)
    db = bridge.app[BRIDGE].db
    times: list[float] = []
    for event_id in event_ids:
        row = await db.fetchrow(
            "SELECT state, received_at, processed_at FROM inbox WHERE event_id=$1", event_id
        )
        if row is None or row["state"] != "done" or row["processed_at"] is None:
            raise RuntimeError(f"/visio event {event_id} was not handled: {row and dict(row)}")
        times.append(float(row["processed_at"] - row["received_at"]))
    return times


async def _drained(bridge: BridgeServer) -> None:
    inbox = bridge.app[BRIDGE].inbox
    deadline = time.monotonic() + WAIT_S
    while await inbox.pending_count():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the inbox did not drain within {WAIT_S:.0f} s")
        await asyncio.sleep(0.002)


# -- part 3: transaction acknowledgements ------------------------------------------------


def transaction_body(label: str, txn_index: int) -> bytes:
    """100 plain messages (no commands) over 10 rooms and 20 senders, unique event ids."""
    sent_at = int(time.time() * 1000)
    events = [
        {
            "type": "m.room.message",
            "room_id": f"!bench{k % 10}:{SERVER_NAME}",
            "sender": f"@load{k % 20}:{SERVER_NAME}",
            "event_id": f"${label}-{txn_index}-{k}",
            "origin_server_ts": sent_at,
            "content": {"msgtype": "m.text", "body": f"message {k} of {txn_index}, no command"},
            "unsigned": {"age": 1},
        }
        for k in range(EVENTS_PER_TXN)
    ]
    return json.dumps({"events": events}).encode()


async def put_transactions(
    url: str,
    hs_token: str,
    label: str,
    count: int,
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """PUT `count` transactions (after WARMUP_TXNS untimed ones); the round trip of each, ms."""
    bodies = [transaction_body(label, i) for i in range(WARMUP_TXNS + count)]
    headers = {"Authorization": f"Bearer {hs_token}", "Content-Type": "application/json"}
    timings: list[float] = []
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        for index, body in enumerate(bodies):
            began = now_ms()
            target = f"{url}/_matrix/app/v1/transactions/{label}-{index}"
            async with session.put(target, data=body) as resp:
                await resp.read()
                elapsed = now_ms() - began
                if resp.status != 200:
                    raise RuntimeError(f"{label} transaction {index}: HTTP {resp.status}")
            if index >= WARMUP_TXNS:
                timings.append(elapsed)
            if between is not None:
                await between()
    return timings


def _ack_settings(workdir: Path, livekit: LiveKitDouble, database: DatabaseTarget) -> Settings:
    # Nothing listens on the homeserver port: these bridges only receive transactions, and
    # their background profile set-up just retries quietly until they stop.
    port = free_port()
    config = bridge_config(
        synapse_port=free_port(), bridge_port=port, livekit=livekit, database=database
    )
    config["appservice"]["as_token"] = secrets.token_urlsafe(32)
    config["appservice"]["hs_token"] = secrets.token_urlsafe(32)
    return parse_settings(config, workdir, {})


async def bridge_acks(
    workdir: Path, livekit: LiveKitDouble, database: DatabaseTarget, label: str, count: int
) -> list[float]:
    settings = _ack_settings(workdir, livekit, database)
    async with BridgeServer(settings, Options()) as bridge:
        timings = await put_transactions(
            settings.appservice.address,
            settings.appservice.hs_token,
            label,
            count,
            between=lambda: _drained(bridge),
        )
        await _drained(bridge)
        done = await bridge.app[BRIDGE].db.fetchval("SELECT COUNT(*) FROM inbox WHERE state='done'")
        expected = (WARMUP_TXNS + count) * EVENTS_PER_TXN
        if done != expected:
            raise RuntimeError(f"{label}: {done} events handled, expected {expected}")
    return timings


async def baseline_acks(count: int) -> list[float]:
    """The same PUTs to an aiohttp handler that parses the JSON and answers {}."""

    async def handler(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.json_response({})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return await put_transactions(f"http://127.0.0.1:{port}", "unused", "bare", count)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def postgres_schema(dsn: str) -> AsyncIterator[DatabaseTarget]:
    """A fresh schema on the local PostgreSQL, dropped afterwards (as tests/conftest.py does)."""
    schema = f"visio_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield DatabaseTarget(dsn, {"server_settings": {"search_path": schema}})
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()


# -- report ------------------------------------------------------------------------------


ROWS: tuple[tuple[str, str], ...] = (
    ("visio_processing_double", "!visio processing in bridge (inbox stored->done), double"),
    ("visio_processing_real", "!visio processing in bridge (inbox stored->done), real"),
    ("visio_round_trip_double", "!visio -> link notice via Synapse, LiveKit double"),
    ("visio_round_trip_real", "!visio -> link notice via Synapse, real livekit-server"),
    ("echo_round_trip", "!echo -> notice via Synapse (echo AS)"),
    ("join_edit_double", "guest joins -> status edit, double (double.join)"),
    ("join_edit_real", "guest joins -> status edit, real (rtc connect)"),
    ("rtc_connect_real", "  guest's rtc connect() alone, real"),
    ("ack_postgres", "100-event txn ack, bridge on PostgreSQL"),
    ("ack_sqlite", "100-event txn ack, bridge on SQLite"),
    ("ack_bare", "100-event txn ack, bare aiohttp (parse JSON, {})"),
)


def ratios(results: Mapping[str, Summary], meta: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The ratios whose two figures this run measured."""
    echo_side = meta["echo_side"]
    wanted = [
        ("real/double !visio round trip", "visio_round_trip_real", "visio_round_trip_double"),
        ("real/double join -> edit", "join_edit_real", "join_edit_double"),
        (
            f"bridge/echo round trip ({echo_side})",
            f"visio_round_trip_{echo_side}",
            "echo_round_trip",
        ),
        ("PostgreSQL ack/bare ack", "ack_postgres", "ack_bare"),
        ("SQLite ack/bare ack", "ack_sqlite", "ack_bare"),
    ]
    return [(name, top, bottom) for name, top, bottom in wanted if {top, bottom} <= results.keys()]


def render(results: Mapping[str, Summary], meta: Mapping[str, Any]) -> str:
    rows = [(key, label) for key, label in ROWS if key in results]
    width = max(len(label) for _, label in rows)
    load = meta["load_before"], meta["load_after"]
    lines = [
        f"visio-bridge latency, loopback, {meta['cpus']} CPUs, Synapse {meta['synapse']}, "
        f"LiveKit: {meta['livekit']}, {meta['rounds']} rounds (+{WARMUP_ROUNDS} warm-up), "
        f"{meta['txns']} txns (+{WARMUP_TXNS} warm-up)",
        f"status edit coalescing {meta['status_coalesce_s']:g} s (production: 1 s); "
        f"load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after",
        f"{'measurement':<{width}}  {'n':>3}  "
        + "  ".join(f"{column:>10}" for column in ("median", "p95", "min", "max")),
    ]
    for key, label in rows:
        s = results[key]
        lines.append(
            f"{label:<{width}}  {s.n:>3}  {s.median:>7.2f} ms  {s.p95:>7.2f} ms  "
            f"{s.min:>7.2f} ms  {s.max:>7.2f} ms"
        )
    lines.append("ratios (median; p95):")
    for name, top, bottom in ratios(results, meta):
        median, p95 = ratio(results, top, bottom)
        lines.append(f"  {name:<32} {median:>6.2f}x ; {p95:>6.2f}x")
    return "\n".join(lines)


def ratio(results: Mapping[str, Summary], top: str, bottom: str) -> tuple[float, float]:
    return (
        results[top].median / results[bottom].median,
        results[top].p95 / results[bottom].p95,
    )


def ratio_json(results: Mapping[str, Summary], top: str, bottom: str) -> dict[str, float]:
    median, p95 = ratio(results, top, bottom)
    return {"median": round(median, 3), "p95": round(p95, 3)}


# -- main --------------------------------------------------------------------------------

SERVER_START_ATTEMPTS = 3


async def start_real_server(
    stack: contextlib.AsyncExitStack, workdir: Path, bridge_port: int
) -> LocalLiveKit:
    """livekit-server with webhooks to `bridge_port`, on fresh ports if its first ones are taken.

    LocalLiveKit picks ports free on 127.0.0.1, but the server listens for rtc TCP on every
    address, where another process (tests running alongside) may hold the same port.
    """
    for attempt in range(1, SERVER_START_ATTEMPTS + 1):
        server = LocalLiveKit(
            workdir / f"livekit-{attempt}",
            webhook_urls=[f"http://127.0.0.1:{bridge_port}/livekit/webhook"],
        )
        try:
            await server.start()
        except LiveKitStartError as err:
            if "address already in use" not in str(err) or attempt == SERVER_START_ATTEMPTS:
                raise
            continue
        stack.push_async_callback(server.stop)
        return server
    raise AssertionError("unreachable")


def which_livekit(asked: str) -> str:
    """The LiveKit(s) to measure: the real server only where it is installed."""
    if asked != "double" and find_livekit_server() is None:
        print(f"livekit-server is not installed ({INSTALL_HINT}): measuring the double only")
        return "double"
    return asked


async def run(args: argparse.Namespace, mode: str) -> tuple[dict[str, Summary], dict[str, Any]]:
    results: dict[str, Summary] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="visio-bench-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            # The double also stands in for LiveKit in part 3's bridges, which never call it.
            double = await stack.enter_async_context(LiveKitDouble())
            sides: list[Side] = []
            if mode in ("both", "double"):
                sides.append(
                    await open_side(
                        stack,
                        workdir / "double",
                        double,
                        free_port(),
                        args.coalesce,
                        with_echo=True,
                    )
                )
            if mode in ("both", "real"):
                # The server's webhooks go to the bridge's port, so it is chosen first.
                bridge_port = free_port()
                server = await start_real_server(stack, workdir, bridge_port)
                sides.append(
                    await open_side(
                        stack,
                        workdir / "real",
                        server,
                        bridge_port,
                        args.coalesce,
                        with_echo=not sides,
                    )
                )
            results.update(await through_synapse(sides, args.rounds))
            echo_side = next(side.name for side in sides if side.echo_room is not None)
        async with LiveKitDouble() as livekit:
            async with postgres_schema(args.postgres) as database:
                results["ack_postgres"] = Summary.of(
                    await bridge_acks(workdir, livekit, database, "pg", args.txns)
                )
            sqlite = DatabaseTarget(f"sqlite:{workdir / 'acks.db'}", {})
            results["ack_sqlite"] = Summary.of(
                await bridge_acks(workdir, livekit, sqlite, "sqlite", args.txns)
            )
            results["ack_bare"] = Summary.of(await baseline_acks(args.txns))
    meta = {
        "rounds": args.rounds,
        "txns": args.txns,
        "events_per_txn": EVENTS_PER_TXN,
        "livekit": {"both": "real and double", "real": "real", "double": "double"}[mode]
        + (f" (livekit-server {LIVEKIT_VERSION})" if mode != "double" else ""),
        "echo_side": echo_side,
        "status_coalesce_s": args.coalesce,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "python": platform.python_version(),
        "synapse": metadata.version("matrix-synapse"),
        "e2e_bridge_database": "sqlite",
    }
    return results, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="meeting and !echo rounds")
    parser.add_argument("--txns", type=int, default=50, help="timed transactions per target")
    parser.add_argument(
        "--livekit",
        choices=("both", "real", "double"),
        default="both",
        help="which LiveKit the meetings run on (real: the livekit-server binary)",
    )
    parser.add_argument(
        "--coalesce",
        type=float,
        default=0.0,
        help="the bridge's status-edit coalescing delay in seconds (production: 1)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--postgres", default=POSTGRES_DSN, help="PostgreSQL DSN (local)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    args = parser.parse_args()
    if args.rounds < 1 or args.txns < 1:
        parser.error("--rounds and --txns must be at least 1")
    if args.coalesce < 0:
        parser.error("--coalesce must not be negative")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not args.verbose:
        # The rtc SDK logs each of a guest's data channels closing, at ERROR, when it leaves.
        logging.getLogger("livekit").setLevel(logging.CRITICAL)

    began = time.monotonic()
    mode = which_livekit(args.livekit)

    async def bounded() -> tuple[dict[str, Summary], dict[str, Any]]:
        async with asyncio.timeout(OVERALL_LIMIT_S):
            return await run(args, mode)

    try:
        results, meta = asyncio.run(bounded())
    except TimeoutError:
        if time.monotonic() - began < OVERALL_LIMIT_S:
            raise
        sys.exit(f"stopped after {OVERALL_LIMIT_S:.0f} s: try fewer --rounds or --txns")
    meta["wall_s"] = round(time.monotonic() - began, 1)
    print(render(results, meta))
    print(f"wall time {meta['wall_s']:.1f} s")
    if args.json is not None:
        document = {
            "meta": meta,
            "results": {key: summary.as_json() for key, summary in results.items()},
            "ratios": {
                name: ratio_json(results, top, bottom)
                for name, top, bottom in ratios(results, meta)
            },
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
