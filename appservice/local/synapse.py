"""Run a real, throwaway Synapse homeserver as a subprocess.

This module is shared by the test-suite fixtures and by ``visio-bridge demo``:
both need a genuine homeserver (so the bridge is exercised against real
Matrix semantics, not a mock) that is cheap to create, listens only on
127.0.0.1, keeps all its state in one working directory and disappears again
when stopped.

Synapse is an optional dependency (the ``demo`` extra), so it is never
imported here: it runs in its own interpreter, started with the same Python
executable as ours. HTTP goes through aiohttp; nothing here imports mautrix, so
the fixtures can test the bridge without going through the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib.util
import pathlib
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import yaml

from appservice.local.ports import free_port

__all__ = [
    "LocalSynapse",
    "RegisteredUser",
    "SynapseNotInstalledError",
    "SynapseStartError",
]

# Polling interval while waiting for the HTTP listener to come up: short enough
# not to add noticeable latency to a start that takes a few seconds.
_POLL_INTERVAL_S = 0.05
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
# How much of the logs to quote when start-up fails.
_LOG_TAIL_CHARS = 4000

# Rate limits high enough never to trigger in tests or in the demo, where a
# single user legitimately sends bursts of requests.
_NO_LIMIT: dict[str, float] = {"per_second": 10_000, "burst_count": 100_000}

# What an appservice with end-to-bridge encryption needs from Synapse (extra_config): to-device
# messages and device lists in its transactions, and acting as its own devices (MSC2409, MSC3202).
# The registration asks for them too (appservice/registration.py, with encryption enabled).
END_TO_BRIDGE_ENCRYPTION: Mapping[str, Any] = {
    "experimental_features": {
        "msc2409_to_device_messages_enabled": True,
        "msc3202_device_masquerading": True,
        "msc3202_transaction_extensions": True,
    }
}

_NOT_INSTALLED_MESSAGE = "matrix-synapse is not installed: pip install 'visio-bridge[demo]'"


class SynapseNotInstalledError(RuntimeError):
    """The optional ``matrix-synapse`` dependency is missing."""

    def __init__(self) -> None:
        super().__init__(_NOT_INSTALLED_MESSAGE)


class SynapseStartError(RuntimeError):
    """Synapse exited or did not answer in time; the message has the log tail."""


@dataclass(frozen=True)
class RegisteredUser:
    """A user created through the shared-secret registration API."""

    user_id: str
    access_token: str
    password: str
    device_id: str


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively with ``override`` (mappings merge, rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _signing_key_line() -> str:
    """Return a fresh ed25519 signing key in Synapse's key-file format.

    The file is ``"ed25519 <key id> <unpadded base64 of the 32-byte seed>"``,
    which is exactly what signedjson writes. Producing it directly costs
    nothing, whereas ``synapse.app.homeserver --generate-keys`` would pay for a
    second full Synapse import (seconds) just to write one line.
    """
    seed = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return f"ed25519 a_{secrets.token_hex(2)} {seed}\n"


def _tail(path: pathlib.Path, limit: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


class LocalSynapse:
    """A Synapse homeserver running in a subprocess, with its state in ``workdir``.

    Use as ``async with LocalSynapse(tmp_path) as hs: ...`` or call
    :meth:`start` and :meth:`stop` explicitly.
    """

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        server_name: str = "localhost",
        port: int | None = None,
        registration_files: Sequence[pathlib.Path] = (),
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self._workdir = workdir.resolve()
        self._server_name = server_name
        self._requested_port = port
        self._port: int | None = port
        self._registration_files = [p.resolve() for p in registration_files]
        self._extra_config: Mapping[str, Any] = extra_config or {}
        # Only the admin registration endpoint needs it, and only we know it.
        self._shared_secret = secrets.token_urlsafe(32)
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.start_duration: float | None = None
        """Seconds the last successful :meth:`start` took (config to first 200)."""

    # -- properties ---------------------------------------------------------

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the port is chosen by start(); call it first")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workdir(self) -> pathlib.Path:
        return self._workdir

    @property
    def config_path(self) -> pathlib.Path:
        return self._workdir / "homeserver.yaml"

    @property
    def log_path(self) -> pathlib.Path:
        """Synapse's own log (WARNING and above)."""
        return self._workdir / "synapse.log"

    @property
    def console_log_path(self) -> pathlib.Path:
        """The subprocess's stdout and stderr (tracebacks before logging is set up)."""
        return self._workdir / "synapse.console.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    # -- configuration ------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The homeserver.yaml :meth:`start` writes (the port must be known)."""
        return self._build_config()

    def _build_config(self) -> dict[str, Any]:
        workdir = self._workdir
        config: dict[str, Any] = {
            "server_name": self._server_name,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(workdir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # "openid" serves /_matrix/federation/v1/openid/userinfo
                    # without the rest of the federation API, which the bridge
                    # uses to verify OpenID tokens.
                    "resources": [{"names": ["client", "openid"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(workdir / "homeserver.db")},
            },
            "media_store_path": str(workdir / "media_store"),
            "signing_key_path": str(workdir / "signing.key"),
            "log_config": str(workdir / "log.config.yaml"),
            "report_stats": False,
            "enable_metrics": False,
            "registration_shared_secret": self._shared_secret,
            # Secrets Synapse would otherwise derive from the signing key.
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            "enable_registration": False,
            # No outbound federation: never try to fetch matrix.org's keys.
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "app_service_config_files": [str(p) for p in self._registration_files],
            # Presence adds background work and chatter we never look at.
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "rc_message": dict(_NO_LIMIT),
            "rc_registration": dict(_NO_LIMIT),
            "rc_login": {
                "address": dict(_NO_LIMIT),
                "account": dict(_NO_LIMIT),
                "failed_attempts": dict(_NO_LIMIT),
            },
            "rc_joins": {"local": dict(_NO_LIMIT), "remote": dict(_NO_LIMIT)},
            "rc_invites": {
                "per_room": dict(_NO_LIMIT),
                "per_user": dict(_NO_LIMIT),
                "per_issuer": dict(_NO_LIMIT),
            },
            "rc_3pid_validation": dict(_NO_LIMIT),
            "rc_admin_redaction": dict(_NO_LIMIT),
        }
        return _deep_merge(config, self._extra_config)

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                    "level": "WARNING",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def _write_files(self) -> None:
        self._workdir.mkdir(parents=True, exist_ok=True)
        key_path = self._workdir / "signing.key"
        if not key_path.exists():
            key_path.write_text(_signing_key_line(), encoding="ascii")
            key_path.chmod(0o600)
        (self._workdir / "log.config.yaml").write_text(
            yaml.safe_dump(self._log_config(), sort_keys=False), encoding="utf-8"
        )
        self.config_path.write_text(
            yaml.safe_dump(self._build_config(), sort_keys=False), encoding="utf-8"
        )

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Write the config, launch Synapse and wait until its client API answers."""
        if self._process is not None:
            raise RuntimeError("LocalSynapse already started")
        if importlib.util.find_spec("synapse") is None:
            raise SynapseNotInstalledError()
        began = time.monotonic()
        if self._requested_port is None:
            self._port = free_port()
        self._write_files()

        # Console output goes to a file rather than a pipe: nobody reads the
        # pipe, and a full pipe buffer would block Synapse.
        with self.console_log_path.open("ab") as console:
            # Fixed argv, no shell: our own interpreter and a config path we wrote
            # (the exec form is not flagged by bandit, unlike subprocess.Popen).
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.config_path),
                cwd=self._workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=asyncio.subprocess.STDOUT,
            )
        self._process = process
        self._session = session = aiohttp.ClientSession()
        try:
            await self._wait_ready(process, session, began + _START_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise
        self.start_duration = time.monotonic() - began

    async def _wait_ready(
        self,
        process: asyncio.subprocess.Process,
        session: aiohttp.ClientSession,
        deadline: float,
    ) -> None:
        url = f"{self.base_url}/_matrix/client/versions"
        timeout = aiohttp.ClientTimeout(total=2)
        while True:
            if process.returncode is not None:
                raise SynapseStartError(
                    self._failure(f"Synapse exited with code {process.returncode}")
                )
            try:
                async with session.get(url, timeout=timeout) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise SynapseStartError(
                    self._failure(f"Synapse did not answer {url} within {_START_TIMEOUT_S:.0f}s")
                )
            await asyncio.sleep(_POLL_INTERVAL_S)

    def _failure(self, reason: str) -> str:
        return (
            f"{reason} (workdir {self._workdir})\n"
            f"--- {self.console_log_path.name} (tail) ---\n{_tail(self.console_log_path)}\n"
            f"--- {self.log_path.name} (tail) ---\n{_tail(self.log_path)}"
        )

    async def stop(self) -> None:
        """Terminate Synapse (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        process, self._process = self._process, None
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if process is None:
            return
        if process.returncode is None:
            # The process may exit between the check and the signal.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- admin helpers ------------------------------------------------------

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("LocalSynapse is not running; call start() first")
        return self._session

    async def register_user(
        self,
        localpart: str,
        password: str | None = None,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> RegisteredUser:
        """Create a user with the shared-secret admin API and return its login.

        A random password is generated when none is given.
        """
        session = self._require_session()
        if password is None:
            password = secrets.token_urlsafe(16)
        url = f"{self.base_url}/_synapse/admin/v1/register"
        async with session.get(url) as resp:
            resp.raise_for_status()
            nonce: str = (await resp.json())["nonce"]

        # The MAC format is fixed by Synapse: NUL-separated fields, HMAC-SHA1.
        mac = hmac.new(self._shared_secret.encode("utf-8"), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode("utf-8"))
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")

        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            # Not part of the MAC; Synapse sets it as the profile displayname.
            body["displayname"] = displayname
        async with session.post(url, json=body) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"registering {localpart!r} failed ({resp.status}): {data}")
        return RegisteredUser(
            user_id=data["user_id"],
            access_token=data["access_token"],
            password=password,
            device_id=data["device_id"],
        )
