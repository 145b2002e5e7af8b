"""Schema migrations: one module per version, applied in order by mautrix's `UpgradeTable`.

Each step runs in its own transaction and bumps the `version` table; the bridge refuses to
start on a schema newer than it knows, or on a database owned by another program.
SQL is written once for PostgreSQL and SQLite (the `$1` placeholder dialect of async_db).
"""

from mautrix.util.async_db import Scheme, UpgradeTable

upgrade_table = UpgradeTable(database_name="visio-bridge")


def sequence_column(scheme: Scheme) -> str:
    """The one dialect difference: an auto-incrementing primary key (arrival order)."""
    if scheme == Scheme.SQLITE:
        return "INTEGER PRIMARY KEY AUTOINCREMENT"
    return "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"


from . import (  # noqa: E402  - each registers itself on upgrade_table
    v01_initial,
    v02_lifecycle,
    v03_room_configs,
    v04_lobby,
    v05_chat,
    v06_transcripts,
    v07_retention,
    v08_call_tracks,
)

__all__ = [
    "OWNER_NAME",
    "sequence_column",
    "upgrade_table",
    "v01_initial",
    "v02_lifecycle",
    "v03_room_configs",
    "v04_lobby",
    "v05_chat",
    "v06_transcripts",
    "v07_retention",
    "v08_call_tracks",
]

OWNER_NAME = "visio-bridge"
