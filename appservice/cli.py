"""The `visio-bridge` command: generate-registration, check-config, run, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

import yaml

from appservice.settings import ConfigError, Settings, load_settings


def _version() -> str:
    try:
        return importlib.metadata.version("visio-bridge")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="visio-bridge", description="Start LiveKit video calls from Matrix rooms."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate-registration", help="write the homeserver registration")
    gen.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    gen.add_argument("-o", "--output", type=Path, default=Path("registration.yaml"))
    gen.add_argument("--force", action="store_true", help="overwrite (new tokens!)")

    check = commands.add_parser("check-config", help="validate the config file")
    check.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))

    run = commands.add_parser("run", help="run the bridge")
    run.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))

    worker = commands.add_parser(
        "transcribe-worker", help="turn recorded meetings into transcripts (CPU/GPU heavy)"
    )
    worker.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))

    calls = commands.add_parser(
        "call-worker",
        help="hold calls for the bridge: mirror their chat, record each participant (PostgreSQL)",
    )
    calls.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))

    demo = commands.add_parser("demo", help="run a local Synapse with the bridge, to try it out")
    demo.add_argument("--dir", type=Path, default=Path("visio-demo"))

    args = parser.parse_args(argv)
    if args.command == "generate-registration":
        return _generate_registration(args.config, args.output, force=args.force)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "run":
        settings = _load_or_exit(args.config)
        _configure_logging(settings)
        _say_short_secret_once(settings)
        from appservice.startup import StartupError

        try:
            asyncio.run(_run_until_signal(settings))
        except StartupError as err:
            # One line, last on stderr: the setting to change, not a traceback to read.
            print(f"visio-bridge cannot start: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "transcribe-worker":
        settings = _load_or_exit(args.config)
        _configure_logging(settings)
        from appservice.worker_process import run_worker

        return asyncio.run(run_worker(settings))
    if args.command == "call-worker":
        settings = _load_or_exit(args.config)
        _configure_logging(settings)
        from appservice.call_worker import run_call_worker

        return asyncio.run(run_call_worker(settings))
    if args.command == "demo":
        from appservice.demo import prepare_demo, run_demo

        return asyncio.run(run_demo(prepare_demo(args.dir)))
    return 2


def _load_or_exit(path: Path, *, need_tokens: bool = True) -> Settings:
    try:
        return load_settings(path, need_tokens=need_tokens)
    except ConfigError as err:
        print(f"Invalid configuration in {path}:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(1) from err


def _generate_registration(config: Path, output: Path, *, force: bool) -> int:
    from appservice.registration import new_registration

    settings = _load_or_exit(config, need_tokens=False)
    if output.exists() and not force:
        print(
            f"{output} already exists; new tokens would break the homeserver's copy. "
            "Use --force to replace it.",
            file=sys.stderr,
        )
        return 1
    # Created private from the start: the file holds the tokens.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(yaml.safe_dump(new_registration(settings), sort_keys=False))
    output.chmod(0o600)  # an existing file (--force) keeps its old mode otherwise
    print(f"Wrote {output}. Add it to Synapse's app_service_config_files and restart Synapse.")
    if settings.encryption.enabled and not settings.encryption.pickle_key:
        # Printed, not written: the config is the operator's file, and this key must not change
        # once the bot's keys are stored under it.
        print(
            "Encryption is on without a pickle key: add to the config, and keep it secret:\n"
            f"encryption:\n    pickle_key: {secrets.token_urlsafe(32)}"
        )
    return 0


def _check_config(config: Path) -> int:
    from appservice import config_check

    settings = _load_or_exit(config)
    for warning in config_check.warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    problems = config_check.problems(settings)
    if problems:
        print(f"{config} is not ready:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    database = settings.database_url.split(":", 1)[0]
    print(f"{config} is valid: bot {settings.bot_mxid}, database {database}")
    return 0


def _configure_logging(settings: Settings) -> None:
    from appservice.logs import configure_logging

    # Text or JSON lines (logging.format), the room and meeting in each, and never a secret.
    secrets = (
        settings.appservice.as_token,
        settings.appservice.hs_token,
        settings.livekit.api_secret,
        settings.encryption.pickle_key,
    )
    configure_logging(settings.log_level, settings.log_format, secrets)
    for unknown in settings.unknown_keys:
        logging.getLogger("appservice.settings").warning("%s: %s", settings.source, unknown)


def _say_short_secret_once(settings: Settings) -> None:
    """PyJWT warns, with its own site-packages path, each time it signs a LiveKit token with a
    secret under 32 bytes (`InsecureKeyLengthWarning`). Say it once, naming the setting, and
    silence that one warning: the operator can act on the setting, not on PyJWT's file."""
    import warnings

    warnings.filterwarnings("ignore", message=r"The HMAC key is \d+ bytes long")
    length = len(settings.livekit.api_secret.encode())
    if length < 32:
        logging.getLogger("appservice.settings").warning(
            "livekit.api_secret is %d bytes long; LiveKit tokens need 32 or more to be safe "
            "(and a livekit-server outside --dev mode refuses shorter ones)",
            length,
        )


async def _run_until_signal(settings: Settings) -> None:
    from appservice.app import BridgeServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    from appservice.startup import bind_problem

    server = BridgeServer(settings)
    try:
        await server.start()
    except BaseException as err:
        # Undo whatever did start (database, background tasks): a thread or a task left
        # running would keep the process alive after the error.
        await server.stop()
        if isinstance(err, OSError):
            appservice = settings.appservice
            problem = bind_problem(err, appservice.hostname, appservice.port)
            if problem is not None:
                raise problem from err
        raise
    try:
        await stop.wait()
    finally:
        await server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
