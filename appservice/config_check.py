"""What `check-config` says beyond "the file parses": a config still holding the example's
placeholders, secrets too short to sign tokens safely, a front end outside the operator's domain,
keys no setting reads (typos), a registration file that disagrees with the config, and call
settings that leave calls without the bridge for long.

Problems make `check-config` fail; warnings are printed and leave the exit status alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from appservice.settings import Settings

# LiveKit signs every token with this secret (HS256): the server itself wants 32 characters.
MIN_SECRET_LENGTH = 32
_EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net")


def problems(settings: Settings) -> list[str]:
    found = []
    livekit = settings.livekit
    for key, value in (
        ("livekit.api_key", livekit.api_key),
        ("livekit.api_secret", livekit.api_secret),
    ):
        if "CHANGE_ME" in value:
            found.append(f"{key}: still the example's placeholder")
    if len(livekit.api_secret) < MIN_SECRET_LENGTH:
        found.append(f"livekit.api_secret: shorter than {MIN_SECRET_LENGTH} characters")
    for key, host in (
        ("homeserver.domain", settings.homeserver.domain),
        ("public_url", _host(settings.public_url)),
        ("livekit.url", _host(livekit.url)),
    ):
        if _is_example(host):
            found.append(f"{key}: still the example's {host}")
    found.extend(settings.unknown_keys)
    registration = _registration(settings)
    if registration is not None:
        found.extend(registration_problems(settings, registration))
    return found


def registration_problems(settings: Settings, registration: Mapping[str, Any]) -> list[str]:
    """Where the registration the homeserver loads disagrees with the config the bridge runs."""
    where = f"registration ({Path(settings.appservice.registration).name})"
    appservice = settings.appservice
    found = []
    for key, theirs, ours, ours_key in (
        ("id", registration.get("id"), appservice.id, "appservice.id"),
        ("url", registration.get("url"), appservice.address, "appservice.address"),
        (
            "sender_localpart",
            registration.get("sender_localpart"),
            appservice.bot_username,
            "appservice.bot_username",
        ),
    ):
        if str(theirs or "").rstrip("/") != ours.rstrip("/"):
            found.append(f"{where}: {key} is {theirs!r} but {ours_key} is {ours!r}")
    for key in ("as_token", "hs_token"):
        theirs = registration.get(key)
        if theirs and str(theirs) != getattr(appservice, key):
            found.append(f"{where}: {key} differs from appservice.{key} (config or environment)")
    regexes = _user_regexes(registration)
    domain = settings.homeserver.domain
    for user_id, what in (
        (settings.bot_mxid, "the bot"),
        (f"@{appservice.user_prefix}someone:{domain}", f"users @{appservice.user_prefix}…"),
    ):
        if not any(regex.fullmatch(user_id) for regex in regexes):
            found.append(
                f"{where}: no exclusive user namespace covers {what} ({user_id}); "
                "regenerate it with generate-registration --force"
            )
    return found


def _registration(settings: Settings) -> Mapping[str, Any] | None:
    try:
        raw = yaml.safe_load(Path(settings.appservice.registration).read_text())
    except (OSError, yaml.YAMLError):
        return None  # tokens from the config or environment: the file may live elsewhere
    return raw if isinstance(raw, Mapping) else None


def _user_regexes(registration: Mapping[str, Any]) -> list[re.Pattern[str]]:
    namespaces = registration.get("namespaces")
    users = namespaces.get("users") if isinstance(namespaces, Mapping) else None
    regexes = []
    for namespace in users if isinstance(users, list) else ():
        if not isinstance(namespace, Mapping) or namespace.get("exclusive") is not True:
            continue
        try:
            regexes.append(re.compile(str(namespace.get("regex"))))
        except re.error:
            continue
    return regexes


def warnings(settings: Settings) -> list[str]:
    found = []
    frontend = _host(settings.livekit.frontend_url.split("{", 1)[0] or settings.public_url)
    ours = {_host(settings.public_url), settings.homeserver.domain}
    if frontend and not any(_same_site(frontend, host) for host in ours if host):
        found.append(
            f"livekit.frontend_url: each guest's token goes to {frontend}, outside your domain"
        )
    if settings.encryption.enabled and not settings.encryption.pickle_key:
        found.append("encryption.pickle_key: not set, the key every install shares is used")
    if _registration(settings) is None:
        found.append(
            f"appservice.registration: {settings.appservice.registration} not readable here; "
            "not compared with the config"
        )
    found.extend(_calls_warnings(settings))
    return found


# Past this, a dead call worker's calls stay without the bridge (no chat mirror, no recording)
# for more than a minute and a half.
_LONG_LEASE_SECONDS = 60


def _calls_warnings(settings: Settings) -> list[str]:
    calls = settings.calls
    found = []
    if not calls.in_process:
        found.append(
            "calls.in_process: false, so the bridge joins no call itself: "
            "run at least one `visio-bridge call-worker` with this config"
        )
    if calls.lease_seconds > _LONG_LEASE_SECONDS:
        takeover = calls.lease_seconds + calls.lease_seconds // 3
        found.append(
            f"calls.lease_seconds: {calls.lease_seconds}, so the calls of a process that stops "
            f"go up to {takeover} s without chat mirror or recording"
        )
    return found


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _is_example(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS)


def _same_site(host: str, ours: str) -> bool:
    if ours.replace(".", "").isdigit() or ":" in ours:
        return host == ours  # an IP address: only itself
    # visio.ministere.gouv.fr and meet.ministere.gouv.fr are one operator; *.gouv.fr is not.
    site = ".".join(ours.split(".")[-3:]) if ours.count(".") >= 2 else ours
    return host == site or host.endswith("." + site)
