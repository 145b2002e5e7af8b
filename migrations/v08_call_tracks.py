"""v8: each participant's own audio, and which process holds each call.

`recorded_tracks`: one row per audio file the bridge's call participant writes, one participant's
track from the moment it was first heard (`started_at`, wall-clock ms) to `recorded_until`, which
the recorder moves forward while it writes. A track is `closed` once its file is complete.

`call_leases` and `call_holds`: exactly one process (the bridge, or a `visio-bridge call-worker`)
holds a live call at a time, by a lease it renews; a process that dies lets it run out and
another takes the call over. `call_holds` keeps every holder's span, so the transcript can say
where no one was recording.
"""

from mautrix.util.async_db import Connection

from . import upgrade_table


# mautrix types `register` as returning a union, which mypy cannot call as a decorator.
@upgrade_table.register(description="Per-participant tracks and call leases")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v8(conn: Connection) -> None:
    await conn.execute(
        """CREATE TABLE recorded_tracks (
            id             TEXT PRIMARY KEY,
            meeting_id     TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            identity       TEXT NOT NULL,
            name           TEXT NOT NULL,
            path           TEXT NOT NULL UNIQUE,
            recorder       TEXT NOT NULL,
            started_at     BIGINT NOT NULL,
            recorded_until BIGINT NOT NULL,
            closed         BOOLEAN NOT NULL DEFAULT false
        )"""
    )
    await conn.execute("CREATE INDEX recorded_tracks_meeting ON recorded_tracks (meeting_id)")
    # The current holder of each call: one row per meeting, so two processes can never both
    # hold it (the claim is a guarded upsert on this primary key).
    await conn.execute(
        """CREATE TABLE call_leases (
            meeting_id  TEXT PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
            owner       TEXT NOT NULL,
            lease_until BIGINT NOT NULL,
            held_since  BIGINT NOT NULL
        )"""
    )
    await conn.execute(
        """CREATE TABLE call_holds (
            meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            owner      TEXT NOT NULL,
            since      BIGINT NOT NULL,
            until      BIGINT NOT NULL,
            PRIMARY KEY (meeting_id, owner, since)
        )"""
    )
