"""Rendering notices: each message as a plain body and an HTML `formatted_body`, in a language.

Field values are escaped for HTML here, once; a `Link` renders as an anchor in HTML and as the
bare URL in plain text, so clients without HTML still show a clickable link.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from bridge.messages import i18n


@dataclass(frozen=True)
class Link:
    url: str


@dataclass(frozen=True)
class Notice:
    plain: str
    html: str


def notice(language: str, key: str, **fields: object) -> Notice:
    plain_fields = {name: _plain(value) for name, value in fields.items()}
    html_fields = {name: _html(value) for name, value in fields.items()}
    plain = i18n.text(language, key, **plain_fields)
    # The template itself is trusted text; escape it before inserting the escaped fields.
    template = html.escape(i18n.CATALOGUES.get(language, i18n.FR)[key], quote=False)
    formatted = i18n.fill(language, template, **html_fields).replace("\n", "<br>")
    return Notice(plain=plain, html=formatted)


def duration(language: str, milliseconds: int) -> str:
    minutes_total = max(0, milliseconds) // 60_000
    if minutes_total < 1:
        return i18n.text(language, "duration_under_minute")
    hours, minutes = divmod(minutes_total, 60)
    if hours:
        return i18n.text(language, "duration_hours", hours=hours, minutes=minutes)
    return i18n.text(language, "duration_minutes", minutes=minutes)


def _plain(value: object) -> object:
    return value.url if isinstance(value, Link) else value


def _html(value: object) -> object:
    if isinstance(value, Link):
        url = html.escape(value.url)
        return f'<a href="{url}">{url}</a>'
    if isinstance(value, int):
        return value  # keeps numeric format specs such as {minutes:02d} and {level:roles} working
    return html.escape(str(value))
