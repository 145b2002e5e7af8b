"""v6: recordings and transcripts: the meeting's egress, and a durable job queue for workers."""

from mautrix.util.async_db import Connection

from . import upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Recordings, transcripts and jobs")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v6(conn: Connection) -> None:
    for column in (
        "egress_id TEXT",
        "recording_path TEXT",
        "recording_started_ns BIGINT",
        # off → recording → recorded → queued → done | failed (see bridge/recording/recordings.py)
        "transcript_state TEXT NOT NULL DEFAULT 'off'",
        "transcript_event_id TEXT",
    ):
        await conn.execute(f"ALTER TABLE meetings ADD COLUMN {column}")
    # Workers claim jobs by taking a lease; a worker that dies lets its lease run out and the
    # job is claimed again. One job per meeting and kind: enqueueing twice is a no-op.
    await conn.execute(
        """CREATE TABLE jobs (
            id          TEXT PRIMARY KEY,
            kind        TEXT NOT NULL,
            meeting_id  TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            payload     TEXT NOT NULL,
            state       TEXT NOT NULL DEFAULT 'queued',
            attempts    INTEGER NOT NULL DEFAULT 0,
            run_after   BIGINT NOT NULL,
            lease_owner TEXT,
            lease_until BIGINT,
            last_error  TEXT,
            created_at  BIGINT NOT NULL,
            finished_at BIGINT,
            UNIQUE (kind, meeting_id)
        )"""
    )
    await conn.execute("CREATE INDEX jobs_claimable ON jobs (state, run_after)")
