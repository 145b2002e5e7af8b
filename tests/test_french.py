"""French as the State writes it: typography, words people know, both languages in step.

The rules (see `bridge/messages/i18n.py`): a no-break space (U+00A0) before « : » and inside
« », a narrow no-break space (U+202F) before « ; ! ? » and between thousands, the apostrophe \u2019,
times as « 7 h 23 ». Checked on every French text of the catalogue and of the call page.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from appservice.command_parser import parse_command
from bridge.commands import Action
from bridge.messages import i18n
from bridge.messages.render import duration, notice
from bridge.room_settings.config import Access, RoomConfig, RoomConfigError, Widget, with_field
from bridge.room_settings.service import EffectiveConfig, OperatorPolicy, render_config

NBSP = "\u00a0"
NNBSP = "\u202f"
CALL_PAGE_TEXTS = Path(__file__).parent.parent / "callpage" / "src" / "i18n.ts"


def placeholders(template: str) -> set[tuple[str, str]]:
    return {
        (name, spec or "")
        for _, name, spec, _ in string.Formatter().parse(template)
        if name is not None
    }


def without_placeholders(template: str) -> str:
    # `{minutes:02d}` holds a colon that is no punctuation; a bare word stands in for a field.
    return re.sub(r"\{[^{}]*\}", "X", template)


def typography_faults(text: str) -> list[str]:
    """What breaks the French rules in `text` (placeholders already taken out)."""
    faults = []
    if "'" in text:
        faults.append("ASCII apostrophe (use \u2019)")
    if '"' in text or "“" in text or "”" in text:
        faults.append("English quotes (use « »)")
    for match in re.finditer(r"[:;?!]", text):
        mark, at = match.group(), match.start()
        before = text[at - 1] if at else ""
        after = text[at + 1 : at + 2]
        if mark == "!" and re.match(r"\w", after):
            continue  # a command such as !visio, not punctuation
        wanted = NBSP if mark == ":" else NNBSP
        if before != wanted:
            faults.append(f"{mark!r} after {before!r}, not {wanted!r}")
    for match in re.finditer("«", text):
        if text[match.end() : match.end() + 1] != NBSP:
            faults.append("« not followed by a no-break space")
    for match in re.finditer("»", text):
        if text[match.start() - 1 : match.start()] != NBSP:
            faults.append("» not preceded by a no-break space")
    if re.search(r"\d{1,2}:\d{2}", text):
        faults.append("HH:MM time (write 7 h 23)")
    if re.search(r"\d{4,}", text):
        faults.append("number of 4+ digits without a thousands separator")
    if "·" in text or re.search(r"\w\.\w+\.s\b", text):
        faults.append("point médian (reword instead)")
    return faults


def call_page_french() -> dict[str, str]:
    source = CALL_PAGE_TEXTS.read_text(encoding="utf-8")
    block = re.search(r"const fr = \{(.*?)\n\};", source, re.DOTALL)
    assert block is not None, "the French texts of callpage/src/i18n.ts were not found"
    return {
        key: value.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
        if "\\u" in value
        else value
        for key, value in re.findall(
            r'^\s*(\w+):\s*"((?:[^"\\]|\\.)*)",?\s*$', block.group(1), re.M
        )
    }


# ---- the catalogue ----------------------------------------------------------------------------


def test_every_key_exists_in_both_languages() -> None:
    assert set(i18n.FR) == set(i18n.EN)


@pytest.mark.parametrize("key", sorted(i18n.FR))
def test_both_languages_take_the_same_placeholders(key: str) -> None:
    assert placeholders(i18n.FR[key]) == placeholders(i18n.EN[key]), key


@pytest.mark.parametrize("key", sorted(i18n.FR))
def test_french_typography(key: str) -> None:
    assert typography_faults(without_placeholders(i18n.FR[key])) == [], i18n.FR[key]


def test_no_jargon_and_no_verbless_help() -> None:
    french = " ".join(i18n.FR.values())
    for jargon in ("niveau de pouvoir", "objet JSON", "type de valeur", "Usage", "invité)"):
        assert jargon not in french
    assert i18n.FR["config_usage"].startswith("Syntaxe" + NBSP + ":")
    assert i18n.FR["guest_name"] == "{name} (personne invitée)"
    assert "pièces jointes" in i18n.FR["transcript_summary"]  # two files: Markdown and WebVTT


def test_the_checks_catch_what_they_should() -> None:
    assert typography_faults("Bonjour !") != []
    assert typography_faults("Syntaxe : x") != []
    assert typography_faults("« texte »") != []
    assert typography_faults("l'adresse") != []
    assert typography_faults("à 07:23") != []
    assert typography_faults("de 0 à 10000") != []
    assert typography_faults(f"Bonjour{NNBSP}! Tapez !visio{NBSP}: «{NBSP}aide{NBSP}»") == []


# ---- the call page --------------------------------------------------------------------------


def test_call_page_french_typography() -> None:
    texts = call_page_french()
    assert len(texts) > 20
    faults = {key: typography_faults(without_placeholders(v)) for key, v in texts.items()}
    assert {key: found for key, found in faults.items() if found} == {}


# ---- what the catalogue is filled with -------------------------------------------------------


def test_numbers_are_grouped_with_a_narrow_no_break_space() -> None:
    assert i18n.number("fr", 10_000) == f"10{NNBSP}000"
    assert i18n.number("en", 10_000) == "10,000"
    assert i18n.text("fr", "people_plural", count=1234) == f"1{NNBSP}234 personnes"
    capped = notice("fr", "config_capped", cap=10_000, asked=25_000)
    assert f"10{NNBSP}000 personnes" in capped.plain and f"(25{NNBSP}000)" in capped.html


def test_times_and_durations_read_as_french() -> None:
    assert i18n.text("fr", "time_of_day", hours=7, minutes=23) == f"7{NBSP}h{NBSP}23"
    assert i18n.text("en", "time_of_day", hours=7, minutes=23) == "7:23"
    assert duration("fr", 75 * 60_000) == f"1{NBSP}h{NBSP}15"
    assert duration("fr", 5 * 60_000) == f"5{NBSP}min"


def test_power_levels_are_named() -> None:
    assert i18n.text("fr", "end_forbidden", starter="Bob", level=50).endswith(
        "ou par les modérateurs (niveau 50)."
    )
    assert "les administrateurs (niveau 100)" in i18n.text(
        "fr", "config_command_forbidden", level=100, yours=50
    )
    assert "les membres de niveau 30 ou plus" in i18n.text(
        "fr", "start_forbidden", level=30, yours=0
    )
    assert i18n.text("fr", "bot_lacks_power", level=50).startswith(
        "Je dois être modérateur (niveau 50) pour"
    )
    assert "only moderators (power level 50)" in i18n.text(
        "en", "start_forbidden", level=50, yours=0
    )


def test_help_shows_french_subcommands_the_parser_accepts() -> None:
    help_text = i18n.FR["help"]
    shown = re.findall(r"• !visio( [^\s—]+)?", help_text)
    assert {word.strip() for word in shown} >= {"", "fin", "statut", "aide", "réglages"}
    for word in shown:
        command = parse_command({"body": f"!visio{word}"}, "@visio:x", "Visio")
        assert command is not None and command.action is not Action.UNKNOWN, word
    transcript = parse_command({"body": "!visio transcription arrêt"}, "@visio:x", "Visio")
    assert transcript is not None and transcript.action is Action.TRANSCRIPT
    assert transcript.args == ("arrêt",)


# ---- `!visio config` in French -----------------------------------------------------------------


POLICY = OperatorPolicy(
    default_language="fr",
    moderator_power_level=50,
    max_participants=10_000,
    transcription_allowed=True,
    settings_power_level=50,
    guests_power_level=50,
)


def effective(room: RoomConfig, language: str = "fr") -> EffectiveConfig:
    return EffectiveConfig(
        room=room,
        language=language,
        end_power_level=50,
        max_participants=10_000,
        transcription=room.transcription,
        transcript_language=language,
    )


def test_config_shows_french_values_in_french_rooms() -> None:
    room = RoomConfig(access=Access.LOBBY, widget=Widget.OFF, transcription=True)
    plain = render_config(effective(room), POLICY).plain
    assert f"• access{NBSP}: salle d\u2019attente" in plain
    assert f"• widget{NBSP}: désactivé" in plain
    assert f"• transcription{NBSP}: activée" in plain
    assert f"• enabled{NBSP}: oui" in plain
    assert f"(limite du serveur{NBSP}: 10{NNBSP}000)" in plain
    for line in plain.splitlines():
        assert typography_faults(line.replace("!visio réglages", "")) == [], line
    english = render_config(effective(RoomConfig(), "en"), POLICY).plain
    assert "• access: guests" in english and "• widget: off" in english


@pytest.mark.parametrize(
    ("field", "typed", "value"),
    [
        ("access", "invités", Access.GUESTS),
        ("access", "Salle d\u2019attente", Access.LOBBY),
        ("access", "salle d'attente", Access.LOBBY),
        ("access", "membres", Access.MEMBERS),
        ("access", "guests", Access.GUESTS),
        ("access", "lobby", Access.LOBBY),
        ("widget", "épinglé", Widget.PINNED),
        ("widget", "désactivé", Widget.OFF),
        ("widget", "pinned", Widget.PINNED),
    ],
)
def test_french_and_english_values_are_accepted(field: str, typed: str, value: object) -> None:
    assert getattr(with_field(RoomConfig(), field, typed), field) == value


def test_french_transcription_values_are_accepted() -> None:
    assert with_field(RoomConfig(), "transcription", "activée").transcription is True
    assert with_field(RoomConfig(transcription=True), "transcription", "off").transcription is False


def refusal(name: str, raw: str) -> RoomConfigError:
    with pytest.raises(RoomConfigError) as caught:
        with_field(RoomConfig(), name, raw)
    return caught.value


def test_refusals_say_what_is_allowed_in_french() -> None:
    from bridge.room_settings.service import _invalid_notice

    too_many = _invalid_notice("fr", refusal("max_participants", "20000")).plain
    assert too_many == (
        f"Réglages Visio refusés{NBSP}: le réglage "
        f"«{NBSP}max_participants{NBSP}» n\u2019accepte que "
        f"les nombres entiers de 0 à 10{NNBSP}000. Les réglages précédents restent en vigueur."
    )
    access = _invalid_notice("fr", refusal("access", "tous")).plain
    assert (
        f"n\u2019accepte que «{NBSP}membres{NBSP}», «{NBSP}invités{NBSP}» ou "
        f"«{NBSP}salle d\u2019attente{NBSP}»."
    ) in access
    boolean = _invalid_notice("fr", refusal("enabled", "peut-être")).plain
    assert f"n\u2019accepte que «{NBSP}oui{NBSP}» ou «{NBSP}non{NBSP}»." in boolean
    english = _invalid_notice("en", refusal("max_participants", "20000")).plain
    assert "only takes whole numbers from 0 to 10,000." in english
    for text in (too_many, access, boolean):
        assert typography_faults(text) == [], text
