"""`visio-bridge run` with a local problem: one line naming the setting, a non-zero exit, quickly.

A port already taken, a database that cannot be opened or belongs to another program: no
traceback, no process left hanging on a thread. A homeserver (or LiveKit) that is down is not
such a problem: the bridge starts and retries it in the background.
Each case runs the installed command as a subprocess, the way an operator meets it.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appservice.cli import main
from appservice.local.ports import free_port

COMMAND = Path(sys.executable).parent / "visio-bridge"
LIMIT_S = 20


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VISIO_BRIDGE_"):
            monkeypatch.delenv(name)


def _config(tmp_path: Path, port: int, database_url: str) -> Path:
    """A config that works without a homeserver or LiveKit (both on closed ports)."""
    config: dict[str, Any] = {
        "homeserver": {"address": "http://127.0.0.1:1", "domain": "ministere.test"},
        "appservice": {
            "address": f"http://127.0.0.1:{port}",
            "hostname": "127.0.0.1",
            "port": port,
        },
        "public_url": "https://visio.ministere.test",
        "database": {"url": database_url},
        "livekit": {
            "url": "ws://127.0.0.1:1",
            "api_key": "APIkey",
            "api_secret": "a-long-random-secret-of-40-characters-xx",
            "frontend_url": "https://visio.ministere.test/call?url={livekit_url}&token={token}",
        },
        "transcription": {"in_process": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert (
        main(["generate-registration", "-c", str(path), "-o", str(tmp_path / "registration.yaml")])
        == 0
    )
    return path


def _run(config: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 - the installed command, fixed arguments
            [str(COMMAND), "run", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=LIMIT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as hung:
        stderr = hung.stderr.decode() if isinstance(hung.stderr, bytes) else hung.stderr or ""
        pytest.fail(f"visio-bridge run still running after {LIMIT_S} s:\n{stderr}")
    return done.returncode, done.stderr, time.monotonic() - started


def _refuses(config: Path, setting: str, *said: str) -> str:
    code, stderr, _ = _run(config)
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert setting in last, stderr
    for words in said:
        assert words in last, stderr
    return last


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_already_in_use(tmp_path: Path, taken_port: int) -> None:
    config = _config(tmp_path, taken_port, f"sqlite:{tmp_path / 'bridge.db'}")
    _refuses(config, "appservice.port", f"127.0.0.1:{taken_port}", "already in use")


def test_an_sqlite_file_in_a_missing_folder(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port(), f"sqlite:{tmp_path / 'nowhere' / 'bridge.db'}")
    _refuses(config, "database.url", "does not exist")


def test_an_sqlite_file_in_a_folder_this_user_may_not_write(tmp_path: Path) -> None:
    # /proc/self refuses new files to everyone, root included (the tests run as root in CI).
    locked = Path("/proc/self")
    config = _config(tmp_path, free_port(), f"sqlite:{locked / 'bridge.db'}")
    _refuses(config, "database.url", "may not write")


def test_postgresql_that_does_not_answer(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port(), "postgresql://visio:pw@127.0.0.1:1/visio")
    last = _refuses(config, "database.url", "127.0.0.1:1")
    assert "pw" not in last


def test_an_sqlite_file_of_another_program(tmp_path: Path) -> None:
    other = tmp_path / "accounts.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)")
        conn.execute("INSERT INTO invoices (amount) VALUES (42)")
    conn.close()
    config = _config(tmp_path, free_port(), f"sqlite:{other}")
    _refuses(config, "database.url", "invoices")
    # Left as it was: the bridge added none of its tables beside the other program's.
    with sqlite3.connect(other) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert tables == {"invoices"}


def test_a_homeservers_sqlite_database(tmp_path: Path) -> None:
    synapse = tmp_path / "homeserver.db"
    with sqlite3.connect(synapse) as conn:
        conn.execute("CREATE TABLE state_groups_state (state_group BIGINT, room_id TEXT)")
    conn.close()
    config = _config(tmp_path, free_port(), f"sqlite:{synapse}")
    _refuses(config, "database.url")


def test_a_database_of_a_newer_bridge(tmp_path: Path) -> None:
    database = tmp_path / "bridge.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE version (version INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO version VALUES (999)")
        conn.execute("CREATE TABLE database_owner (key INTEGER PRIMARY KEY DEFAULT 0, owner TEXT)")
        conn.execute("INSERT INTO database_owner VALUES (0, 'visio-bridge')")
    conn.close()
    config = _config(tmp_path, free_port(), f"sqlite:{database}")
    _refuses(config, "database.url", "v999")


def test_an_empty_file_is_fine_and_a_homeserver_down_does_not_stop_start_up(
    tmp_path: Path,
) -> None:
    database = tmp_path / "bridge.db"
    database.touch()
    port = free_port()
    config = _config(tmp_path, port, f"sqlite:{database}")
    process = subprocess.Popen(  # noqa: S603 - the installed command, fixed arguments
        [str(COMMAND), "run", "-c", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + LIMIT_S
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.2)
        else:
            pytest.fail("the bridge did not listen in time")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=LIMIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
