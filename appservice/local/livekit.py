"""Run a real, throwaway LiveKit server (`livekit-server`) as a subprocess, on loopback only.

Shared by the tests' fixture and by `visio-bridge demo`, like `localsynapse`: the bridge is
exercised against the real SFU, not our own reading of its protocol. The binary is the one
`.ci/install-livekit.sh` builds (pinned version, outside the repository); this module only
finds it, writes a config and manages the process.

Everything listens on 127.0.0.1: the HTTP port (Twirp API and the `/rtc` websocket), one TCP and
one UDP port for media. LiveKit's own IP discovery skips loopback addresses, so the config names
127.0.0.1 as the node's address, allows loopback ICE candidates and offers no other interface:
no media ever goes to an address outside this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import yaml

from appservice.local.ports import free_port

__all__ = [
    "INSTALL_HINT",
    "LIVEKIT_VERSION",
    "LiveKitNotInstalledError",
    "LiveKitStartError",
    "LocalLiveKit",
    "find_livekit_server",
]

LIVEKIT_VERSION = "v1.13.5"
INSTALL_HINT = "bash .ci/install-livekit.sh (needs Go 1.26)"

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_CHARS = 3000


class LiveKitNotInstalledError(RuntimeError):
    def __init__(self) -> None:
        super().__init__(f"livekit-server {LIVEKIT_VERSION} is not installed: {INSTALL_HINT}")


class LiveKitStartError(RuntimeError):
    """livekit-server exited or did not answer in time; the message has the log tail."""


def find_livekit_server() -> Path | None:
    """The livekit-server binary: `$VISIO_LIVEKIT_SERVER`, the install script's, or the PATH's."""
    explicit = os.environ.get("VISIO_LIVEKIT_SERVER")
    if explicit:
        return Path(explicit) if os.access(explicit, os.X_OK) else None
    home = Path(os.environ.get("VISIO_LIVEKIT_HOME") or Path.home() / ".cache" / "visio-bridge")
    installed = home / f"livekit-server-{LIVEKIT_VERSION}" / "livekit-server"
    if os.access(installed, os.X_OK):
        return installed
    on_path = shutil.which("livekit-server")
    return Path(on_path) if on_path else None


class LocalLiveKit:
    """One livekit-server on 127.0.0.1 with a generated key pair; restartable on the same ports."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        webhook_urls: Sequence[str] = (),
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.rtc_tcp_port = free_port()
        self.rtc_udp_port = free_port(socket.SOCK_DGRAM)
        self.stun_port = free_port(socket.SOCK_DGRAM)
        self.api_key = api_key or f"API{secrets.token_hex(6)}"
        # LiveKit refuses secrets shorter than 32 bytes outside --dev.
        self.api_secret = api_secret or secrets.token_urlsafe(32)
        self.webhook_urls = list(webhook_urls)
        self._extra = extra_config or {}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The server API (Twirp) and health check."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def rtc_url(self) -> str:
        """Where participants connect (the `/rtc` websocket)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "livekit.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "livekit.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "keys": {self.api_key: self.api_secret},
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "udp_port": self.rtc_udp_port,
                "use_external_ip": False,
                "node_ip": "127.0.0.1",
                "enable_loopback_candidate": True,
                "interfaces": {"includes": ["lo"]},
                "ips": {"includes": ["127.0.0.1/32"]},
                # Without STUN servers of its own, LiveKit hands every client Google's and
                # Twilio's. A loopback port where nothing listens keeps clients from asking
                # anyone outside this machine, and answers "unreachable" at once (the media
                # port, which ignores stray STUN, made each connect ~100 ms slower).
                "stun_servers": [f"127.0.0.1:{self.stun_port}"],
            },
            # Only the bridge creates rooms, as in production.
            "room": {"auto_create": False},
            "logging": {"level": "info", "json": False},
        }
        if self.webhook_urls:
            config["webhook"] = {"api_key": self.api_key, "urls": self.webhook_urls}
        for key, value in self._extra.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        return config

    async def start(self) -> None:
        if self.running:
            raise RuntimeError("livekit-server already running")
        binary = find_livekit_server()
        if binary is None:
            raise LiveKitNotInstalledError()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The config holds the API secret: readable by us only.
        self.config_path.touch(mode=0o600)
        self.config_path.chmod(0o600)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(binary),
                "--config",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: a test's Ctrl-C reaches us, and we stop it cleanly.
                start_new_session=True,
            )
        try:
            await self._wait_ready(self._process, began + _START_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, process: asyncio.subprocess.Process, deadline: float) -> None:
        timeout = aiohttp.ClientTimeout(total=1)
        async with aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    raise LiveKitStartError(
                        self._failure(f"livekit-server exited with {process.returncode}")
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(self.url, timeout=timeout) as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise LiveKitStartError(self._failure(f"no answer on {self.url}"))
                await asyncio.sleep(_POLL_INTERVAL_S)

    def _failure(self, reason: str) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            tail = ""
        return f"{reason} (config {self.config_path})\n--- livekit.log (tail) ---\n{tail}"

    async def stop(self) -> None:
        """SIGTERM twice, then SIGKILL after a grace period. Idempotent.

        livekit-server's first SIGTERM starts a drain that waits for participants to leave
        (and, with no room at all, never ends in v1.13.5); a second signal makes it stop now,
        closing its rooms. A throwaway server has nobody to wait for.
        """
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        for _ in range(2):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.5)
                return
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def crash(self) -> None:
        """Kill the server outright (SIGKILL), as a crash or a lost machine would."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
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
