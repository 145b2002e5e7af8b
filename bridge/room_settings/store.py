"""Persistence of each room's last good configuration (content of its settings state event)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.ids import RoomID
from bridge.ports import Database


@dataclass(frozen=True)
class StoredConfig:
    content: dict[str, Any] | None  # None: the room has no settings event (defaults apply)
    event_id: str | None


class RoomConfigStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, room_id: RoomID) -> StoredConfig | None:
        """The stored config, or None when this room was never read."""
        row = await self._db.fetchrow(
            "SELECT content, event_id FROM room_configs WHERE room_id=$1", room_id
        )
        if row is None:
            return None
        content = json.loads(row["content"])
        return StoredConfig(content if isinstance(content, dict) else None, row["event_id"])

    async def put(
        self, room_id: RoomID, content: dict[str, Any] | None, event_id: str | None, at: int
    ) -> None:
        await self._db.execute(
            "INSERT INTO room_configs (room_id, content, event_id, updated_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (room_id) DO UPDATE SET "
            "content=excluded.content, event_id=excluded.event_id, updated_at=excluded.updated_at",
            room_id,
            json.dumps(content),
            event_id,
            at,
        )
