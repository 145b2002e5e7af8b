"""v7: indexes for the retention purge (bridge/retention.py), which deletes by age and meeting."""

from mautrix.util.async_db import Connection

from . import upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Indexes for the retention purge")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v7(conn: Connection) -> None:
    # Handled events, oldest first (pending ones have no processed_at); and those whose content
    # is still there, which the purge drops: the literal must match the purge's query.
    await conn.execute("CREATE INDEX inbox_processed ON inbox (processed_at)")
    await conn.execute("CREATE INDEX inbox_unpurged ON inbox (processed_at) WHERE payload <> '{}'")
    await conn.execute("CREATE INDEX meetings_ended ON meetings (ended_at)")
    # A meeting's rows are deleted with it; PostgreSQL does not index foreign keys by itself,
    # and its ON DELETE CASCADE would scan these tables once per meeting.
    for table in ("chat_outbox", "lobby_requests", "jobs"):
        await conn.execute(f"CREATE INDEX {table}_meeting ON {table} (meeting_id)")
