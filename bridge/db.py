"""The database port: the small surface of an async SQL pool that the repositories use.

Queries use `$1` placeholders and one SQL dialect that runs on PostgreSQL and SQLite. The
production implementation is mautrix's `async_db.Database` (wired in `appservice/app.py`);
`bridge/` only depends on this protocol, never on mautrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = Mapping[str, Any]


class Connection(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    async def execute(self, query: str, *args: Any) -> Any: ...

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class Database(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection. Inside an `acquire()` block the same task gets the same
        connection back (mautrix keeps it in a context variable), so repository calls made
        within `async with db.acquire() as conn, conn.transaction():` join that transaction."""
        ...

    async def execute(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...
