"""v2: participants' presence intervals, webhook de-duplication, status message revisions."""

from mautrix.util.async_db import Connection

from . import upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Participants, webhook log, status revisions")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v2(conn: Connection) -> None:
    # One row per LiveKit connection (participant sid): a person who rejoins gets a new row,
    # so the rows are presence intervals, which the transcript's speaker naming needs.
    await conn.execute(
        """CREATE TABLE participants (
            meeting_id     TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            sid            TEXT NOT NULL,
            identity       TEXT NOT NULL,
            display_name   TEXT NOT NULL,
            matrix_user_id TEXT,
            joined_at      BIGINT,
            left_at        BIGINT,
            PRIMARY KEY (meeting_id, sid)
        )"""
    )
    await conn.execute("CREATE INDEX participants_identity ON participants (meeting_id, identity)")
    await conn.execute(
        """CREATE TABLE livekit_webhooks (
            id          TEXT PRIMARY KEY,
            received_at BIGINT NOT NULL
        )"""
    )
    # status_rev counts changes worth showing; status_sent_rev is the last one the room saw.
    # Their difference survives a restart, so a missed edit is made on the next start.
    await conn.execute("ALTER TABLE meetings ADD COLUMN status_rev INTEGER NOT NULL DEFAULT 0")
    await conn.execute("ALTER TABLE meetings ADD COLUMN status_sent_rev INTEGER NOT NULL DEFAULT 0")
    await conn.execute("ALTER TABLE meetings ADD COLUMN end_notice_event_id TEXT")
