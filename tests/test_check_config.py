"""`check-config` beyond parsing: keys no setting reads (typos, with the closest known key), a
registration that disagrees with the config, and an example config that documents every key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_config import CONFIG, clean_environment  # noqa: F401 (autouse)

from appservice.cli import main
from appservice.settings import ConfigError, config_keys, parse_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "example-config.yaml"


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _with_registration(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = _write(tmp_path, raw)
    assert (
        main(["generate-registration", "-c", str(path), "-o", str(tmp_path / "registration.yaml")])
        == 0
    )
    return path


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check-config", "-c", str(path)])
    return code, capsys.readouterr().err


def _changed(**sections: dict[str, Any]) -> dict[str, Any]:
    raw = yaml.safe_load(yaml.safe_dump(CONFIG))
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


def test_a_typo_is_reported_with_the_key_it_was_meant_to_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _changed(livekit={"token_ttll": 60}, meetings={"lobby_timout": 30}, metrix={})
    code, err = _check(_with_registration(tmp_path, raw), capsys)
    assert code == 1
    assert "livekit.token_ttll: unknown key, ignored (did you mean livekit.token_ttl?)" in err
    assert "(did you mean meetings.lobby_timeout?)" in err
    assert "metrix: unknown key, ignored (did you mean metrics?)" in err


def test_a_typo_in_a_required_key_is_named_next_to_the_missing_key(tmp_path: Path) -> None:
    raw = _changed(livekit={"api_secrett": "x" * 40}, appservice={"as_token": "a", "hs_token": "h"})
    del raw["livekit"]["api_secret"]
    with pytest.raises(ConfigError) as raised:
        parse_settings(raw, tmp_path, {})
    assert "livekit.api_secret: is required (or set VISIO_BRIDGE_LIVEKIT_API_SECRET)" in (
        raised.value.problems
    )
    assert (
        "livekit.api_secrett: unknown key, ignored (did you mean livekit.api_secret?)"
        in raised.value.problems
    )


def test_free_form_sections_and_secret_files_are_not_unknown(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s" * 40)
    raw = _changed(
        livekit={"api_secret_file": "secret"},
        appservice={"as_token": "a", "hs_token": "h"},
        database={"args": {"min_size": 1, "max_size": 10}},
        permissions={"@someone:other.test": "user", "*": "none"},
    )
    del raw["livekit"]["api_secret"]
    assert parse_settings(raw, tmp_path, {}).unknown_keys == ()


def test_the_valid_config_with_its_registration_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _check(_with_registration(tmp_path, CONFIG), capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"id": "other"}, "id is 'other' but appservice.id is 'visio'"),
        ({"url": "http://elsewhere:1"}, "url is 'http://elsewhere:1' but appservice.address"),
        ({"sender_localpart": "bot"}, "sender_localpart is 'bot' but appservice.bot_username"),
        (
            {"namespaces": {"users": [{"exclusive": True, "regex": "@visio:ministere\\.test"}]}},
            "no exclusive user namespace covers users @visio_",
        ),
        (
            {"namespaces": {"users": [{"exclusive": False, "regex": "@.*:ministere\\.test"}]}},
            "no exclusive user namespace covers the bot",
        ),
    ],
)
def test_a_registration_that_disagrees_with_the_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any], said: str
) -> None:
    path = _with_registration(tmp_path, CONFIG)
    registration_file = tmp_path / "registration.yaml"
    registration = yaml.safe_load(registration_file.read_text())
    registration_file.write_text(yaml.safe_dump({**registration, **edit}))
    code, err = _check(path, capsys)
    assert code == 1
    assert said in err


def test_a_prefix_changed_after_generating_the_registration_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_registration(tmp_path, CONFIG)
    path = _write(tmp_path, _changed(appservice={"user_prefix": "lk_"}))
    code, err = _check(path, capsys)
    assert code == 1
    assert "users @lk_…" in err


def test_tokens_from_the_environment_must_match_the_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _with_registration(tmp_path, CONFIG)
    monkeypatch.setenv("VISIO_BRIDGE_APPSERVICE_HS_TOKEN", "not-the-registrations")
    code, err = _check(path, capsys)
    assert code == 1
    assert "hs_token differs from appservice.hs_token" in err
    assert "not-the-registrations" not in err  # never print a token


def test_without_a_readable_registration_it_only_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _changed(appservice={"as_token": "a" * 40, "hs_token": "h" * 40})
    code, err = _check(_write(tmp_path, raw), capsys)
    assert code == 0, err
    assert "not compared with the config" in err


# --- the example config documents every key ---------------------------------------------------

_COMMENTED_KEY = re.compile(r"^(\s*)# ([a-z_]+:(?: .*)?)$")


def _example_keys() -> set[str]:
    """The example's keys, including those shown commented out (`# api_url: …`)."""
    text = "\n".join(_COMMENTED_KEY.sub(r"\1\2", line) for line in EXAMPLE.read_text().splitlines())
    paths: set[str] = set()

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = prefix + str(key)
            paths.add(path)
            if isinstance(value, dict) and path not in ("permissions", "database.args"):
                walk(value, path + ".")

    walk(yaml.safe_load(text), "")
    return paths


def test_every_key_the_bridge_reads_is_in_the_example_config() -> None:
    documented = _example_keys()
    read = {key for key in config_keys() if not key.endswith("_file")}
    assert sorted(read - documented) == []


def test_every_key_of_the_example_config_is_read() -> None:
    known = config_keys()
    sections = {key.rsplit(".", 1)[0] for key in known if "." in key}
    sections |= {key.split(".", 1)[0] for key in known}
    assert sorted(_example_keys() - known - sections) == []


def test_the_example_parses_without_unknown_keys(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["appservice"].update(as_token="a", hs_token="h")
    assert parse_settings(raw, tmp_path, {}).unknown_keys == ()
