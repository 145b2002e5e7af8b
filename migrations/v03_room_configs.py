"""v3: the last good configuration of each room, parsed from its settings state event."""

from mautrix.util.async_db import Connection

from . import upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Room configuration cache")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v3(conn: Connection) -> None:
    # The room state is the source of truth; this row is the last content that was valid and
    # authorised, which stays in force when a later change is refused.
    await conn.execute(
        """CREATE TABLE room_configs (
            room_id    TEXT PRIMARY KEY,
            content    TEXT NOT NULL,
            event_id   TEXT,
            updated_at BIGINT NOT NULL
        )"""
    )
