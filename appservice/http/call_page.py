"""The built-in call page: the meeting itself, at `/m/{slug}` and `/widget/{slug}`.

The HTML is rendered here, per request: the State's header and footer (DSFR), the pre-join
screen (who started the meeting, the recording notice, the name field), and the page's config
as JSON data (`<script type="application/json">`, never executed). Everything else is the
front end built from `callpage/` (`bash .ci/build-callpage.sh`): one script, one stylesheet,
the Marianne fonts and the DSFR's artwork, all served from `/call/assets/` by this module.
Nothing comes from a third party, and the Content-Security-Policy says so: scripts, styles and
fonts from this origin only, no inline script, connections to this origin and LiveKit only.

A guest's token never travels in a URL: the page's script asks for it with
`POST /m/{slug}` (`Accept: application/json`) and reads it from the JSON answer.
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from appservice.settings import CallPageSettings
from bridge.messages import i18n

# The look (service name, footer links) comes from the operator's settings; a bare app (the
# fast tests) falls back to the defaults.
BRANDING = web.AppKey("call_page_branding", CallPageSettings)
ASSETS_PREFIX = "/call/assets/"
# Where `.ci/build-callpage.sh` leaves the bundle; VISIO_CALLPAGE_DIR points elsewhere.
DEFAULT_DIST = Path(__file__).resolve().parents[2] / "callpage" / "dist"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def dist_dir() -> Path:
    return Path(os.environ.get("VISIO_CALLPAGE_DIR") or DEFAULT_DIST)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


class Assets:
    """The built files, read once: a fixed set of names, so no path ever reaches the disk."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[str, Asset] | None = None

    def files(self) -> dict[str, Asset]:
        if self._files is None:
            found: dict[str, Asset] = {}
            if self._directory.is_dir():
                for path in sorted(self._directory.iterdir()):
                    if not path.is_file() or not _ASSET_NAME.match(path.name):
                        continue
                    content_type = _TYPES.get(path.suffix)
                    if content_type is None:
                        content_type = mimetypes.guess_type(path.name)[0]
                    if content_type is None or path.suffix == ".map":
                        continue
                    body = path.read_bytes()
                    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                    found[path.name] = Asset(body, content_type, etag)
            self._files = found
        return self._files

    @property
    def built(self) -> bool:
        return "app.js" in self.files() and "app.css" in self.files()

    async def serve(self, request: web.Request) -> web.Response:
        asset = self.files().get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound()
        headers = {
            "ETag": asset.etag,
            # Fixed names (app.js): revalidated, answered 304 while unchanged.
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "same-origin",
        }
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, content_type=asset.content_type, headers=headers)


ASSETS = Assets(dist_dir())


def livekit_origins(livekit_url: str) -> str:
    """LiveKit's signalling origin for `connect-src`, as a WebSocket and as HTTP (its /validate)."""
    parts = urlsplit(livekit_url)
    secure = parts.scheme in ("wss", "https")
    host = parts.netloc
    return f"{'wss' if secure else 'ws'}://{host} {'https' if secure else 'http'}://{host}"


def content_security_policy(livekit_url: str, *, embeddable: bool) -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
        "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
        f"connect-src 'self' {livekit_origins(livekit_url)}; "
        "form-action 'self'; base-uri 'none'; "
        f"frame-ancestors {'*' if embeddable else chr(39) + 'none' + chr(39)}"
    )


def branding_of(request: web.Request) -> CallPageSettings:
    return request.app.get(BRANDING) or CallPageSettings()


def render(
    request: web.Request,
    *,
    language: str,
    title: str,
    body: str,
    config: dict[str, Any],
    livekit_url: str,
    embeddable: bool = False,
    status: int = 200,
) -> web.Response:
    """The call page: the DSFR frame around `body`, the built script, `config` as JSON data."""
    branding = branding_of(request)
    page_config = {**config, "language": language, "livekit_url": livekit_url}
    # JSON inside <script type="application/json">: escape "<" so no "</script>" can appear.
    config_json = json.dumps(page_config, ensure_ascii=False).replace("<", "\\u003c")
    other = "en" if language == "fr" else "fr"
    document = (
        f'<!doctype html><html lang="{language}" data-fr-scheme="light"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)} - {html.escape(branding.service_name)}</title>"
        f'<link rel="stylesheet" href="{ASSETS_PREFIX}app.css">'
        f'<script type="module" src="{ASSETS_PREFIX}app.js"></script>'
        '</head><body class="visio-page">'
        f"{_header(language, other, branding, embeddable)}"
        f'<main id="main" class="visio-main" tabindex="-1">{body}</main>'
        f"{'' if embeddable else _footer(language, branding)}"
        f'<script type="application/json" id="visio-config">{config_json}</script>'
        "</body></html>"
    )
    response = web.Response(text=document, content_type="text/html", status=status)
    response.headers["Content-Security-Policy"] = content_security_policy(
        livekit_url, embeddable=embeddable
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Permissions-Policy"] = (
        "camera=(self), microphone=(self), display-capture=(self)"
    )
    return response


def _header(language: str, other: str, branding: CallPageSettings, embeddable: bool) -> str:
    switch = html.escape(i18n.text(language, "callpage_other_language"))
    republic = "République<br>française"
    return (
        '<header role="banner" class="fr-header visio-header"><div class="fr-header__body">'
        '<div class="fr-container"><div class="fr-header__body-row">'
        '<div class="fr-header__brand"><div class="fr-header__brand-top">'
        f'<div class="fr-header__logo"><p class="fr-logo">{republic}</p></div></div>'
        '<div class="fr-header__service">'
        f'<p class="fr-header__service-title">{html.escape(branding.service_name)}</p>'
        "</div></div>"
        '<div class="visio-header__tools">'
        f'<a class="fr-link visio-lang" lang="{other}" hreflang="{other}" href="?lang={other}">'
        f"{switch}</a></div>"
        "</div></div></div></header>"
    )


def _footer(language: str, branding: CallPageSettings) -> str:
    links = [
        (branding.legal_notice_url, "callpage_legal_notice"),
        (branding.personal_data_url, "callpage_personal_data"),
        (branding.accessibility_url, "callpage_accessibility"),
    ]
    items = "".join(
        f'<li class="fr-footer__bottom-item"><a class="fr-footer__bottom-link" '
        f'href="{html.escape(url)}">{html.escape(i18n.text(language, key))}</a></li>'
        for url, key in links
        if url
    )
    return (
        '<footer class="fr-footer visio-footer" role="contentinfo"><div class="fr-container">'
        '<div class="fr-footer__body"><div class="fr-footer__brand">'
        '<p class="fr-logo">République<br>française</p></div>'
        '<div class="fr-footer__content"><p class="fr-footer__content-desc">'
        f"{html.escape(branding.service_name)}</p></div></div>"
        f'<div class="fr-footer__bottom"><ul class="fr-footer__bottom-list">{items}</ul></div>'
        "</div></footer>"
    )
