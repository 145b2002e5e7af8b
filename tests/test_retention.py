"""Retention: what the bridge stores about people goes once nothing needs it.

Fast tier: the rows are made by the real features (events through the inbox, a call with its
participants, chat both ways, a guest in the lobby), time passes by the manual clock, and one
purge pass is `fast.running.retention.purge()` (production runs it in the background). Each
test checks both sides: what is past its time is gone, what is still in use stays. The purge is
plain SQL over both databases, so these run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from fast import ALICE, BOB, ROOM, FastBridge
from harness import DatabaseTarget
from livekit_double import LiveKitDouble

from appservice.background import purge_regularly
from appservice.settings import ConfigError, RetentionSettings, parse_settings
from bridge.ids import MeetingID
from bridge.jobs import JobQueue
from bridge.ports import CallMessage
from bridge.recording.recordings import TRANSCRIBE
from bridge.retention import PurgeReport, Retention, RetentionPolicy
from bridge.room_settings.config import ROOM_CONFIG_EVENT

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
OTHER_ROOM = "!other:localhost"
EXAMPLE_CONFIG = Path(__file__).parent.parent / "config" / "example-config.yaml"


@pytest.fixture
async def fast(
    tmp_path: Path, livekit: LiveKitDouble, database: DatabaseTarget
) -> AsyncIterator[FastBridge]:
    async with FastBridge(tmp_path, livekit, database=database) as bridge:
        yield bridge


async def _count(fast: FastBridge, query: str, *args: Any) -> int:
    return int(await fast.running.db.fetchval(query, *args))


async def _payload(fast: FastBridge, event_id: str) -> dict[str, Any] | None:
    raw = await fast.running.db.fetchval("SELECT payload FROM inbox WHERE event_id=$1", event_id)
    return None if raw is None else dict(json.loads(raw))


async def _purge(fast: FastBridge) -> PurgeReport:
    return await fast.running.retention.purge()


# ---------------------------------------------------------------- the inbox


async def test_a_handled_events_content_goes_after_an_hour_its_id_after_a_week(
    fast: FastBridge,
) -> None:
    said = await fast.say("Le budget 2026 reste confidentiel")
    assert (await _payload(fast, said) or {})["content"]["body"].startswith("Le budget")
    fast.clock.now += 59 * MINUTE_MS
    assert (await _purge(fast)).event_payloads == 0
    assert (await _payload(fast, said) or {}).get("content")
    fast.clock.now += 2 * MINUTE_MS
    report = await _purge(fast)
    assert report.event_payloads >= 1
    assert await _payload(fast, said) == {}  # the row (its event id) stays, empty
    # The homeserver sending it again (a lost acknowledgement) is still recognised.
    again = {"event_id": said, "type": "m.room.message", "room_id": ROOM, "sender": ALICE}
    assert await fast.running.inbox.accept("txn-again", [again], fast.clock.now_ms()) == 0
    assert await fast.running.inbox.pending_count() == 0
    # After a week, the ids (and the transaction log) go too.
    fast.clock.now += 7 * DAY_MS + MINUTE_MS
    report = await _purge(fast)
    assert report.events >= 1
    assert await _count(fast, "SELECT COUNT(*) FROM inbox") == 0
    assert await _count(fast, "SELECT COUNT(*) FROM appservice_txns") == 0


async def test_an_event_not_handled_yet_keeps_its_content(fast: FastBridge) -> None:
    """Stored, acknowledged, not handled yet (the bridge stopped, say): never purged."""
    event = {
        "event_id": "$waiting",
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": ALICE,
        "origin_server_ts": fast.clock.now,
        "content": {"msgtype": "m.text", "body": "!visio"},
    }
    assert await fast.running.inbox.accept("txn-waiting", [event], fast.clock.now_ms()) == 1
    fast.clock.now += 8 * DAY_MS
    report = await _purge(fast)
    assert report.event_payloads == 0 and report.events == 0
    assert (await _payload(fast, "$waiting") or {})["content"]["body"] == "!visio"
    # It is handled as it came: the call starts.
    await fast.settle()
    assert any("/m/" in body for body in fast.notices())


async def test_an_event_waiting_for_a_retry_keeps_its_content(fast: FastBridge) -> None:
    fast.matrix.homeserver_down()
    said = await fast.say("!visio")  # answering fails: retried later
    fast.matrix.homeserver_back()
    assert await fast.running.inbox.pending_count() == 1
    fast.clock.now += 2 * HOUR_MS
    await _purge(fast)
    assert (await _payload(fast, said) or {})["content"]["body"] == "!visio"


# ---------------------------------------------------------------- meetings


async def _start(fast: FastBridge, room: str = ROOM) -> tuple[MeetingID, str]:
    await fast.say("!visio", room=room)
    found = re.search(r"/m/([a-z-]+)", "\n".join(fast.notices(room)))
    assert found, fast.notices(room)
    row = await fast.running.db.fetchrow(
        "SELECT id, livekit_room FROM meetings WHERE slug=$1", found.group(1)
    )
    assert row is not None
    return MeetingID(row["id"]), found.group(1)


async def _knock(fast: FastBridge, slug: str, name: str) -> None:
    """A guest asks to come in, from the link's page."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fast.base_url}/m/{slug}", data={"name": name}) as page,
    ):
        assert page.status == 200
    await fast.settle()


async def _busy_meeting(fast: FastBridge, room: str) -> MeetingID:
    """A meeting with all a meeting stores about people: who came (a guest too), chat both
    ways, a guest waiting in the lobby."""
    meeting_id, slug = await _start(fast, room)
    livekit_room = f"visio-{slug}"
    await fast.livekit.join(livekit_room, ALICE, "Alice")
    await fast.livekit.join(livekit_room, "guest-zoe", "Zoé Martin")
    await fast.settle()
    await fast.say("Le dossier est prêt", room=room)  # room → call
    await fast.running.chat.on_call_message(
        meeting_id, CallMessage("m1", "guest-zoe", "Zoé Martin", "Je vous entends mal", 0)
    )
    assert await fast.running.chat.drain_outbox() == 1  # call → room
    await _knock(fast, slug, "Jean Invité")
    for table in ("participants", "chat_links", "chat_outbox", "lobby_requests"):
        assert await _rows(fast, table, meeting_id) > 0, table
    return meeting_id


async def _rows(fast: FastBridge, table: str, meeting_id: MeetingID) -> int:
    return await _count(fast, f"SELECT COUNT(*) FROM {table} WHERE meeting_id=$1", meeting_id)  # noqa: S608


async def _end(fast: FastBridge, meeting_id: MeetingID) -> None:
    livekit_room = await fast.running.db.fetchval(
        "SELECT livekit_room FROM meetings WHERE id=$1", meeting_id
    )
    await fast.livekit.finish_room(livekit_room)
    await fast.settle()
    state = await fast.running.db.fetchval("SELECT state FROM meetings WHERE id=$1", meeting_id)
    assert state == "ended"


@pytest.fixture
async def two_rooms(fast: FastBridge) -> FastBridge:
    """ROOM lets guests in through a lobby; OTHER_ROOM is a second room, members only."""
    fast.matrix.room(OTHER_ROOM, members={ALICE: "Alice", BOB: "Bob"}, levels={ALICE: 100})
    for room in (ROOM, OTHER_ROOM):
        await fast.put_state(ROOM_CONFIG_EVENT, {"access": "lobby"}, room=room)
    return fast


async def test_an_ended_meeting_goes_after_thirty_days_a_live_one_stays(
    two_rooms: FastBridge,
) -> None:
    fast = two_rooms
    live = await _busy_meeting(fast, OTHER_ROOM)
    ended = await _busy_meeting(fast, ROOM)
    await _end(fast, ended)
    # The call's chat, posted in the room, is not kept once the meeting is over.
    fast.clock.now += 2 * HOUR_MS
    report = await _purge(fast)
    assert report.call_chat == 1
    assert await _rows(fast, "chat_outbox", ended) == 0
    assert await _rows(fast, "participants", ended) > 0  # the rest waits its time
    # Still within thirty days: everything stays.
    fast.clock.now += 29 * DAY_MS
    assert (await _purge(fast)).meetings == 0
    for table in ("participants", "chat_links", "lobby_requests"):
        assert await _rows(fast, table, ended) > 0, table
    # Past thirty days: the ended meeting and all it held about people are gone.
    fast.clock.now += DAY_MS
    report = await _purge(fast)
    assert report.meetings == 1
    assert report.participants == 2 and report.chat_links >= 1 and report.lobby_requests == 1
    assert await _count(fast, "SELECT COUNT(*) FROM meetings WHERE id=$1", ended) == 0
    for table in ("participants", "chat_links", "chat_outbox", "lobby_requests", "jobs"):
        assert await _rows(fast, table, ended) == 0, table
    names = await fast.running.db.fetch("SELECT display_name FROM participants")
    assert "Zoé Martin" in {row["display_name"] for row in names}  # the live meeting's
    # The live meeting keeps everything, however long it lasts.
    for table in ("participants", "chat_links", "chat_outbox", "lobby_requests"):
        assert await _rows(fast, table, live) > 0, table
    assert await fast.running.db.fetchval("SELECT state FROM meetings WHERE id=$1", live) == "live"


async def test_an_old_link_is_unknown_once_its_meeting_is_gone(fast: FastBridge) -> None:
    meeting_id, slug = await _start(fast)
    await _end(fast, meeting_id)
    fast.clock.now += 31 * DAY_MS
    assert (await _purge(fast)).meetings == 1
    async with aiohttp.ClientSession() as session, session.get(f"{fast.base_url}/m/{slug}") as page:
        assert page.status == 404
    # The room can have a new meeting as usual.
    await fast.say("!visio")
    assert await _count(fast, "SELECT COUNT(*) FROM meetings WHERE state='live'") == 1


async def test_a_meeting_being_transcribed_is_kept_until_its_worker_is_done(
    fast: FastBridge,
) -> None:
    meeting_id, _ = await _start(fast)
    await _end(fast, meeting_id)
    jobs = JobQueue(fast.running.db, fast.clock)
    assert await jobs.enqueue(TRANSCRIBE, meeting_id, {"recording_path": ""})
    fast.clock.now += 31 * DAY_MS
    job = await jobs.claim(TRANSCRIBE, "worker-1", 30 * MINUTE_MS)
    assert job is not None
    assert (await _purge(fast)).meetings == 0  # a worker holds it: it needs the participants
    # The worker died; nobody took the job up again in time: the transcription is given up.
    fast.clock.now += 31 * MINUTE_MS
    report = await _purge(fast)
    assert (report.meetings, report.jobs, report.abandoned_jobs) == (1, 1, 1)
    assert await _count(fast, "SELECT COUNT(*) FROM jobs") == 0


# ---------------------------------------------------------------- the loop and the settings


async def test_the_loop_survives_a_failing_pass() -> None:
    class Flaky(Retention):
        def __init__(self) -> None:
            self.passes = 0
            self.done = asyncio.Event()

        async def purge(self) -> PurgeReport:
            self.passes += 1
            if self.passes == 1:
                raise RuntimeError("database away")
            self.done.set()
            return PurgeReport()

    flaky = Flaky()
    loop = asyncio.create_task(purge_regularly(flaky, 0))
    try:
        await asyncio.wait_for(flaky.done.wait(), 5)
    finally:
        loop.cancel()
    assert flaky.passes >= 2


def _minimal() -> dict[str, Any]:
    return {
        "homeserver": {"address": "https://matrix.example.org", "domain": "example.org"},
        "appservice": {"address": "http://127.0.0.1:29340", "as_token": "a", "hs_token": "h"},
        "public_url": "https://visio.example.org",
        "livekit": {"url": "wss://livekit.example.org", "api_key": "k", "api_secret": "s"},
    }


def test_retention_defaults(tmp_path: Path) -> None:
    settings = parse_settings(_minimal(), tmp_path, {})
    assert settings.retention == RetentionSettings(
        processed_events_hours=1,
        event_ids_days=7,
        meetings_days=30,
        recordings_hours=24,
        purge_interval=600,
    )
    assert RetentionPolicy() == RetentionPolicy(
        processed_events_ms=HOUR_MS,
        event_ids_ms=7 * DAY_MS,
        meetings_ms=30 * DAY_MS,
        recordings_ms=DAY_MS,
    )


def test_the_example_config_states_the_defaults(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    settings = parse_settings(raw, tmp_path, {}, need_tokens=False)
    assert settings.retention == RetentionSettings()


def test_retention_values_are_checked(tmp_path: Path) -> None:
    raw = {
        **_minimal(),
        "retention": {
            "processed_events_hours": -1,
            "event_ids_days": 0,
            "meetings_days": "forever",
            "recordings_hours": 0,
            "purge_interval": 5,
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, tmp_path, {})
    assert [problem.split(":", 1)[0] for problem in caught.value.problems] == [
        "retention.processed_events_hours",
        "retention.event_ids_days",
        "retention.meetings_days",
        "retention.recordings_hours",
        "retention.purge_interval",
    ]
