"""Start-up failures the operator can fix, said in one line that names the setting.

A port already taken, a database that cannot be opened or that belongs to another program: the
bridge cannot run, and a traceback through aiohttp, mautrix and asyncpg only hides the one thing
to change. `StartupError` carries that line; `visio-bridge run` prints it and exits non-zero.
A homeserver or LiveKit that is down is not one of these: the bridge starts, and retries them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from mautrix.util.async_db import Database
from mautrix.util.async_db.errors import (
    DatabaseNotOwned,
    ForeignTablesFound,
    UnsupportedDatabaseVersion,
)

from appservice.settings import Settings

log = logging.getLogger(__name__)

# Tables mautrix itself creates in a database it runs: the schema version and the owner's name.
_BRIDGE_BOOKKEEPING = frozenset({"version", "database_owner"})


class StartupError(Exception):
    """The bridge cannot start; the message is one line naming the setting to change."""


async def start_database(db: Database, settings: Settings) -> None:
    """`db.start()` (connect, check, migrate), or a `StartupError`, with nothing left open."""
    url = settings.database_url
    if url.startswith("sqlite:"):
        _check_sqlite(Path(url.removeprefix("sqlite:")))
    try:
        await db.start()
    except BaseException as err:
        # Close what did open: an aiosqlite connection left open is a thread that keeps the
        # process alive after the error.
        with contextlib.suppress(Exception):
            await db.stop()
        problem = _database_problem(err, url)
        if problem is None:
            raise
        raise StartupError(f"database.url: {problem}") from err


def _check_sqlite(path: Path) -> None:
    """Open the SQLite file once, here, before mautrix does: an aiosqlite connection that fails
    to open leaves its (non-daemon) thread behind, which keeps the process alive. Then refuse a
    non-empty database the bridge never set up (mautrix would add its tables beside another
    program's)."""
    if (
        not path.parent.is_dir()
        or not _writable(path.parent)
        or (path.exists() and not _writable(path))
    ):
        # SQLite writes its -wal and -shm files beside the database: the folder must be writable.
        raise StartupError(f"database.url: {_sqlite_problem(path, None)}")
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            }
    except sqlite3.Error as err:
        raise StartupError(f"database.url: {_sqlite_problem(path, err)}") from err
    if tables and "version" not in tables and not tables <= _BRIDGE_BOOKKEEPING:
        shown = ", ".join(sorted(tables)[:3]) + (", …" if len(tables) > 3 else "")
        raise StartupError(
            f"database.url: {path} holds another program's tables ({shown}), not visio-bridge's;"
            " point database.url at a new file (or at the bridge's own database)"
        )


def _database_problem(err: BaseException, url: str) -> str | None:
    if isinstance(err, ForeignTablesFound | DatabaseNotOwned):
        return f"{err}; give visio-bridge a database of its own"
    if isinstance(err, UnsupportedDatabaseVersion):
        return f"{err}: a newer visio-bridge used this database, and downgrading is not supported"
    if url.startswith("sqlite:"):
        if isinstance(err, sqlite3.Error | OSError):
            return _sqlite_problem(Path(url.removeprefix("sqlite:")), err)
        return None
    return _postgres_problem(err, url)


def _sqlite_problem(path: Path, err: BaseException | None) -> str:
    folder = path.parent
    if not folder.is_dir():
        why = f"the folder {folder} does not exist"
    elif not _writable(folder) or (path.exists() and not _writable(path)):
        why = "this user may not write there (SQLite writes beside the file too)"
    elif isinstance(err, sqlite3.DatabaseError) and "not a database" in str(err):
        why = "the file is not an SQLite database"
    else:
        why = str(err)
    return f"cannot open the SQLite database {path}: {why}"


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _postgres_problem(err: BaseException, url: str) -> str | None:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with the bridge
        return None
    where = urlsplit(url)
    server = f"{where.hostname or 'localhost'}:{where.port or 5432}"
    name = where.path.lstrip("/") or "(default)"
    if isinstance(err, asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL at {server} has no database named {name!r}; create it first"
    if isinstance(
        err, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return f"PostgreSQL at {server} refused the user or password ({err})"
    if isinstance(err, asyncpg.PostgresError):
        return f"PostgreSQL at {server} refused to open the database ({err})"
    if isinstance(err, OSError | TimeoutError):
        return f"cannot connect to PostgreSQL at {server} ({_reason(err)})"
    return None


def _reason(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError) or getattr(err, "errno", None) in (
        errno.ECONNREFUSED,
    ):
        return "connection refused: is it running, on that port?"
    if isinstance(err, TimeoutError):
        return "no answer in time"
    text = str(err)
    if "Connect call failed" in text or "Errno 111" in text:
        return "connection refused: is it running, on that port?"
    return text or type(err).__name__


def bind_problem(err: OSError, host: str, port: int) -> StartupError | None:
    """The one line for an HTTP port the bridge could not listen on, or None if not that."""
    code = err.errno
    if code == errno.EADDRINUSE:
        return StartupError(
            f"appservice.port: {host}:{port} is already in use by another program"
            " (another visio-bridge?); stop it, or choose another port"
        )
    if code == errno.EACCES:
        return StartupError(
            f"appservice.port: this user may not listen on port {port} (ports below 1024 need"
            " privileges); choose a port above 1024"
        )
    if code in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or "getaddrinfo" in str(err):
        return StartupError(
            f"appservice.hostname: cannot listen on {host!r}: not an address of this machine"
        )
    return None
