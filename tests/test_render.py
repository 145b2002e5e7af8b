"""Notices as users see them: plain body and HTML, escaping, both languages, durations."""

from __future__ import annotations

import string

import pytest

from bridge.messages import i18n
from bridge.messages.render import Link, duration, notice

HOSTILE = "<img src=x onerror=alert(1)>"
URL = "https://visio.example.org/m/abc?x=1&y=2"


def fields(template: str) -> set[tuple[str, str]]:
    """The `{name:spec}` fields of a format string."""
    return {
        (name, spec or "")
        for _, name, spec, _ in string.Formatter().parse(template)
        if name is not None
    }


def test_link_is_an_anchor_in_html() -> None:
    rendered = notice("en", "started", starter="Alice", link=Link(URL))
    escaped = "https://visio.example.org/m/abc?x=1&amp;y=2"
    assert f'<a href="{escaped}">{escaped}</a>' in rendered.html


def test_link_is_the_bare_url_in_plain() -> None:
    rendered = notice("en", "started", starter="Alice", link=Link(URL))
    assert rendered.plain == f"Video call started by Alice — join: {URL}"
    assert "<a" not in rendered.plain


def test_hostile_display_name_is_escaped_in_html() -> None:
    rendered = notice("fr", "started", starter=HOSTILE, link=Link("https://x.test/m/a"))
    assert "<img" not in rendered.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.html


def test_hostile_display_name_is_verbatim_in_plain() -> None:
    rendered = notice("fr", "started", starter=HOSTILE, link=Link("https://x.test/m/a"))
    assert rendered.plain == f"Visio démarrée par {HOSTILE} — rejoindre\u00a0: https://x.test/m/a"


def test_newlines_become_line_breaks_in_html() -> None:
    rendered = notice("en", "help")
    assert "\n" in rendered.plain
    assert "\n" not in rendered.html
    assert rendered.html.count("<br>") == rendered.plain.count("\n")


def test_numbers_keep_their_format_in_html() -> None:
    rendered = notice("fr", "end_forbidden", starter="Alice", level=50)
    assert "ou par les modérateurs (niveau 50)." in rendered.html


def test_language_selects_the_catalogue() -> None:
    assert notice("fr", "nothing_to_end").plain == (
        "Aucune visio n\u2019est en cours\u00a0: il n\u2019y a rien à terminer."
    )
    assert notice("en", "nothing_to_end").plain == "There is no video call to end."


def test_unknown_language_falls_back_to_french() -> None:
    assert notice("de", "nothing_to_end").plain == i18n.FR["nothing_to_end"]


def test_catalogues_have_the_same_keys() -> None:
    assert set(i18n.FR) == set(i18n.EN)


@pytest.mark.parametrize("key", sorted(i18n.FR))
def test_catalogues_have_the_same_fields(key: str) -> None:
    assert fields(i18n.FR[key]) == fields(i18n.EN.get(key, ""))


@pytest.mark.parametrize(
    ("language", "milliseconds", "expected"),
    [
        ("fr", 30_000, "moins d\u2019une minute"),
        ("en", 30_000, "less than a minute"),
        ("fr", 5 * 60_000, "5\u00a0min"),
        ("en", 5 * 60_000, "5 min"),
        ("fr", (2 * 60 + 5) * 60_000, "2\u00a0h\u00a005"),
        ("en", (2 * 60 + 5) * 60_000, "2 h 05"),
    ],
)
def test_duration(language: str, milliseconds: int, expected: str) -> None:
    assert duration(language, milliseconds) == expected


def test_negative_duration_is_under_a_minute() -> None:
    assert duration("en", -5_000) == "less than a minute"
