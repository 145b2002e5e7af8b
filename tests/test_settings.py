"""The operator's config file: what a valid one gives, and how every mistake is reported.

`parse_settings` gets an explicit, empty environment so the tests never depend on the shell
that runs them; `load_settings` gets one too.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from appservice import config_check
from appservice.settings import ConfigError, Settings, load_settings, parse_settings


def minimal_config() -> dict[str, Any]:
    """The smallest config the bridge accepts, with the tokens given directly."""
    return {
        "homeserver": {"address": "https://matrix.example.org", "domain": "example.org"},
        "appservice": {
            "address": "http://127.0.0.1:29340",
            "as_token": "as-token-from-config",
            "hs_token": "hs-token-from-config",
        },
        "public_url": "https://visio.example.org",
        "livekit": {
            "url": "wss://livekit.example.org",
            "api_key": "APIkey",
            "api_secret": "secret-from-config",
        },
    }


def parse(raw: dict[str, Any], base_dir: Path, env: dict[str, str] | None = None) -> Settings:
    return parse_settings(raw, base_dir, env or {})


def problems(raw: dict[str, Any], base_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, base_dir, env)
    return caught.value.problems


def paths(found: list[str]) -> list[str]:
    """The key path each problem is reported under."""
    return [problem.split(":", 1)[0] for problem in found]


def without_tokens(raw: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    del raw["appservice"]["as_token"], raw["appservice"]["hs_token"]
    return raw


def write_registration(path: Path, as_token: Any, hs_token: Any) -> None:
    path.write_text(yaml.safe_dump({"id": "visio", "as_token": as_token, "hs_token": hs_token}))


def test_minimal_config_parses(tmp_path: Path) -> None:
    settings = parse(minimal_config(), tmp_path)
    assert settings.bot_mxid == "@visio:example.org"
    assert settings.homeserver.address == "https://matrix.example.org"
    assert settings.appservice.as_token == "as-token-from-config"
    assert settings.appservice.hs_token == "hs-token-from-config"
    assert settings.livekit.api_secret == "secret-from-config"


def test_defaults(tmp_path: Path) -> None:
    settings = parse(minimal_config(), tmp_path)
    assert settings.meetings.default_language == "fr"
    assert settings.meetings.moderator_power_level == 50
    assert settings.appservice.port == 29340
    assert settings.permissions == {"example.org": "user"}


def test_default_sqlite_database_lives_next_to_the_config(tmp_path: Path) -> None:
    settings = parse(minimal_config(), tmp_path)
    assert settings.database_url == f"sqlite:{tmp_path / 'visio-bridge.db'}"


def test_relative_sqlite_path_is_relative_to_the_config(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["database"] = {"url": "sqlite:data/bridge.db"}
    assert parse(raw, tmp_path).database_url == f"sqlite:{tmp_path / 'data' / 'bridge.db'}"


def test_postgres_url_is_kept(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["database"] = {"url": "postgres://visio@db/visio"}
    assert parse(raw, tmp_path).database_url == "postgres://visio@db/visio"


@pytest.mark.parametrize(
    ("url", "api_url"),
    [
        ("wss://livekit.example.org", "https://livekit.example.org"),
        ("ws://127.0.0.1:7880", "http://127.0.0.1:7880"),
    ],
)
def test_livekit_api_url_is_derived_from_url(tmp_path: Path, url: str, api_url: str) -> None:
    raw = minimal_config()
    raw["livekit"]["url"] = url
    assert parse(raw, tmp_path).livekit.api_url == api_url


def test_explicit_livekit_api_url_wins(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["livekit"]["api_url"] = "https://livekit-api.internal/"
    assert parse(raw, tmp_path).livekit.api_url == "https://livekit-api.internal"


def test_all_problems_are_reported_at_once_with_key_paths(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["homeserver"]["address"]
    raw["livekit"]["url"] = "livekit.example.org"
    raw["appservice"]["port"] = 70000
    found = paths(problems(raw, tmp_path))
    assert {"homeserver.address", "livekit.url", "appservice.port"} <= set(found)


def test_bad_livekit_url_is_reported_once(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["livekit"]["url"] = "livekit.example.org"
    assert paths(problems(raw, tmp_path)) == ["livekit.url"]


def test_missing_required_key_says_it_is_required(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["homeserver"]["domain"]
    assert problems(raw, tmp_path) == ["homeserver.domain: is required"]


def test_list_where_a_string_is_expected(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["homeserver"]["domain"] = ["example.org"]
    found = problems(raw, tmp_path)
    assert paths(found) == ["homeserver.domain"]
    assert "must be a string" in found[0]


def test_bool_is_not_a_port(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["appservice"]["port"] = True
    found = problems(raw, tmp_path)
    assert paths(found) == ["appservice.port"]
    assert "whole number" in found[0]


def test_unknown_language_is_refused(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["meetings"] = {"default_language": "de"}
    assert paths(problems(raw, tmp_path)) == ["meetings.default_language"]


def test_invalid_bot_username_is_refused(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["appservice"]["bot_username"] = "Visio Bot"
    assert paths(problems(raw, tmp_path)) == ["appservice.bot_username"]


def test_frontend_url_without_token_is_refused(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["livekit"]["frontend_url"] = "https://meet.example.org/?url={livekit_url}"
    found = problems(raw, tmp_path)
    assert paths(found) == ["livekit.frontend_url"]
    assert "{token}" in found[0]


def test_frontend_url_with_unknown_field_is_refused(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["livekit"]["frontend_url"] = "https://meet.example.org/?t={token}&who={user}"
    found = problems(raw, tmp_path)
    assert paths(found) == ["livekit.frontend_url"]
    assert "user" in found[0]


def test_frontend_url_with_known_fields_is_kept(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["livekit"]["frontend_url"] = "https://meet.example.org/{room}?t={token}&u={livekit_url}"
    assert parse(raw, tmp_path).livekit.frontend_url == raw["livekit"]["frontend_url"]


def test_missing_public_url_is_reported(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["public_url"]
    assert paths(problems(raw, tmp_path)) == ["public_url"]


def test_non_http_public_url_is_reported(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["public_url"] = "ftp://visio.example.org"
    assert paths(problems(raw, tmp_path)) == ["public_url"]


def test_environment_variable_overrides_the_secret(tmp_path: Path) -> None:
    env = {"VISIO_BRIDGE_LIVEKIT_API_SECRET": "secret-from-env"}
    assert parse(minimal_config(), tmp_path, env).livekit.api_secret == "secret-from-env"


def test_environment_variable_stands_in_for_a_missing_secret(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["livekit"]["api_secret"]
    env = {"VISIO_BRIDGE_LIVEKIT_API_SECRET": "secret-from-env"}
    assert parse(raw, tmp_path, env).livekit.api_secret == "secret-from-env"


def test_missing_secret_names_the_environment_variable(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["livekit"]["api_secret"]
    found = problems(raw, tmp_path)
    assert paths(found) == ["livekit.api_secret"]
    assert "VISIO_BRIDGE_LIVEKIT_API_SECRET" in found[0]


def test_secret_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "livekit").write_text("secret-from-file\n")
    raw = minimal_config()
    del raw["livekit"]["api_secret"]
    raw["livekit"]["api_secret_file"] = "secrets/livekit"
    assert parse(raw, tmp_path).livekit.api_secret == "secret-from-file"


def test_missing_secret_file_is_reported(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["livekit"]["api_secret"]
    raw["livekit"]["api_secret_file"] = "secrets/livekit"
    found = problems(raw, tmp_path)
    assert paths(found) == ["livekit.api_secret_file"]
    assert "secrets/livekit" in found[0]


def test_tokens_are_read_from_the_registration(tmp_path: Path) -> None:
    write_registration(tmp_path / "registration.yaml", "as-from-reg", "hs-from-reg")
    settings = parse(without_tokens(minimal_config()), tmp_path)
    assert (settings.appservice.as_token, settings.appservice.hs_token) == (
        "as-from-reg",
        "hs-from-reg",
    )


def test_registration_path_is_configurable(tmp_path: Path) -> None:
    (tmp_path / "synapse").mkdir()
    write_registration(tmp_path / "synapse" / "visio.yaml", "as-from-reg", "hs-from-reg")
    raw = without_tokens(minimal_config())
    raw["appservice"]["registration"] = "synapse/visio.yaml"
    assert parse(raw, tmp_path).appservice.as_token == "as-from-reg"


def test_missing_registration_is_reported(tmp_path: Path) -> None:
    found = problems(without_tokens(minimal_config()), tmp_path)
    assert paths(found) == ["appservice.registration"]
    assert "generate-registration" in found[0]


def test_placeholder_tokens_in_the_registration_are_reported(tmp_path: Path) -> None:
    write_registration(tmp_path / "registration.yaml", "CHANGE_ME", "CHANGE_ME_TOO")
    found = problems(without_tokens(minimal_config()), tmp_path)
    assert paths(found) == ["appservice.registration", "appservice.registration"]
    assert "as_token" in found[0]
    assert "hs_token" in found[1]


def test_registration_without_tokens_is_reported(tmp_path: Path) -> None:
    (tmp_path / "registration.yaml").write_text(yaml.safe_dump({"id": "visio"}))
    found = problems(without_tokens(minimal_config()), tmp_path)
    assert paths(found) == ["appservice.registration", "appservice.registration"]


def test_registration_with_empty_token_is_reported(tmp_path: Path) -> None:
    write_registration(tmp_path / "registration.yaml", None, "hs-from-reg")
    assert paths(problems(without_tokens(minimal_config()), tmp_path)) == [
        "appservice.registration"
    ]


def test_load_settings_reads_a_yaml_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(minimal_config()))
    settings = load_settings(config, env={})
    assert settings.source == config
    assert settings.database_url == f"sqlite:{tmp_path / 'visio-bridge.db'}"


def test_load_settings_refuses_invalid_yaml(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("homeserver: [unclosed\n  address: :\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    assert "not valid YAML" in str(caught.value)
    assert str(config) in str(caught.value)


def test_load_settings_refuses_a_yaml_list(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("- homeserver\n- appservice\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    assert "mapping" in str(caught.value)


def test_load_settings_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml", env={})
    assert "cannot read" in str(caught.value)


def with_permissions(tmp_path: Path, permissions: dict[str, str]) -> Settings:
    raw = minimal_config()
    raw["permissions"] = permissions
    return parse(raw, tmp_path)


def test_may_invite_by_domain(tmp_path: Path) -> None:
    settings = with_permissions(tmp_path, {"example.org": "user"})
    assert settings.may_invite("@alice:example.org")
    assert not settings.may_invite("@mallory:elsewhere.org")


def test_may_invite_user_rule_beats_domain_rule(tmp_path: Path) -> None:
    settings = with_permissions(tmp_path, {"example.org": "user", "@mallory:example.org": "none"})
    assert settings.may_invite("@alice:example.org")
    assert not settings.may_invite("@mallory:example.org")


def test_may_invite_domain_rule_beats_star(tmp_path: Path) -> None:
    settings = with_permissions(tmp_path, {"*": "user", "evil.org": "none"})
    assert settings.may_invite("@bob:anywhere.net")
    assert not settings.may_invite("@eve:evil.org")


def test_may_invite_user_allowed_in_a_refused_domain(tmp_path: Path) -> None:
    settings = with_permissions(tmp_path, {"*": "none", "@carol:partner.org": "user"})
    assert settings.may_invite("@carol:partner.org")
    assert not settings.may_invite("@dave:partner.org")


def test_default_permissions_admit_only_the_homeserver_domain(tmp_path: Path) -> None:
    settings = parse(minimal_config(), tmp_path)
    assert settings.may_invite("@alice:example.org")
    assert not settings.may_invite("@bob:other.org")


def test_unknown_permission_level_is_reported(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["permissions"] = {"example.org": "admin"}
    assert paths(problems(raw, tmp_path)) == ["permissions.example.org"]


# --- calls: which processes hold the bridge's participant in each call -------------------------


def test_calls_default_to_the_bridge_itself_with_a_15_second_lease(tmp_path: Path) -> None:
    calls = parse(minimal_config(), tmp_path).calls
    assert (calls.in_process, calls.lease_seconds, calls.capacity) == (True, 15, 0)


def test_calls_may_be_left_to_call_workers_with_postgres(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["database"] = {"url": "postgres://visio@db/visio"}
    raw["calls"] = {"in_process": False, "lease_seconds": 30, "capacity": 40}
    calls = parse(raw, tmp_path).calls
    assert (calls.in_process, calls.lease_seconds, calls.capacity) == (False, 30, 40)


def test_calls_cannot_leave_the_bridge_with_sqlite(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["calls"] = {"in_process": False}
    found = problems(raw, tmp_path)
    assert paths(found) == ["calls.in_process"]
    assert "PostgreSQL" in found[0]


@pytest.mark.parametrize(
    ("key", "value"), [("lease_seconds", 4), ("lease_seconds", 301), ("capacity", -1)]
)
def test_calls_out_of_bounds_are_refused(tmp_path: Path, key: str, value: int) -> None:
    raw = minimal_config()
    raw["calls"] = {key: value}
    assert paths(problems(raw, tmp_path)) == [f"calls.{key}"]


def test_check_config_warns_when_no_process_may_be_in_calls_or_takeover_is_slow(
    tmp_path: Path,
) -> None:
    raw = minimal_config()
    raw["database"] = {"url": "postgres://visio@db/visio"}
    assert [w for w in config_check.warnings(parse(raw, tmp_path)) if w.startswith("calls.")] == []
    raw["calls"] = {"in_process": False, "lease_seconds": 120}
    found = [w for w in config_check.warnings(parse(raw, tmp_path)) if w.startswith("calls.")]
    assert paths(found) == ["calls.in_process", "calls.lease_seconds"]
    assert "call-worker" in found[0]
    assert "160 s" in found[1]
