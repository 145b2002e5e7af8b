"""Retention: what the bridge stores about people is deleted once nothing needs it.

The bridge holds what civil servants say and write in meetings, and who attended; SECURITY.md
lists it. One pass, `Retention.purge()`, run periodically (appservice/background.py), applies
the operator's `retention` settings:

* Matrix events (chat text included) wait in the inbox until handled. Once handled, their
  content is dropped after `processed_events_ms`; the row (event id) stays for `event_ids_ms`,
  to recognise an event the homeserver sends again, then goes. An event still waiting to be
  handled, or waiting for a retry, is never touched.
* Messages from a call's chat wait in the outbox until posted in the room. Once their meeting
  has ended, the posted ones go `processed_events_ms` later: the room has them, and nothing in
  the bridge needs them.
* A meeting is deleted `meetings_ms` after it ended, with everything about it: who took part
  (display names, guests' names, Matrix ids, join and leave times), chat links, lobby requests,
  transcription jobs. Deleted rather than kept with its personal fields cleared, because what
  would remain (room, start and end times, status message) still tells who met when, and
  nothing needs an old meeting: its link then leads to an unknown meeting rather than an ended
  one, and LiveKit's late webhooks about it are ignored as they are for any unknown room. Open
  meetings are never touched, nor a meeting a worker is transcribing (its lease runs); a
  transcription still waiting for a worker after that long is given up, with a warning.
* A file in the recordings folder not written to for `recordings_ms` is deleted unless a
  meeting still needs it: being recorded, waiting for its transcription, or, with
  `keep_recordings`, transcribed (kept as long as its meeting). Recordings no transcript will
  come from are deleted as soon as that is known (bridge/recording, bridge/transcription):
  the sweep catches what a crash or a lost webhook left behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, fields

from bridge.inbox.store import InboxStore
from bridge.meetings.store import MeetingState
from bridge.ports import Clock, Database
from bridge.recording import files

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

_ENDED = (MeetingState.ENDED.value, MeetingState.FAILED.value)
# Transcript states in which the recording is still to be transcribed (recordings.py).
_NEEDED = ("recording", "recorded", "queued")
_BATCH = 200


@dataclass(frozen=True)
class RetentionPolicy:
    processed_events_ms: int = HOUR_MS
    event_ids_ms: int = 7 * DAY_MS
    meetings_ms: int = 30 * DAY_MS
    recordings_ms: int = DAY_MS
    keep_transcribed_recordings: bool = False  # transcription.keep_recordings


@dataclass(frozen=True)
class PurgeReport:
    """What one pass deleted."""

    event_payloads: int = 0
    events: int = 0
    call_chat: int = 0  # outbox rows of ended meetings
    meetings: int = 0
    participants: int = 0
    chat_links: int = 0
    lobby_requests: int = 0
    jobs: int = 0
    abandoned_jobs: int = 0
    recordings: int = 0

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def summary(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True)
class _MeetingPurge:
    participants: int
    chat_links: int
    chat_outbox: int
    lobby_requests: int
    jobs: int
    abandoned_jobs: int


class Retention:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: RetentionPolicy,
        *,
        recordings_dir: str | None = None,
    ) -> None:
        self._db = db
        self._inbox = InboxStore(db)
        self._clock = clock
        self._policy = policy
        self._recordings_dir = recordings_dir

    async def purge(self) -> PurgeReport:
        """One pass: delete everything past its time; returns what went."""
        now = self._clock.now_ms()
        policy = self._policy
        payloads = await self._inbox.forget_payloads(now - policy.processed_events_ms)
        events = await self._inbox.forget_events(now - policy.event_ids_ms)
        call_chat = await self._forget_call_chat(now - policy.processed_events_ms)
        meetings, purged = await self._forget_meetings(now - policy.meetings_ms, now)
        recordings = await self._sweep_recordings(now - policy.recordings_ms)
        report = PurgeReport(
            event_payloads=payloads,
            events=events,
            call_chat=call_chat + sum(p.chat_outbox for p in purged),
            meetings=meetings,
            participants=sum(p.participants for p in purged),
            chat_links=sum(p.chat_links for p in purged),
            lobby_requests=sum(p.lobby_requests for p in purged),
            jobs=sum(p.jobs for p in purged),
            abandoned_jobs=sum(p.abandoned_jobs for p in purged),
            recordings=recordings,
        )
        if report:
            log.info("Retention purge: %s", report.summary())
        return report

    async def _forget_call_chat(self, ended_before_ms: int) -> int:
        rows = await self._db.fetch(
            "DELETE FROM chat_outbox WHERE state <> 'pending' AND meeting_id IN ("
            "  SELECT id FROM meetings WHERE state IN ($1, $2) AND ended_at < $3"
            ") RETURNING seq",
            *_ENDED,
            ended_before_ms,
        )
        return len(rows)

    async def _forget_meetings(
        self, ended_before_ms: int, now_ms: int
    ) -> tuple[int, list[_MeetingPurge]]:
        purged: list[_MeetingPurge] = []
        while True:
            rows = await self._db.fetch(
                "SELECT id FROM meetings WHERE state IN ($1, $2) AND ended_at < $3 "
                "AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.meeting_id = meetings.id "
                "  AND jobs.state = 'running' AND jobs.lease_until >= $4) "
                "ORDER BY ended_at LIMIT $5",
                *_ENDED,
                ended_before_ms,
                now_ms,
                _BATCH,
            )
            for row in rows:
                done = await self._forget_meeting(str(row["id"]))
                if done is not None:
                    purged.append(done)
            if len(rows) < _BATCH:
                return len(purged), purged

    async def _forget_meeting(self, meeting_id: str) -> _MeetingPurge | None:
        # Children first and explicitly (counted, and whether or not the database cascades).
        async with self._db.acquire() as conn, conn.transaction():
            abandoned = await conn.fetchval(
                "SELECT COUNT(*) FROM jobs WHERE meeting_id=$1 AND state IN ('queued', 'running')",
                meeting_id,
            )
            counts = []
            for table in ("participants", "chat_links", "chat_outbox", "lobby_requests", "jobs"):
                deleted = await conn.fetch(
                    f"DELETE FROM {table} WHERE meeting_id=$1 RETURNING meeting_id",  # noqa: S608  - a fixed table name
                    meeting_id,
                )
                counts.append(len(deleted))
            gone = await conn.fetchval(
                "DELETE FROM meetings WHERE id=$1 AND state IN ($2, $3) RETURNING id",
                meeting_id,
                *_ENDED,
            )
            if gone is None:
                return None  # deleted meanwhile (another pass): nothing more to say
        if abandoned:
            log.warning(
                "Transcription of meeting %s given up: no worker took it before its retention "
                "ran out (is a transcribe-worker running?)",
                meeting_id,
            )
        participants, chat_links, chat_outbox, lobby_requests, jobs = counts
        return _MeetingPurge(
            participants, chat_links, chat_outbox, lobby_requests, jobs, int(abandoned)
        )

    async def _sweep_recordings(self, written_before_ms: int) -> int:
        if not self._recordings_dir:
            return 0
        needed = await self._needed_recordings(self._recordings_dir)
        deleted = await asyncio.to_thread(
            files.sweep, self._recordings_dir, written_before_ms / 1000, needed
        )
        for path in deleted:
            log.info("Recording %s deleted: past its retention, and no meeting needs it", path)
        return len(deleted)

    async def _needed_recordings(self, recordings_dir: str) -> set[str]:
        transcribed = "done" if self._policy.keep_transcribed_recordings else _NEEDED[0]
        needed: set[str] = set()
        for row in await self._db.fetch(
            "SELECT id, livekit_room, recording_path FROM meetings "
            "WHERE transcript_state IN ($1, $2, $3, $4)",
            *_NEEDED,
            transcribed,
        ):
            needed.add(files.planned_path(recordings_dir, row["livekit_room"], row["id"]))
            if row["recording_path"]:
                needed.add(str(row["recording_path"]))
        # Each participant's tracks, while their meeting still needs them.
        for row in await self._db.fetch(
            "SELECT t.path FROM recorded_tracks t JOIN meetings m ON m.id = t.meeting_id "
            "WHERE m.transcript_state IN ($1, $2, $3, $4)",
            *_NEEDED,
            transcribed,
        ):
            needed.add(str(row["path"]))
        for row in await self._db.fetch(
            "SELECT payload FROM jobs WHERE state IN ('queued', 'running')"
        ):
            path = json.loads(row["payload"]).get("recording_path")
            if isinstance(path, str) and path:
                needed.add(path)
        return needed
