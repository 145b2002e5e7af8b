"""v1: meetings (one open per room), the appservice inbox and its transaction log."""

from mautrix.util.async_db import Connection, Scheme

from . import sequence_column, upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Meetings, inbox and transaction log")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE meetings (
            id               TEXT PRIMARY KEY,
            room_id          TEXT NOT NULL,
            slug             TEXT NOT NULL UNIQUE,
            livekit_room     TEXT NOT NULL UNIQUE,
            state            TEXT NOT NULL,
            started_by       TEXT NOT NULL,
            command_event_id TEXT UNIQUE,
            created_at       BIGINT NOT NULL,
            started_at       BIGINT,
            ended_at         BIGINT,
            ended_by         TEXT,
            status_event_id  TEXT
        )"""
    )
    # Invariant 2: one open meeting per Matrix room, enforced by the database itself.
    await conn.execute(
        "CREATE UNIQUE INDEX meetings_one_open_per_room ON meetings (room_id) "
        "WHERE state IN ('requested', 'live')"
    )
    await conn.execute(
        """CREATE TABLE appservice_txns (
            txn_id      TEXT PRIMARY KEY,
            received_at BIGINT NOT NULL,
            event_count INTEGER NOT NULL
        )"""
    )
    seq = sequence_column(scheme)
    await conn.execute(
        f"""CREATE TABLE inbox (
            seq             {seq},
            event_id        TEXT NOT NULL UNIQUE,
            txn_id          TEXT NOT NULL,
            room_id         TEXT,
            payload         TEXT NOT NULL,
            received_at     BIGINT NOT NULL,
            state           TEXT NOT NULL DEFAULT 'pending',
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at BIGINT NOT NULL,
            processed_at    BIGINT,
            last_error      TEXT
        )"""
    )
    await conn.execute("CREATE INDEX inbox_pending ON inbox (state, next_attempt_at)")
