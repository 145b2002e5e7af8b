"""The join link `GET /m/{slug}`: a small page that asks for a name, then sends the browser on.

Posting the form mints a short-lived LiveKit token for that one room and answers with a
redirect to the configured meeting front end. The token travels only in that redirect, never
through the Matrix room. Verified Matrix identities and the lobby come with later issues.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import urlparse

from aiohttp import web

from bridge.ids import ParticipantIdentity
from bridge.join import (
    InvalidDisplayName,
    JoinSettings,
    clean_display_name,
    frontend_url,
    mint_token,
    new_guest_identity,
)
from bridge.meeting_service import MeetingService
from bridge.meetings import Meeting
from bridge.room_config import Access

from . import i18n
from .matrix import MatrixPort
from .room_settings import RoomSettings

log = logging.getLogger(__name__)

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;"
    "color:#1e1e1e}h1{font-size:1.4rem}input{font-size:1rem;padding:.5rem;width:100%;"
    "box-sizing:border-box;margin:.5rem 0 1rem}button{font-size:1rem;padding:.6rem 1.2rem;"
    "background:#000091;color:#fff;border:0;border-radius:4px}.error{color:#ce0500}"
)


def page_language(request: web.Request, default: str) -> str:
    requested = request.query.get("lang") or request.headers.get("Accept-Language") or ""
    code = requested[:2].lower()
    return code if code in i18n.CATALOGUES else default


class JoinPage:
    def __init__(
        self,
        meetings: MeetingService,
        matrix: MatrixPort,
        settings: JoinSettings,
        default_language: str,
        room_settings: RoomSettings,
    ) -> None:
        self._meetings = meetings
        self._room_settings = room_settings
        self._matrix = matrix
        self._settings = settings
        self._default_language = default_language
        frontend = urlparse(settings.frontend_url)
        self._frontend_origin = f"{frontend.scheme}://{frontend.netloc}"

    async def show(self, request: web.Request) -> web.Response:
        language = page_language(request, self._default_language)
        meeting = await self._open_meeting(request, language)
        if isinstance(meeting, web.Response):
            return meeting
        return await self._form(meeting, language, error=None)

    async def join(self, request: web.Request) -> web.Response:
        language = page_language(request, self._default_language)
        meeting = await self._open_meeting(request, language)
        if isinstance(meeting, web.Response):
            return meeting
        form = await request.post()
        raw_name = form.get("name")
        try:
            name = clean_display_name(raw_name if isinstance(raw_name, str) else "")
        except InvalidDisplayName:
            return await self._form(
                meeting, language, error=i18n.text(language, "page_name_invalid")
            )
        identity: ParticipantIdentity = new_guest_identity()
        token = mint_token(self._settings, meeting.livekit_room, identity, name)
        log.info(
            "Join token minted for %s in meeting %s (%s)", identity, meeting.id, meeting.room_id
        )
        response = web.HTTPSeeOther(frontend_url(self._settings, meeting.livekit_room, token))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        raise response

    async def _open_meeting(self, request: web.Request, language: str) -> Meeting | web.Response:
        """The open meeting behind the link, or the page explaining why there is none."""
        meeting = await self._meetings.by_slug(request.match_info["slug"])
        if meeting is None:
            return self._page(
                language, "page_not_found_title", f"<p>{_t(language, 'page_not_found')}</p>", 404
            )
        if not meeting.is_open:
            return self._page(
                language, "page_ended_title", f"<p>{_t(language, 'page_ended')}</p>", 410
            )
        config = await self._room_settings.effective(meeting.room_id)
        if config.room.access is not Access.GUESTS:
            # Verified member sign-in and the lobby are not built yet: refuse rather than
            # let a guest into a room whose admins asked for members only.
            return self._page(
                language,
                "page_members_only_title",
                f"<p>{_t(language, 'page_members_only')}</p>",
                403,
            )
        return meeting

    async def _form(self, meeting: Meeting, language: str, error: str | None) -> web.Response:
        starter = await self._matrix.display_name(meeting.room_id, meeting.started_by)
        error_html = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = (
            f"<p>{_t(language, 'page_intro', starter=starter)}</p>{error_html}"
            f'<form method="post"><label for="name">{_t(language, "page_name_label")}</label>'
            '<input id="name" name="name" maxlength="64" required autofocus autocomplete="name">'
            f'<button type="submit">{_t(language, "page_join")}</button></form>'
        )
        return self._page(language, "page_title", body, 400 if error else 200)

    def _page(self, language: str, title_key: str, body: str, status: int) -> web.Response:
        title = _t(language, title_key)
        document = (
            f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{title}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{title}</h1>{body}</body></html>"
        )
        response = web.Response(text=document, content_type="text/html", status=status)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; "
            f"form-action 'self' {self._frontend_origin}; frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _t(language: str, key: str, **fields: str) -> str:
    escaped = {name: html.escape(value) for name, value in fields.items()}
    return i18n.text(language, key, **escaped)
