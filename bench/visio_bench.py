"""Latency benchmark for visio-bridge on loopback, with a bare echo appservice and a bare
aiohttp handler as baselines measured in the same run.

What it measures (all in milliseconds):

1. The bridge's own processing time for `/visio`: for each command, `processed_at -
   received_at` from the bridge's `inbox` table (stored -> handled, status notice sent). The
   columns hold milliseconds, so this figure has 1 ms resolution.
2. The `/visio` -> status notice round trip through a real Synapse, seen by a matrix-nio client
   (send, then the reply arrives on a /sync long-poll that is always in flight), next to the
   round trip of a minimal echo appservice registered on the same Synapse, interleaved round by
   round. Each `/visio` goes to a fresh room; the echo appservice uses one room.
3. The acknowledgement time of 100-event appservice transactions PUT straight to a
   `BridgeServer` whose inbox lives in a throwaway PostgreSQL schema, the same on SQLite, and a
   bare aiohttp handler that only parses the JSON, as a baseline. The inbox is drained between
   transactions (not timed), so each figure is the ack alone.

Everything runs in this process's event loop except Synapse (a subprocess); only 127.0.0.1 is
used. Run from the repository root:

    .venv/bin/python bench/visio_bench.py [--rounds 30] [--txns 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import nio  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from harness import BOT, SERVER_NAME, DatabaseTarget, bridge_config, free_port  # noqa: E402
from livekit_double import LiveKitDouble  # noqa: E402

from appservice.app import DB, INBOX, BridgeServer, Options  # noqa: E402
from appservice.localsynapse import LocalSynapse  # noqa: E402
from appservice.registration import new_registration  # noqa: E402
from appservice.settings import Settings, parse_settings  # noqa: E402

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
    future: asyncio.Future[float]


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
                    waiter.future.set_result(arrived)

    def expect(self, room_id: str, predicate: Predicate) -> asyncio.Future[float]:
        """A future for the arrival time (ms, perf_counter) of the first matching event."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        for arrived, event in self._seen[room_id]:
            if predicate(event):
                future.set_result(arrived)
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

    async def wait(self, room_id: str, predicate: Predicate, what: str) -> float:
        try:
            return await asyncio.wait_for(self.watcher.expect(room_id, predicate), WAIT_S)
        except TimeoutError:
            raise RuntimeError(f"no {what} in {room_id} within {WAIT_S:.0f} s") from None

    async def round_trip(self, room_id: str, body: str, reply: Predicate) -> tuple[str, float]:
        """Send `body`; return its event id and the ms until a `reply` arrives on /sync."""
        await asyncio.sleep(SETTLE_S)
        arrival = self.watcher.expect(room_id, reply)
        began = now_ms()
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        if not isinstance(response, nio.RoomSendResponse):
            raise RuntimeError(f"send failed: {response}")
        try:
            arrived = await asyncio.wait_for(arrival, WAIT_S)
        except TimeoutError:
            raise RuntimeError(f"no reply to {body!r} in {room_id} within {WAIT_S:.0f} s") from None
        return str(response.event_id), arrived - began


# -- parts 1 and 2: through Synapse ------------------------------------------------------


@dataclass(frozen=True)
class SynapseResults:
    processing: Summary
    visio_rtt: Summary
    echo_rtt: Summary


def _starts(body: str) -> bool:
    return body.startswith("Visio démarrée par")


async def through_synapse(workdir: Path, livekit: LiveKitDouble, rounds: int) -> SynapseResults:
    synapse_port, bridge_port = free_port(), free_port()
    config = bridge_config(
        synapse_port=synapse_port,
        bridge_port=bridge_port,
        livekit=livekit,
        database=DatabaseTarget(f"sqlite:{workdir / 'bridge.db'}", {}),
    )
    registration = new_registration(parse_settings(config, workdir, {}, need_tokens=False))
    config["appservice"]["as_token"] = registration["as_token"]
    config["appservice"]["hs_token"] = registration["hs_token"]
    settings = parse_settings(config, workdir, {})
    homeserver_url = f"http://127.0.0.1:{synapse_port}"
    echo = EchoAppservice(homeserver_url)
    registration_files = [workdir / "visio.yaml", workdir / "echo.yaml"]
    registration_files[0].write_text(yaml.safe_dump(registration))
    registration_files[1].write_text(yaml.safe_dump(echo.registration()))

    synapse = LocalSynapse(
        workdir / "synapse",
        server_name=SERVER_NAME,
        port=synapse_port,
        registration_files=registration_files,
        # One room per round: lift Synapse's room-creation limit (LocalSynapse lifts the others).
        extra_config={"rc_room_creation": {"per_second": 10_000, "burst_count": 100_000}},
    )
    async with contextlib.AsyncExitStack() as stack:
        await echo.start()
        stack.push_async_callback(echo.stop)
        await synapse.start()
        stack.push_async_callback(synapse.stop)
        await echo.register_sender()
        bridge = BridgeServer(settings, Options())
        await bridge.start()
        stack.push_async_callback(bridge.stop)

        user = await synapse.register_user("alice", admin=False, displayname="Alice")
        client = nio.AsyncClient(homeserver_url, user.user_id)
        client.restore_login(user.user_id, user.device_id, user.access_token)
        stack.push_async_callback(client.close)
        watcher = SyncWatcher(client)
        await watcher.start()
        stack.push_async_callback(watcher.stop)
        alice = Person(client, watcher)

        echo_room = await alice.create_room("echo bench", ECHO_BOT)
        await alice.wait(echo_room, joined(ECHO_BOT), "echo bot join")

        visio_events: list[str] = []
        visio_rtt: list[float] = []
        echo_rtt: list[float] = []
        for index in range(WARMUP_ROUNDS + rounds):
            room = await alice.create_room(f"visio bench {index}", BOT)
            await alice.wait(room, notice_from(BOT), "bridge hello")
            event_id, visio_ms = await alice.round_trip(room, "/visio", notice_from(BOT, _starts))
            nonce = f"{index}-{secrets.token_hex(4)}"
            _, echo_ms = await alice.round_trip(
                echo_room, f"!echo {nonce}", notice_from(ECHO_BOT, nonce.__eq__)
            )
            if index >= WARMUP_ROUNDS:
                visio_events.append(event_id)
                visio_rtt.append(visio_ms)
                echo_rtt.append(echo_ms)

        processing = await _processing_times(bridge, visio_events)
    return SynapseResults(Summary.of(processing), Summary.of(visio_rtt), Summary.of(echo_rtt))


async def _processing_times(bridge: BridgeServer, event_ids: Sequence[str]) -> list[float]:
    """processed_at - received_at of each event, once the bridge has marked all of them."""
    await _drained(bridge)
    db = bridge.app[DB]
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
    inbox = bridge.app[INBOX]
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
        done = await bridge.app[DB].fetchval("SELECT COUNT(*) FROM inbox WHERE state='done'")
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
    ("visio_processing", "/visio processing in bridge (inbox stored->done)"),
    ("visio_round_trip", "/visio -> notice round trip via Synapse (bridge)"),
    ("echo_round_trip", "!echo -> notice round trip via Synapse (echo AS)"),
    ("ack_postgres", "100-event txn ack, bridge on PostgreSQL"),
    ("ack_sqlite", "100-event txn ack, bridge on SQLite"),
    ("ack_bare", "100-event txn ack, bare aiohttp (parse JSON, {})"),
)
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("bridge/echo round trip", "visio_round_trip", "echo_round_trip"),
    ("PostgreSQL ack/bare ack", "ack_postgres", "ack_bare"),
    ("SQLite ack/bare ack", "ack_sqlite", "ack_bare"),
)


def render(results: Mapping[str, Summary], meta: Mapping[str, Any]) -> str:
    width = max(len(label) for _, label in ROWS)
    lines = [
        f"visio-bridge latency, loopback, {meta['cpus']} CPUs, Synapse {meta['synapse']}, "
        f"{meta['rounds']} rounds (+{WARMUP_ROUNDS} warm-up), {meta['txns']} txns "
        f"(+{WARMUP_TXNS} warm-up)",
        f"{'measurement':<{width}}  {'n':>3}  {'median':>9}  {'p95':>9}  {'min':>9}  {'max':>9}",
    ]
    for key, label in ROWS:
        s = results[key]
        lines.append(
            f"{label:<{width}}  {s.n:>3}  {s.median:>6.2f} ms  {s.p95:>6.2f} ms  "
            f"{s.min:>6.2f} ms  {s.max:>6.2f} ms"
        )
    lines.append("ratios (median; p95):")
    for name, top, bottom in RATIOS:
        median, p95 = ratio(results, top, bottom)
        lines.append(f"  {name:<24} {median:>6.2f}x ; {p95:>6.2f}x")
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


async def run(args: argparse.Namespace) -> tuple[dict[str, Summary], dict[str, Any]]:
    results: dict[str, Summary] = {}
    with tempfile.TemporaryDirectory(prefix="visio-bench-") as tmp:
        workdir = Path(tmp)
        async with LiveKitDouble() as livekit:
            through = await through_synapse(workdir, livekit, args.rounds)
            results["visio_processing"] = through.processing
            results["visio_round_trip"] = through.visio_rtt
            results["echo_round_trip"] = through.echo_rtt
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
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "synapse": metadata.version("matrix-synapse"),
        "e2e_bridge_database": "sqlite",
    }
    return results, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="/visio and !echo rounds")
    parser.add_argument("--txns", type=int, default=50, help="timed transactions per target")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--postgres", default=POSTGRES_DSN, help="PostgreSQL DSN (local)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    args = parser.parse_args()
    if args.rounds < 1 or args.txns < 1:
        parser.error("--rounds and --txns must be at least 1")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    began = time.monotonic()

    async def bounded() -> tuple[dict[str, Summary], dict[str, Any]]:
        async with asyncio.timeout(OVERALL_LIMIT_S):
            return await run(args)

    results, meta = asyncio.run(bounded())
    meta["wall_s"] = round(time.monotonic() - began, 1)
    print(render(results, meta))
    print(f"wall time {meta['wall_s']:.1f} s")
    if args.json is not None:
        document = {
            "meta": meta,
            "results": {key: summary.as_json() for key, summary in results.items()},
            "ratios": {name: ratio_json(results, top, bottom) for name, top, bottom in RATIOS},
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
