"""`visio-bridge demo`: a local Synapse with the bridge registered and a demo user, to try it out.

Everything lives in one folder (config, registration, SQLite databases, logs) and is reused
on the next run, so the demo user's rooms survive a restart. LiveKit is whatever the config
points at (by default a `livekit-server --dev` on this machine); when none answers, `/visio`
says so in the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .app import BridgeServer
from .localsynapse import LocalSynapse
from .registration import new_registration
from .settings import Settings, load_settings

log = logging.getLogger(__name__)

SERVER_NAME = "localhost"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(synapse_port: int, bridge_port: int) -> dict[str, Any]:
    return {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": SERVER_NAME},
        "appservice": {
            "address": f"http://127.0.0.1:{bridge_port}",
            "hostname": "127.0.0.1",
            "port": bridge_port,
            "registration": "registration.yaml",
        },
        "public_url": f"http://127.0.0.1:{bridge_port}",
        "database": {"url": "sqlite:visio-bridge.db"},
        # livekit-server --dev's built-in key pair.
        "livekit": {"url": "ws://127.0.0.1:7880", "api_key": "devkey", "api_secret": "secret"},
        "permissions": {SERVER_NAME: "user"},
        "logging": {"level": "INFO"},
    }


@dataclass(frozen=True)
class DemoSetup:
    workdir: Path
    settings: Settings
    registration_path: Path
    password: str
    first_run: bool


def prepare_demo(workdir: Path) -> DemoSetup:
    """Create (or reuse) the demo folder: config, registration and the demo user's password."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    if not config_path.exists():
        config_path.write_text(yaml.safe_dump(demo_config(_free_port(), _free_port())))
    registration_path = workdir / "registration.yaml"
    if not registration_path.exists():
        unsigned = load_settings(config_path, need_tokens=False)
        registration_path.write_text(yaml.safe_dump(new_registration(unsigned)))
    password_path = workdir / "demo-password"
    first_run = not password_path.exists()
    if first_run:
        password_path.write_text(secrets.token_urlsafe(12))
        password_path.chmod(0o600)
    return DemoSetup(
        workdir=workdir,
        settings=load_settings(config_path),
        registration_path=registration_path.resolve(),
        password=password_path.read_text().strip(),
        first_run=first_run,
    )


async def run_demo(setup: DemoSetup) -> int:
    settings = setup.settings
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("mau").setLevel(logging.WARNING)

    synapse_port = int(settings.homeserver.address.rsplit(":", 1)[1])
    synapse = LocalSynapse(
        setup.workdir / "synapse",
        server_name=SERVER_NAME,
        port=synapse_port,
        registration_files=[setup.registration_path],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with synapse, BridgeServer(settings):
        if setup.first_run:
            await synapse.register_user("demo", setup.password, admin=True, displayname="Démo")
        print(
            "\n"
            "visio-bridge demo is running.\n"
            f"  Homeserver: {synapse.base_url}  (server name {SERVER_NAME})\n"
            f"  Log in with any Matrix client as @demo:{SERVER_NAME}, password {setup.password}\n"
            f"  Create a room, invite {settings.bot_mxid}, then type !visio (or /visio, then\n"
            "  'Send as message' in Element).\n"
            f"  LiveKit: {settings.livekit.url}; edit {setup.workdir / 'config.yaml'} to point\n"
            "  elsewhere (`livekit-server --dev` matches the defaults).\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        await stop.wait()
    return 0
