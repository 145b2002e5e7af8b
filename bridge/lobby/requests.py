"""The lobby: guests wait on the join page until a room member lets them in (or not).

A request is created when a guest gives their name on the link of a `lobby` room; the bridge
posts it in the Matrix room, and a reaction by someone allowed decides it. Decisions are
transitions guarded by state in the database, so the first decision wins and a late one (or
one after expiry) changes nothing. When the call ends, its requests still waiting are closed
(`ENDED`): nobody can let a guest into a call that is over. The waiting page long-polls; `wait()`
wakes it as soon as this process records a decision.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
from dataclasses import dataclass

from bridge.ids import MeetingID
from bridge.ports import Clock, Database, Row


class LobbyState(enum.StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    REFUSED = "refused"
    EXPIRED = "expired"
    ENDED = "ended"  # the call ended while the guest was waiting


@dataclass(frozen=True)
class LobbyRequest:
    id: str
    meeting_id: MeetingID
    identity: str
    display_name: str
    state: LobbyState
    message_event_id: str | None
    created_at: int
    expires_at: int
    decided_by: str | None


_COLUMNS = (
    "id, meeting_id, identity, display_name, state, message_event_id, created_at, expires_at, "
    "decided_by"
)


def _request(row: Row) -> LobbyRequest:
    return LobbyRequest(
        id=row["id"],
        meeting_id=MeetingID(row["meeting_id"]),
        identity=row["identity"],
        display_name=row["display_name"],
        state=LobbyState(row["state"]),
        message_event_id=row["message_event_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_by=row["decided_by"],
    )


class Lobby:
    def __init__(self, db: Database, clock: Clock, *, timeout_ms: int) -> None:
        self._db = db
        self._clock = clock
        self._timeout_ms = timeout_ms
        self._decided: dict[str, asyncio.Event] = {}

    async def open_request(
        self, meeting_id: MeetingID, identity: str, display_name: str
    ) -> LobbyRequest:
        now = self._clock.now_ms()
        request_id = secrets.token_urlsafe(24)
        await self._db.execute(
            f"INSERT INTO lobby_requests ({_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, NULL)",
            request_id,
            meeting_id,
            identity,
            display_name,
            LobbyState.WAITING.value,
            now,
            now + self._timeout_ms,
        )
        return LobbyRequest(
            id=request_id,
            meeting_id=meeting_id,
            identity=identity,
            display_name=display_name,
            state=LobbyState.WAITING,
            message_event_id=None,
            created_at=now,
            expires_at=now + self._timeout_ms,
            decided_by=None,
        )

    async def get(self, request_id: str) -> LobbyRequest | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM lobby_requests WHERE id=$1", request_id
        )
        return _request(row) if row else None

    async def by_message(self, event_id: str) -> LobbyRequest | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM lobby_requests WHERE message_event_id=$1", event_id
        )
        return _request(row) if row else None

    async def attach_message(self, request_id: str, event_id: str) -> None:
        await self._db.execute(
            "UPDATE lobby_requests SET message_event_id=$2 WHERE id=$1", request_id, event_id
        )

    async def decide(self, request_id: str, admitted: bool, by: str) -> LobbyRequest | None:
        """Record a decision; the request if this call decided it, None if it was already over."""
        state = LobbyState.ADMITTED if admitted else LobbyState.REFUSED
        now = self._clock.now_ms()
        decided = await self._db.fetchval(
            "UPDATE lobby_requests SET state=$2, decided_by=$3, decided_at=$4 "
            "WHERE id=$1 AND state=$5 AND expires_at > $4 RETURNING id",
            request_id,
            state.value,
            by,
            now,
            LobbyState.WAITING.value,
        )
        if decided is None:
            return None
        self._wake(request_id)
        return await self.get(request_id)

    async def expire_due(self) -> list[LobbyRequest]:
        """Mark requests nobody answered in time as expired; returns them."""
        now = self._clock.now_ms()
        rows = await self._db.fetch(
            "UPDATE lobby_requests SET state=$1, decided_at=$2 "
            f"WHERE state=$3 AND expires_at <= $2 RETURNING {_COLUMNS}",
            LobbyState.EXPIRED.value,
            now,
            LobbyState.WAITING.value,
        )
        expired = [_request(row) for row in rows]
        for request in expired:
            self._wake(request.id)
        return expired

    async def end_meeting(self, meeting_id: MeetingID) -> list[LobbyRequest]:
        """Close the requests still waiting in a meeting that ended; returns them."""
        rows = await self._db.fetch(
            "UPDATE lobby_requests SET state=$1, decided_at=$2 "
            f"WHERE meeting_id=$3 AND state=$4 RETURNING {_COLUMNS}",
            LobbyState.ENDED.value,
            self._clock.now_ms(),
            meeting_id,
            LobbyState.WAITING.value,
        )
        ended = [_request(row) for row in rows]
        for request in ended:
            self._wake(request.id)
        return ended

    async def meetings_waited_on(self) -> list[MeetingID]:
        """The meetings that have requests still waiting."""
        rows = await self._db.fetch(
            "SELECT DISTINCT meeting_id FROM lobby_requests WHERE state=$1",
            LobbyState.WAITING.value,
        )
        return [MeetingID(row["meeting_id"]) for row in rows]

    async def wait(self, request_id: str, timeout_s: float) -> LobbyRequest | None:
        """The request once decided, or as it is after `timeout_s` (a long-poll)."""
        request = await self.get(request_id)
        if request is None or request.state is not LobbyState.WAITING:
            return request
        event = self._decided.setdefault(request_id, asyncio.Event())
        try:
            remaining_s = max(0.0, (request.expires_at - self._clock.now_ms()) / 1000)
            await asyncio.wait_for(event.wait(), timeout=min(timeout_s, remaining_s + 0.5))
        except TimeoutError:
            pass
        finally:
            if not event.is_set():
                self._decided.pop(request_id, None)
        return await self.get(request_id)

    def _wake(self, request_id: str) -> None:
        event = self._decided.pop(request_id, None)
        if event is not None:
            event.set()
