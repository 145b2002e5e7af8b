"""`visio-bridge demo`: a local Synapse, livekit-server and the bridge, to try it out.

Everything lives in one folder (config, registration, SQLite databases, logs) and is reused
on the next run, so the demo user's rooms survive a restart. When the pinned livekit-server is
installed, the demo runs it on 127.0.0.1 with the config's key pair and port, its webhooks going
to the bridge, so `!visio` gives a link that opens a real call. Without it, or when the config
points at another LiveKit, the rest still runs and `!visio` says in the room when none answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from appservice.app import BridgeServer
from appservice.local.livekit import (
    INSTALL_HINT,
    LiveKitStartError,
    LocalLiveKit,
    find_livekit_server,
)
from appservice.local.ports import free_port
from appservice.local.synapse import END_TO_BRIDGE_ENCRYPTION, LocalSynapse
from appservice.registration import new_registration
from appservice.settings import Settings, load_settings

log = logging.getLogger(__name__)

SERVER_NAME = "localhost"
LIVEKIT_API_KEY = "visio-demo"
# What earlier demo folders were given: livekit-server --dev's port and built-in key pair.
_DEV_DEFAULT = ("ws://127.0.0.1:7880", "devkey", "secret")


def _livekit_section(port: int) -> dict[str, str]:
    # A real (non --dev) server refuses secrets under 32 bytes.
    return {
        "url": f"ws://127.0.0.1:{port}",
        "api_key": LIVEKIT_API_KEY,
        "api_secret": secrets.token_urlsafe(32),
    }


def demo_config(synapse_port: int, bridge_port: int, livekit_port: int) -> dict[str, Any]:
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
        "livekit": _livekit_section(livekit_port),
        "permissions": {SERVER_NAME: "user"},
        "logging": {"level": "INFO"},
        "encryption": _encryption_section(),
    }


def _encryption_section() -> dict[str, Any]:
    # Element creates encrypted rooms by default: the demo's bot reads them. The pickle key
    # encrypts the bot's keys in the database; it is made once, with the folder, and kept.
    return {"enabled": True, "pickle_key": secrets.token_urlsafe(32)}


def _upgrade_encryption(config_path: Path, registration_path: Path) -> None:
    """Turn encryption on in a folder made before the demo had it, registration included."""
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError:
        return  # load_settings reports it, with the rest
    if not isinstance(config, dict) or "encryption" in config:
        return  # set by the demo, or by the user: theirs to keep
    config["encryption"] = _encryption_section()
    _write_private(config_path, yaml.safe_dump(config))
    if not registration_path.exists():
        return  # written below, with everything encryption needs
    registration = yaml.safe_load(registration_path.read_text())
    if isinstance(registration, dict):
        # The same tokens: only what the homeserver must send an encrypting appservice is new.
        unsigned = load_settings(config_path, need_tokens=False)
        fresh = new_registration(unsigned)
        extras = {k: v for k, v in fresh.items() if k not in registration}
        _write_private(registration_path, yaml.safe_dump({**registration, **extras}))


def _write_private(path: Path, text: str) -> None:
    # Created private from the start: the config holds the LiveKit secret.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    path.chmod(0o600)


def _upgrade_dev_key_pair(config_path: Path) -> None:
    """Give a folder made for `livekit-server --dev` a key pair the demo's own server accepts."""
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError:
        return  # load_settings reports it, with the rest
    livekit = config.get("livekit") if isinstance(config, dict) else None
    if not isinstance(livekit, dict):
        return
    # Only the untouched default: a user who pointed it elsewhere runs a --dev server there.
    if (livekit.get("url"), livekit.get("api_key"), livekit.get("api_secret")) != _DEV_DEFAULT:
        return
    # A new port too: the `livekit-server --dev` the old README suggested may still hold 7880.
    livekit.update(_livekit_section(free_port()))
    _write_private(config_path, yaml.safe_dump(config))


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
    registration_path = workdir / "registration.yaml"
    if config_path.exists():
        _upgrade_dev_key_pair(config_path)
        _upgrade_encryption(config_path, registration_path)
    else:
        config = demo_config(free_port(), free_port(), free_port())
        _write_private(config_path, yaml.safe_dump(config))
    if not registration_path.exists():
        unsigned = load_settings(config_path, need_tokens=False)
        _write_private(registration_path, yaml.safe_dump(new_registration(unsigned)))
    password_path = workdir / "demo-password"
    first_run = not password_path.exists()
    if first_run:
        _write_private(password_path, secrets.token_urlsafe(12))
    return DemoSetup(
        workdir=workdir,
        settings=load_settings(config_path),
        registration_path=registration_path.resolve(),
        password=password_path.read_text().strip(),
        first_run=first_run,
    )


def demo_livekit(setup: DemoSetup) -> LocalLiveKit | None:
    """The livekit-server the config points at, or None when it names one not on this machine."""
    settings = setup.settings
    url = urlsplit(settings.livekit.url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        return None
    return LocalLiveKit(
        setup.workdir / "livekit",
        port=url.port,
        api_key=settings.livekit.api_key,
        api_secret=settings.livekit.api_secret,
        webhook_urls=[f"http://127.0.0.1:{settings.appservice.port}/livekit/webhook"],
    )


async def _livekit_version(binary: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        str(binary), "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    words = out.decode(errors="replace").split()  # "livekit-server version 1.13.5"
    return f"v{words[-1]}" if words else "(unknown version)"


async def _start_livekit(stack: contextlib.AsyncExitStack, setup: DemoSetup) -> str:
    """Start the demo's livekit-server if it can; the banner's LiveKit line either way."""
    server = demo_livekit(setup)
    if server is None:
        return f"{setup.settings.livekit.url} (from config.yaml, not started by the demo)"
    binary = find_livekit_server()
    if binary is None:
        return (
            "livekit-server is not installed, so !visio will say LiveKit is unreachable.\n"
            f"  Install it with: {INSTALL_HINT}; then restart the demo."
        )
    try:
        await stack.enter_async_context(server)
    except LiveKitStartError as err:
        log.error("%s", err)
        return f"livekit-server did not start, see {server.log_path}"
    return (
        f"{server.rtc_url} (livekit-server {await _livekit_version(binary)}, started by the demo)"
    )


def demo_synapse(setup: DemoSetup) -> LocalSynapse:
    """The demo's homeserver, with what the bot's encryption needs when it is on."""
    settings = setup.settings
    return LocalSynapse(
        setup.workdir / "synapse",
        server_name=SERVER_NAME,
        port=int(settings.homeserver.address.rsplit(":", 1)[1]),
        registration_files=[setup.registration_path],
        extra_config=END_TO_BRIDGE_ENCRYPTION if settings.encryption.enabled else None,
    )


async def run_demo(setup: DemoSetup) -> int:
    settings = setup.settings
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("mau").setLevel(logging.WARNING)

    synapse = demo_synapse(setup)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # Stopped in reverse: the bridge, then LiveKit (whose webhooks go to it), then Synapse.
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(synapse)
        livekit_line = await _start_livekit(stack, setup)
        await stack.enter_async_context(BridgeServer(settings))
        if setup.first_run:
            await synapse.register_user("demo", setup.password, admin=True, displayname="Démo")
        print(
            "\n"
            "visio-bridge demo is running.\n"
            f"  Homeserver: {synapse.base_url}  (server name {SERVER_NAME})\n"
            f"  Log in with any Matrix client as @demo:{SERVER_NAME}, password {setup.password}\n"
            f"  Create a room, invite {settings.bot_mxid}, then type !visio (or /visio, then\n"
            "  'Send as message' in Element).\n"
            f"  LiveKit: {livekit_line}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        await stop.wait()
    return 0
