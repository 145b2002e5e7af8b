"""The operator's commands: `generate-registration`, `check-config`, and the demo's set-up."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from live_calls import require_livekit_server
from livekit import api
from operator_config import CONFIG, clean_environment  # noqa: F401 (autouse)

from appservice.cli import main
from appservice.demo import LIVEKIT_API_KEY, demo_livekit, prepare_demo


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def generate(config: Path, output: Path, *extra: str) -> int:
    return main(["generate-registration", "-c", str(config), "-o", str(output), *extra])


def test_generate_registration_writes_the_file(config: Path, tmp_path: Path) -> None:
    output = tmp_path / "registration.yaml"
    assert generate(config, output) == 0
    registration = yaml.safe_load(output.read_text())
    assert registration["id"] == "visio"
    assert registration["url"] == "http://bridge.internal:29340"
    assert registration["sender_localpart"] == "visio"


def test_generated_tokens_are_long_random_and_distinct(config: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    assert generate(config, first) == 0
    assert generate(config, second) == 0
    one, two = yaml.safe_load(first.read_text()), yaml.safe_load(second.read_text())
    for registration in (one, two):
        assert len(registration["as_token"]) >= 60
        assert len(registration["hs_token"]) >= 60
        assert registration["as_token"] != registration["hs_token"]
    assert one["as_token"] != two["as_token"]
    assert one["hs_token"] != two["hs_token"]


def test_namespaces_claim_the_bot_and_the_prefix(config: Path, tmp_path: Path) -> None:
    output = tmp_path / "registration.yaml"
    generate(config, output)
    users = yaml.safe_load(output.read_text())["namespaces"]["users"]
    assert all(namespace["exclusive"] is True for namespace in users)
    regexes = [re.compile(namespace["regex"]) for namespace in users]

    def claimed(user_id: str) -> bool:
        return any(regex.fullmatch(user_id) for regex in regexes)

    assert claimed("@visio:ministere.test")
    assert claimed("@visio_alice:ministere.test")
    assert not claimed("@alice:ministere.test")
    assert not claimed("@visio_alice:ministereXtest")  # the dot in the domain is escaped
    assert not claimed("@visio:other.org")


def test_registration_is_readable_only_by_its_owner(config: Path, tmp_path: Path) -> None:
    output = tmp_path / "registration.yaml"
    generate(config, output)
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def test_existing_registration_is_not_overwritten(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "registration.yaml"
    output.write_text("as_token: the-one-synapse-knows\n")
    assert generate(config, output) == 1
    assert output.read_text() == "as_token: the-one-synapse-knows\n"
    assert "--force" in capsys.readouterr().err


def test_force_overwrites_the_registration(config: Path, tmp_path: Path) -> None:
    output = tmp_path / "registration.yaml"
    output.write_text("as_token: the-one-synapse-knows\n")
    assert generate(config, output, "--force") == 0
    assert yaml.safe_load(output.read_text())["as_token"] != "the-one-synapse-knows"


def test_check_config_accepts_a_valid_config(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate(config, tmp_path / "registration.yaml")
    capsys.readouterr()
    assert main(["check-config", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "@visio:ministere.test" in out
    assert "sqlite" in out


def test_check_config_without_registration_fails(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check-config", "-c", str(config)])
    assert exited.value.code == 1
    assert "appservice.registration" in capsys.readouterr().err


def test_check_config_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "config.yaml"
    raw = {
        "homeserver": {"domain": "example.org"},
        "appservice": {"address": "http://bridge.internal:29340", "port": 70000},
        "public_url": "https://visio.example.org",
        "livekit": {"url": "wss://livekit.example.org", "api_key": "APIkey"},
    }
    broken.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exited:
        main(["check-config", "-c", str(broken)])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert str(broken) in err
    for key in ("homeserver.address", "appservice.port", "livekit.api_secret"):
        assert f"  - {key}: " in err


def test_generate_registration_refuses_a_broken_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "config.yaml"
    broken.write_text("- not\n- a mapping\n")
    output = tmp_path / "registration.yaml"
    with pytest.raises(SystemExit) as exited:
        generate(broken, output)
    assert exited.value.code == 1
    assert not output.exists()
    assert "mapping" in capsys.readouterr().err


def test_demo_config_has_a_livekit_key_pair_and_webhooks(tmp_path: Path) -> None:
    setup = prepare_demo(tmp_path / "demo")
    livekit = setup.settings.livekit
    assert livekit.api_key == LIVEKIT_API_KEY
    assert len(livekit.api_secret.encode()) >= 32  # a real livekit-server refuses less
    assert stat.S_IMODE((tmp_path / "demo" / "config.yaml").stat().st_mode) == 0o600
    server = demo_livekit(setup)
    assert server is not None
    assert server.rtc_url == livekit.url
    config = server.config()
    assert config["keys"] == {livekit.api_key: livekit.api_secret}
    assert config["room"]["auto_create"] is False
    bridge_port = setup.settings.appservice.port
    assert config["webhook"] == {
        "api_key": livekit.api_key,
        "urls": [f"http://127.0.0.1:{bridge_port}/livekit/webhook"],
    }
    # The next run reuses the same key pair and port.
    assert prepare_demo(tmp_path / "demo").settings.livekit == livekit


def test_demo_folder_made_for_livekit_dev_gets_a_real_key_pair(tmp_path: Path) -> None:
    prepare_demo(tmp_path)
    config_path = tmp_path / "config.yaml"
    old = yaml.safe_load(config_path.read_text())
    old["livekit"] = {"url": "ws://127.0.0.1:7880", "api_key": "devkey", "api_secret": "secret"}
    config_path.write_text(yaml.safe_dump(old))
    livekit = prepare_demo(tmp_path).settings.livekit
    assert livekit.api_key == LIVEKIT_API_KEY
    assert len(livekit.api_secret.encode()) >= 32
    assert livekit.url != "ws://127.0.0.1:7880"
    upgraded = yaml.safe_load(config_path.read_text())
    assert upgraded["livekit"]["api_secret"] == livekit.api_secret
    assert {k: v for k, v in upgraded.items() if k != "livekit"} == {
        k: v for k, v in old.items() if k != "livekit"
    }


def test_demo_keeps_a_livekit_the_user_chose(tmp_path: Path) -> None:
    prepare_demo(tmp_path)
    config_path = tmp_path / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["livekit"] = {"url": "wss://lk.example.org", "api_key": "devkey", "api_secret": "secret"}
    config_path.write_text(yaml.safe_dump(config))
    setup = prepare_demo(tmp_path)
    assert yaml.safe_load(config_path.read_text()) == config
    assert demo_livekit(setup) is None


async def test_demo_livekit_starts_and_answers(tmp_path: Path) -> None:
    require_livekit_server()
    setup = prepare_demo(tmp_path / "demo")
    server = demo_livekit(setup)
    assert server is not None
    livekit = setup.settings.livekit
    async with (
        server,
        api.LiveKitAPI(livekit.api_url, livekit.api_key, livekit.api_secret) as client,
    ):
        # Signed with the demo's key pair, on the demo's port: the bridge's own way in.
        response = await client.room.list_rooms(api.ListRoomsRequest())
    assert list(response.rooms) == []


def _checked(tmp_path: Path, capsys: pytest.CaptureFixture[str], **changes: Any) -> tuple[int, str]:
    """check-config on CONFIG with `changes` (section → keys), registration included."""
    raw = yaml.safe_load(yaml.safe_dump(CONFIG))
    for section, values in changes.items():
        raw[section] = {**raw[section], **values} if isinstance(values, dict) else values
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert generate(path, tmp_path / "registration.yaml", "--force") == 0
    capsys.readouterr()
    code = main(["check-config", "-c", str(path)])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"livekit": {"api_key": "CHANGE_ME"}}, "livekit.api_key: still the example's placeholder"),
        ({"livekit": {"api_secret": "CHANGE_ME_TO_A_LONG_RANDOM_SECRET"}}, "placeholder"),
        ({"livekit": {"api_secret": "short"}}, "livekit.api_secret: shorter than 32 characters"),
        ({"homeserver": {"domain": "example.org"}}, "homeserver.domain: still the example's"),
        ({"public_url": "https://visio.example.org"}, "public_url: still the example's"),
    ],
)
def test_check_config_refuses_what_the_example_left_to_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], said: str
) -> None:
    code, err = _checked(tmp_path, capsys, **changes)
    assert code == 1
    assert said in err


def test_check_config_warns_when_guests_tokens_would_leave_the_operators_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosted = {
        "frontend_url": "https://meet.livekit.io/custom?liveKitUrl={livekit_url}&token={token}"
    }
    code, err = _checked(tmp_path, capsys, livekit=hosted)
    assert code == 0
    assert "meet.livekit.io, outside your domain" in err
    code, err = _checked(tmp_path, capsys)
    assert code == 0
    assert "outside your domain" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert re.fullmatch(r"visio-bridge \d+\.\d+\.\d+\n", capsys.readouterr().out)
