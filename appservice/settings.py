"""Loading and validating the operator's config file into typed, immutable settings.

Every problem is reported with its key path (`livekit.api_secret: …`) and all problems are
collected before failing, so `visio-bridge check-config` shows the whole list at once.
Secrets can come from the file, from `<key>_file` (a path whose content is the secret), or
from an environment variable `VISIO_BRIDGE_<SECTION>_<KEY>`, which wins.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bridge.room_settings.service import OperatorPolicy

LANGUAGES = ("fr", "en")
PERMISSION_LEVELS = ("none", "user")
_LOCALPART = re.compile(r"^[a-z0-9._=/+-]+$")


class ConfigError(Exception):
    """The config file is unusable; `problems` lists each one with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class HomeserverSettings:
    address: str
    domain: str
    # Federated homeservers whose users may join with OpenID; empty for any public one.
    openid_allowed_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppserviceSettings:
    id: str
    address: str
    hostname: str
    port: int
    bot_username: str
    bot_displayname: str
    user_prefix: str
    as_token: str
    hs_token: str
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: tuple[str, ...] = ()
    lobby_polls_per_address: int = 20  # waiting pages long-polling at once, per client address
    lobby_polls: int = 500  # and in all
    # The registration file the tokens are read from (resolved); check-config compares it.
    registration: str = ""

    def bot_mxid(self, domain: str) -> str:
        return f"@{self.bot_username}:{domain}"


@dataclass(frozen=True)
class LiveKitSettings:
    url: str
    api_url: str
    api_key: str
    api_secret: str
    empty_timeout: int
    departure_timeout: int
    max_participants: int
    token_ttl: int
    frontend_url: str
    reconcile_interval: int
    rtc_url: str  # where the bridge's own participant connects (ws:// or wss://)


# The built-in call page: a relative fragment, never navigated to. It only carries a token in
# the JSON answers the page's own script reads (lobby admission, `/api/token`).
BUILTIN_FRONTEND_URL = "#livekit_url={livekit_url}&token={token}&room={room}"


@dataclass(frozen=True)
class CallPageSettings:
    """The built-in call page's State look: the service's name and the footer's links."""

    service_name: str = "Visio"
    legal_notice_url: str = ""
    personal_data_url: str = ""
    accessibility_url: str = ""


@dataclass(frozen=True)
class MeetingSettings:
    default_language: str
    moderator_power_level: int
    timezone: str
    max_participants: int  # operator cap; 0 for none
    transcription_allowed: bool
    settings_power_level: int  # to change a room's Visio settings
    guests_power_level: int  # to open a room to guests (access: guests or lobby)
    lobby_timeout: int  # seconds a guest may wait in the lobby


RECORDERS = ("participant", "egress")


@dataclass(frozen=True)
class TranscriptionSettings:
    # "participant": the bridge's participant records each person's own track (default);
    # "egress": LiveKit's egress records the mixed room audio, and pyannote tells voices apart.
    recorder: str
    recordings_dir: str  # where recordings are written; shared with the workers
    keep_recordings: bool  # privacy: delete the audio once its transcript is published
    in_process: bool  # run the transcription worker inside the bridge (embedded set-ups)
    threads: int
    pipeline_dir: str  # an operator's pyannote pipeline folder ("" for the bundled one)
    model_dir: str  # a faster-whisper CTranslate2 folder ("" for the bundled ones)


@dataclass(frozen=True)
class RetentionSettings:
    """How long what the bridge stores is kept (bridge/retention.py; SECURITY.md)."""

    processed_events_hours: int = 1  # a handled Matrix event's content (and posted call chat)
    event_ids_days: int = 7  # a handled event's id, to recognise a homeserver's retry
    meetings_days: int = 30  # an ended meeting, with who took part, chat links, lobby requests
    recordings_hours: int = 24  # a recording file no meeting needs any more
    purge_interval: int = 600  # seconds between two purges


@dataclass(frozen=True)
class CallSettings:
    """Which processes hold the bridge's participant in each live call (bridge/calls/holder.py)."""

    # The bridge holds calls itself; false leaves them to `visio-bridge call-worker`s (which
    # need PostgreSQL: processes on several machines cannot share a SQLite file).
    in_process: bool = True
    # Renewed every third of it (`CallHolder.renew_interval_ms`), so a holder that dies is
    # replaced within lease_seconds and a third.
    lease_seconds: int = 15
    capacity: int = 0  # the most calls one process holds at once; 0 for no limit


@dataclass(frozen=True)
class EncryptionSettings:
    enabled: bool
    msc4190: bool  # create the bot's device the MSC4190 way (homeserver behind MAS)
    # Encrypts the bot's Olm/Megolm keys in the database; "" keeps the key of versions before
    # 0.2, which every install shares (so a copy of the database is a copy of the keys).
    pickle_key: str = ""


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus /metrics, on a listener of its own (never behind the public reverse proxy)."""

    enabled: bool = False
    hostname: str = "127.0.0.1"
    port: int = 29341


@dataclass(frozen=True)
class Settings:
    homeserver: HomeserverSettings
    appservice: AppserviceSettings
    public_url: str
    database_url: str
    database_args: Mapping[str, Any]
    livekit: LiveKitSettings
    meetings: MeetingSettings
    permissions: Mapping[str, str]
    log_level: str
    encryption: EncryptionSettings
    transcription: TranscriptionSettings
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    source: Path | None = field(default=None, compare=False)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    call_page: CallPageSettings = field(default_factory=CallPageSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    log_format: str = "text"  # text or json (one JSON object per line)
    # Keys of the file that no setting reads (typos), each with the closest known key.
    unknown_keys: tuple[str, ...] = ()

    @property
    def bot_mxid(self) -> str:
        return self.appservice.bot_mxid(self.homeserver.domain)

    def may_invite(self, user_id: str) -> bool:
        """Whether the operator lets `user_id` invite the bot (user id, then domain, then *)."""
        domain = user_id.split(":", 1)[1] if ":" in user_id else ""
        for key in (user_id, domain, "*"):
            if key in self.permissions:
                return self.permissions[key] != "none"
        return False


class _Reader:
    """Walks the raw YAML, recording problems with key paths instead of raising at the first."""

    def __init__(self, raw: Mapping[str, Any], base_dir: Path, env: Mapping[str, str]) -> None:
        self.raw = raw
        self.base_dir = base_dir
        self.env = env
        self.problems: list[str] = []
        self.known: set[str] = set()  # every key path a setting reads

    def node(self, path: str) -> Any:
        self.known.add(path)
        value: Any = self.raw
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def text(self, path: str, default: str | None = None, *, secret: bool = False) -> str:
        env_name = "VISIO_BRIDGE_" + path.upper().replace(".", "_")
        if secret:
            self.known.update((path, path + "_file"))
        if secret and env_name in self.env:
            return self.env[env_name]
        value = self.node(path)
        if secret and value is None:
            file_path = self.node(path + "_file")
            if isinstance(file_path, str):
                try:
                    return (self.base_dir / file_path).read_text().strip()
                except OSError as err:
                    self.problem(path + "_file", f"cannot read {file_path!r}: {err.strerror}")
                    return ""
        if value is None:
            if default is None:
                self.problem(path, "is required" + (f" (or set {env_name})" if secret else ""))
                return ""
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.problem(path, f"must be a string, not {type(value).__name__}")
            return default or ""
        return str(value)

    def integer(self, path: str, default: int, low: int, high: int) -> int:
        value = self.node(path)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(path, f"must be a whole number, not {value!r}")
            return default
        if not low <= value <= high:
            self.problem(path, f"must be between {low} and {high}, not {value}")
            return default
        return value

    def boolean(self, path: str, default: bool) -> bool:
        value = self.node(path)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(path, f"must be true or false, not {value!r}")
            return default
        return value

    def url(self, path: str, schemes: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(path, default).rstrip("/")
        parsed = urlparse(value)
        if value and (parsed.scheme not in schemes or not parsed.netloc):
            self.problem(path, f"must be a {' or '.join(schemes)} URL, not {value!r}")
        return value

    def choice(self, path: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(path, default)
        if value not in choices:
            self.problem(path, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return value


def load_settings(
    path: Path, env: Mapping[str, str] | None = None, *, need_tokens: bool = True
) -> Settings:
    """Read and validate the config file at `path`; raise `ConfigError` listing all problems."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError([f"{path}: cannot read the config file: {err.strerror}"]) from err
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {err}"]) from err
    if not isinstance(raw, Mapping):
        raise ConfigError([f"{path}: the config file must be a YAML mapping of sections"])
    settings = parse_settings(
        raw, path.parent, os.environ if env is None else env, need_tokens=need_tokens
    )
    return Settings(**{**settings.__dict__, "source": path})


def parse_settings(
    raw: Mapping[str, Any],
    base_dir: Path,
    env: Mapping[str, str],
    *,
    need_tokens: bool = True,
) -> Settings:
    """Validate a parsed config; `need_tokens=False` for generating the registration itself."""
    r = _Reader(raw, base_dir, env)
    try:
        settings = _parse(r, base_dir, need_tokens=need_tokens)
    except ConfigError as err:
        # A typo is often why a required key is missing: say so next to it.
        raise ConfigError(err.problems + list(_unknown_keys(r))) from None
    return replace(settings, unknown_keys=_unknown_keys(r))


def config_keys() -> frozenset[str]:
    """Every key path the config file may hold (sections included when they are read whole)."""
    r = _Reader({}, Path("."), {})
    try:
        _parse(r, Path("."), need_tokens=True)
    except ConfigError:
        pass
    return frozenset(r.known)


def _unknown_keys(r: _Reader) -> tuple[str, ...]:
    """Keys of the file no setting reads, e.g. `livekit.api_secrett (did you mean api_secret?)`."""
    sections = {path.rsplit(".", 1)[0] for path in r.known if "." in path}
    candidates = sorted(r.known | sections)
    found: list[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in r.known and not any(k.startswith(path + ".") for k in r.known):
                continue  # a value, or a mapping read whole (permissions, database.args)
            if any(k.startswith(path + ".") for k in r.known):
                if isinstance(value, Mapping):
                    walk(value, path + ".")
                continue
            close = difflib.get_close_matches(path, candidates, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(f"{path}: unknown key, ignored{hint}")

    walk(r.raw, "")
    return tuple(found)


def _parse(r: _Reader, base_dir: Path, *, need_tokens: bool) -> Settings:

    homeserver = HomeserverSettings(
        address=r.url("homeserver.address", ("http", "https")),
        domain=r.text("homeserver.domain"),
        openid_allowed_servers=_server_names(r, "homeserver.openid_allowed_servers"),
    )
    if not need_tokens:  # read later, when the bridge runs
        r.known.update(
            f"appservice.{key}"
            for key in ("registration", "as_token", "as_token_file", "hs_token", "hs_token_file")
        )
    tokens = _registration_tokens(r) if need_tokens else ("", "")
    bot_username = r.text("appservice.bot_username", "visio")
    if bot_username and not _LOCALPART.match(bot_username):
        r.problem("appservice.bot_username", f"is not a valid Matrix localpart: {bot_username!r}")
    appservice = AppserviceSettings(
        id=r.text("appservice.id", "visio"),
        address=r.url("appservice.address", ("http", "https")),
        hostname=r.text("appservice.hostname", "127.0.0.1"),
        port=r.integer("appservice.port", 29340, 1, 65535),
        bot_username=bot_username,
        bot_displayname=r.text("appservice.bot_displayname", "Visio"),
        user_prefix=r.text("appservice.user_prefix", "visio_"),
        as_token=tokens[0],
        hs_token=tokens[1],
        trusted_proxies=_networks(r, "appservice.trusted_proxies"),
        lobby_polls_per_address=r.integer("appservice.lobby_polls_per_address", 20, 1, 10_000),
        lobby_polls=r.integer("appservice.lobby_polls", 500, 1, 100_000),
        registration=str(base_dir / r.text("appservice.registration", "registration.yaml")),
    )
    problems_before = len(r.problems)
    livekit_url = r.url("livekit.url", ("ws", "wss", "http", "https"))
    # The API URL defaults to the browser URL; derive it only from a valid one, so that a bad
    # livekit.url is reported once, under its own key.
    default_api_url = (
        livekit_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        if len(r.problems) == problems_before
        else "http://invalid.invalid"
    )
    # The default is the bridge's own call page (/m/{slug}); an operator may still send guests
    # to a front end of their own, which then receives each token in its URL.
    frontend_url = r.text("livekit.frontend_url", BUILTIN_FRONTEND_URL)
    if "{token}" not in frontend_url:
        r.problem("livekit.frontend_url", "must contain {token} (and usually {livekit_url})")
    else:
        try:
            frontend_url.format(livekit_url="", token="", room="")
        except (KeyError, IndexError, ValueError) as err:
            r.problem("livekit.frontend_url", f"only {{livekit_url}}, {{token}}, {{room}}: {err}")
    api_secret = r.text("livekit.api_secret", secret=True)
    livekit = LiveKitSettings(
        url=livekit_url,
        api_url=r.url("livekit.api_url", ("http", "https"), default_api_url or None),
        api_key=r.text("livekit.api_key", secret=True),
        api_secret=api_secret,
        empty_timeout=r.integer("livekit.room.empty_timeout", 300, 10, 86400),
        departure_timeout=r.integer("livekit.room.departure_timeout", 20, 0, 3600),
        max_participants=r.integer("livekit.room.max_participants", 0, 0, 100000),
        token_ttl=r.integer("livekit.token_ttl", 600, 30, 86400),
        frontend_url=frontend_url,
        reconcile_interval=r.integer("livekit.reconcile_interval", 60, 5, 3600),
        rtc_url=r.url(
            "livekit.rtc_url",
            ("ws", "wss"),
            _websocket_url(r.node("livekit.api_url") or default_api_url) or None,
        ),
    )
    meetings = MeetingSettings(
        default_language=r.choice("meetings.default_language", LANGUAGES, "fr"),
        moderator_power_level=r.integer("meetings.moderator_power_level", 50, 0, 1000),
        timezone=_timezone(r, "meetings.timezone", "Europe/Paris"),
        max_participants=r.integer("meetings.max_participants", 0, 0, 100_000),
        transcription_allowed=r.boolean("meetings.transcription_allowed", False),
        settings_power_level=r.integer("meetings.settings_power_level", 50, 0, 100),
        guests_power_level=r.integer("meetings.guests_power_level", 100, 0, 100),
        lobby_timeout=r.integer("meetings.lobby_timeout", 300, 1, 3600),
    )
    database_args = r.node("database.args") or {}
    if not isinstance(database_args, Mapping):
        r.problem("database.args", "must be a mapping")
        database_args = {}
    database_url = r.text("database.url", "sqlite:visio-bridge.db")
    if not database_url.startswith(("sqlite:", "postgres://", "postgresql://")):
        r.problem("database.url", f"must start with sqlite: or postgres://, not {database_url!r}")
    permissions = _permissions(r)
    log_level = r.choice("logging.level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
    log_format = r.choice("logging.format", ("text", "json"), "text")
    call_page = CallPageSettings(
        service_name=r.text("call_page.service_name", "Visio"),
        legal_notice_url=r.text("call_page.legal_notice_url", ""),
        personal_data_url=r.text("call_page.personal_data_url", ""),
        accessibility_url=r.text("call_page.accessibility_url", ""),
    )
    metrics = MetricsSettings(
        enabled=r.boolean("metrics.enabled", False),
        hostname=r.text("metrics.hostname", "127.0.0.1"),
        port=r.integer("metrics.port", 29341, 1, 65535),
    )
    public_url = r.url("public_url", ("http", "https"))
    encryption = EncryptionSettings(
        enabled=r.boolean("encryption.enabled", False),
        msc4190=r.boolean("encryption.msc4190", False),
        pickle_key=r.text("encryption.pickle_key", ""),
    )
    transcription = TranscriptionSettings(
        recorder=r.choice("transcription.recorder", RECORDERS, "participant"),
        recordings_dir=r.text("transcription.recordings_dir", "/var/lib/visio-bridge/recordings"),
        keep_recordings=r.boolean("transcription.keep_recordings", False),
        in_process=r.boolean("transcription.in_process", database_url.startswith("sqlite:")),
        threads=r.integer("transcription.threads", 2, 1, 64),
        pipeline_dir=r.text("transcription.pipeline_dir", ""),
        model_dir=r.text("transcription.model_dir", ""),
    )
    defaults = RetentionSettings()
    retention = RetentionSettings(
        processed_events_hours=r.integer(
            "retention.processed_events_hours", defaults.processed_events_hours, 0, 24 * 30
        ),
        event_ids_days=r.integer("retention.event_ids_days", defaults.event_ids_days, 1, 365),
        meetings_days=r.integer("retention.meetings_days", defaults.meetings_days, 1, 3650),
        recordings_hours=r.integer(
            "retention.recordings_hours", defaults.recordings_hours, 1, 24 * 365
        ),
        purge_interval=r.integer("retention.purge_interval", defaults.purge_interval, 60, 86400),
    )
    calls = _calls(r, sqlite=database_url.startswith("sqlite:"))
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        homeserver=homeserver,
        appservice=appservice,
        public_url=public_url,
        database_url=_resolve_sqlite_path(database_url, base_dir),
        database_args=dict(database_args),
        livekit=livekit,
        meetings=meetings,
        permissions=permissions,
        log_level=log_level,
        encryption=encryption,
        transcription=transcription,
        retention=retention,
        metrics=metrics,
        call_page=call_page,
        calls=calls,
        log_format=log_format,
    )


def _calls(r: _Reader, *, sqlite: bool) -> CallSettings:
    defaults = CallSettings()
    in_process = r.boolean("calls.in_process", defaults.in_process)
    if sqlite and not in_process:
        r.problem(
            "calls.in_process",
            "must be true with a SQLite database: call workers on other machines need "
            "PostgreSQL (database.url: postgres://…)",
        )
    return CallSettings(
        in_process=in_process,
        lease_seconds=r.integer("calls.lease_seconds", defaults.lease_seconds, 5, 300),
        capacity=r.integer("calls.capacity", defaults.capacity, 0, 100_000),
    )


def _registration_tokens(r: _Reader) -> tuple[str, str]:
    """as_token and hs_token: from the config or env if given, else from the registration file.

    Reading them from the registration keeps one source of truth: the file the homeserver
    loads is the file the bridge trusts, and nothing ever rewrites the config.
    """
    as_token = r.text("appservice.as_token", "", secret=True)
    hs_token = r.text("appservice.hs_token", "", secret=True)
    if as_token and hs_token:
        return as_token, hs_token
    reg_path = r.base_dir / r.text("appservice.registration", "registration.yaml")
    try:
        registration = yaml.safe_load(reg_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        r.problem(
            "appservice.registration",
            f"cannot read tokens from {reg_path} ({err}); "
            "run `visio-bridge generate-registration` first",
        )
        return "", ""
    if not isinstance(registration, Mapping):
        r.problem("appservice.registration", f"{reg_path} is not a registration file")
        return "", ""
    as_token = as_token or str(registration.get("as_token") or "")
    hs_token = hs_token or str(registration.get("hs_token") or "")
    for name, value in (("as_token", as_token), ("hs_token", hs_token)):
        if not value or value.startswith("CHANGE_ME"):
            r.problem("appservice.registration", f"{reg_path} has no real {name}")
    return as_token, hs_token


def _permissions(r: _Reader) -> dict[str, str]:
    raw = r.node("permissions")
    if raw is None:
        domain = r.node("homeserver.domain")
        return {str(domain): "user"} if domain else {}
    if not isinstance(raw, Mapping):
        r.problem("permissions", "must map '*', a domain or a user id to none or user")
        return {}
    result: dict[str, str] = {}
    for key, level in raw.items():
        if level not in PERMISSION_LEVELS:
            r.problem(f"permissions.{key}", f"must be one of {', '.join(PERMISSION_LEVELS)}")
            continue
        result[str(key)] = str(level)
    return result


def _server_names(r: _Reader, path: str) -> tuple[str, ...]:
    raw = r.node(path)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(name, str) and name for name in raw):
        r.problem(path, "must be a list of server names, such as [example.org]")
        return ()
    return tuple(name.lower() for name in raw)


def _networks(r: _Reader, path: str) -> tuple[str, ...]:
    raw = r.node(path)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(entry, str) for entry in raw):
        r.problem(path, "must be a list of addresses or networks, such as [127.0.0.1, 10.0.0.0/8]")
        return ()
    networks: list[str] = []
    for entry in raw:
        try:
            networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            r.problem(path, f"not an address or network: {entry!r}")
    return tuple(networks)


def _websocket_url(url: object) -> str:
    text = str(url or "")
    return text.replace("http://", "ws://", 1).replace("https://", "wss://", 1)


def _timezone(r: _Reader, path: str, default: str) -> str:
    name = r.text(path, default)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem(path, f"unknown time zone {name!r} (use a name such as Europe/Paris)")
        return default
    return name


def _resolve_sqlite_path(url: str, base_dir: Path) -> str:
    # A relative SQLite path is relative to the config file, not to wherever the bridge starts.
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:").removeprefix("///"))
        if not path.is_absolute():
            path = base_dir / path
        return f"sqlite:{path}"
    return url


def room_policy(settings: Settings) -> OperatorPolicy:
    meetings = settings.meetings
    return OperatorPolicy(
        default_language=meetings.default_language,
        moderator_power_level=meetings.moderator_power_level,
        max_participants=meetings.max_participants,
        transcription_allowed=meetings.transcription_allowed,
        settings_power_level=meetings.settings_power_level,
        guests_power_level=meetings.guests_power_level,
    )
