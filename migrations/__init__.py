"""Schema migrations: one module per version, applied in order by mautrix's `UpgradeTable`.

Each step runs in its own transaction and bumps the `version` table; the bridge refuses to
start on a schema newer than it knows, or on a database owned by another program.
SQL is written once for PostgreSQL and SQLite (the `$1` placeholder dialect of async_db).
"""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable(database_name="visio-bridge")

from . import (  # noqa: E402  - each registers itself on upgrade_table
    v01_initial,
    v02_lifecycle,
    v03_room_configs,
    v04_lobby,
    v05_chat,
    v06_transcripts,
)

__all__ = [
    "OWNER_NAME",
    "upgrade_table",
    "v01_initial",
    "v02_lifecycle",
    "v03_room_configs",
    "v04_lobby",
    "v05_chat",
    "v06_transcripts",
]

OWNER_NAME = "visio-bridge"
