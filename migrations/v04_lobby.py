"""v4: guests waiting in a meeting's lobby for a member to let them in."""

from mautrix.util.async_db import Connection

from . import upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Lobby requests")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v4(conn: Connection) -> None:
    # The id is the waiting page's secret: whoever holds it gets the token once admitted.
    await conn.execute(
        """CREATE TABLE lobby_requests (
            id               TEXT PRIMARY KEY,
            meeting_id       TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            identity         TEXT NOT NULL,
            display_name     TEXT NOT NULL,
            state            TEXT NOT NULL,
            message_event_id TEXT UNIQUE,
            created_at       BIGINT NOT NULL,
            expires_at       BIGINT NOT NULL,
            decided_by       TEXT,
            decided_at       BIGINT
        )"""
    )
    await conn.execute("CREATE INDEX lobby_pending ON lobby_requests (state, expires_at)")
