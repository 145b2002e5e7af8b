"""v5: the chat mirror's message links (both directions) and its outbox towards the room."""

from mautrix.util.async_db import Connection, Scheme

from . import sequence_column, upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Chat mirror links and outbox")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v5(conn: Connection, scheme: Scheme) -> None:
    # One row per mirrored message: its LiveKit id (scoped by sender) and its Matrix event, so
    # an edit on either side finds its counterpart, and nothing is mirrored twice.
    await conn.execute(
        """CREATE TABLE chat_links (
            meeting_id         TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            livekit_sender     TEXT NOT NULL,
            livekit_message_id TEXT NOT NULL,
            matrix_event_id    TEXT NOT NULL UNIQUE,
            direction          TEXT NOT NULL,
            created_at         BIGINT NOT NULL,
            PRIMARY KEY (meeting_id, livekit_sender, livekit_message_id)
        )"""
    )
    seq = sequence_column(scheme)
    # Messages from the call are stored here first, then posted in the room in order: a
    # restart in the middle of a burst resumes where it stopped.
    await conn.execute(
        f"""CREATE TABLE chat_outbox (
            seq                {seq},
            meeting_id         TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            livekit_sender     TEXT NOT NULL,
            sender_name        TEXT NOT NULL,
            livekit_message_id TEXT NOT NULL,
            text               TEXT NOT NULL,
            received_at        BIGINT NOT NULL,
            state              TEXT NOT NULL DEFAULT 'pending',
            attempts           INTEGER NOT NULL DEFAULT 0,
            next_attempt_at    BIGINT NOT NULL,
            last_error         TEXT,
            UNIQUE (meeting_id, livekit_sender, livekit_message_id, text)
        )"""
    )
    await conn.execute("CREATE INDEX chat_outbox_pending ON chat_outbox (state, next_attempt_at)")
