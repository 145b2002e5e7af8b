"""The join link `GET /m/{slug}`: a small page that asks for a name, then sends the browser on.

Posting the form mints a short-lived LiveKit token for that one room and answers with a
redirect to the configured meeting front end. The token travels only in that redirect, never
through the Matrix room. Verified Matrix identities and the lobby come with later issues.

When joining means being recorded (for the meeting's transcript), the form and the waiting page
say so before the guest gives a name.

With the built-in call page (the default `livekit.frontend_url`), `GET /m/{slug}` is the meeting
itself (`call_page`): its script posts the name with `Accept: application/json` and reads the
token, or the lobby request to wait on, from the JSON answer (`Cache-Control: no-store`), so
the token is never in a URL. A plain form post still answers with a redirect to the front end.

Every route is limited per client address (`JoinLimits`); posting the form also counts against
a per-meeting ceiling of ten addresses' worth, so one address cannot lock a meeting's other
guests out; and the waiting page's long-polls are capped at once, per address and in all.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from aiohttp import web

from appservice.http import call_page
from appservice.http.bodies import BodyTooLarge, read_capped
from appservice.settings import BUILTIN_FRONTEND_URL
from bridge.ids import ParticipantIdentity
from bridge.join.tokens import (
    InvalidDisplayName,
    JoinSettings,
    clean_display_name,
    frontend_url,
    mint_token,
    new_guest_identity,
)
from bridge.lobby.desk import LobbyDesk
from bridge.lobby.requests import Lobby, LobbyRequest, LobbyState
from bridge.meetings.service import MeetingService
from bridge.meetings.store import Meeting
from bridge.messages import i18n
from bridge.ports import Clock, Matrix
from bridge.rate_limit import ClientAddresses, ConcurrencyLimit, Rate, RateLimiter
from bridge.room_settings.config import Access
from bridge.room_settings.service import EffectiveConfig, RoomSettings

log = logging.getLogger(__name__)

# Lobby requests remembered to answer a reloaded form with the same one (a few hours' worth).
MAX_REMEMBERED_KNOCKS = 10_000

LONG_POLL_S = 25.0
# The form has one field of 64 characters: even percent-encoded 4-byte characters fit in 1 KiB.
MAX_FORM_BYTES = 8 * 1024
# Per client address. The form is shown before it is posted, and a page reloaded.
PAGE_RATE = Rate(per_minute=60, burst=20)
JOIN_RATE = Rate(per_minute=30, burst=10)
# Per meeting: ten addresses' worth, a bound on lobby notices in the room.
MEETING_JOIN_RATE = Rate(per_minute=10 * JOIN_RATE.per_minute, burst=10 * JOIN_RATE.burst)
# A waiting page polls every 25 s, and again at once after each answer.
POLL_RATE = Rate(per_minute=120, burst=30)
BUSY_RETRY_S = 5  # Retry-After when every long-poll slot is taken

# The waiting room: long-polls its request until a member decides, then goes to the call.
_LOBBY_SCRIPT = """
(async () => {
  const config = JSON.parse(document.getElementById("lobby-config").textContent);
  const status = document.getElementById("status");
  const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  for (;;) {
    let body;
    try {
      const response = await fetch("/api/lobby/" + encodeURIComponent(config.id));
      if (response.status === 429) {
        await pause(Number(response.headers.get("Retry-After")) || 5);
        continue;
      }
      body = await response.json();
    } catch (error) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      continue;
    }
    if (body.state === "admitted" && body.frontend_url) {
      location.replace(body.frontend_url);
      return;
    }
    if (body.state === "refused" || body.state === "expired" || body.state === "ended" ||
        body.errcode) {
      status.textContent = config.texts[body.state] || config.texts.expired;
      status.className = "error";
      return;
    }
  }
})();
"""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;"
    "color:#1e1e1e}h1{font-size:1.4rem}input{font-size:1rem;padding:.5rem;width:100%;"
    "box-sizing:border-box;margin:.5rem 0 1rem}button{font-size:1rem;padding:.6rem 1.2rem;"
    "background:#000091;color:#fff;border:0;border-radius:4px}.error{color:#ce0500}.hint{color:#666;font-size:.9rem;margin-top:2rem}"
    ".recording{border-left:4px solid #ce0500;background:#fef4f4;padding:.5rem .75rem}"
)


def page_language(request: web.Request, default: str) -> str:
    requested = request.query.get("lang") or request.headers.get("Accept-Language") or ""
    code = requested[:2].lower()
    return code if code in i18n.CATALOGUES else default


def meeting_language(request: web.Request, config: EffectiveConfig, default: str) -> str:
    """A meeting's page: `?lang=` (the page's own switch), else the room's language, else the
    browser's (only when the room has none), else the operator's default."""
    chosen = request.query.get("lang", "")[:2].lower()
    if chosen in i18n.CATALOGUES:
        return chosen
    if config.room.language in i18n.CATALOGUES:
        return str(config.room.language)
    return page_language(request, default)


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def json_answer(body: Mapping[str, object], status: int = 200) -> web.Response:
    response = web.json_response(body, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def is_recorded(meeting: Meeting, config: EffectiveConfig) -> bool:
    """Whether joining the meeting now means being recorded for its transcript: it is being
    recorded, or will be as soon as it is live (transcripts on, and not stopped or failed)."""
    state = meeting.transcript_state
    return state == "recording" or (config.transcription and state == "off")


def recording_notice(language: str) -> str:
    return f'<p class="recording" role="note">{_t(language, "page_recording")}</p>'


def limited(response: web.Response, retry_after_s: int) -> web.Response:
    response.headers["Retry-After"] = str(retry_after_s)
    return response


@dataclass(frozen=True)
class JoinLimits:
    """How often, and how many at once, for the join page's routes."""

    addresses: ClientAddresses
    page: RateLimiter  # GET /m/{slug}, per address
    join: RateLimiter  # POST /m/{slug}, per address
    meeting: RateLimiter  # POST /m/{slug}, per meeting
    poll: RateLimiter  # GET /api/lobby/{id}, per address
    polls: ConcurrencyLimit  # GET /api/lobby/{id} at once

    @classmethod
    def standard(
        cls, clock: Clock, addresses: ClientAddresses, *, polls_per_address: int, polls: int
    ) -> JoinLimits:
        return cls(
            addresses=addresses,
            page=PAGE_RATE.limiter(clock),
            join=JOIN_RATE.limiter(clock),
            meeting=MEETING_JOIN_RATE.limiter(clock),
            poll=POLL_RATE.limiter(clock),
            polls=ConcurrencyLimit(per_key=polls_per_address, total=polls),
        )

    def client(self, request: web.Request) -> str:
        return self.addresses.of(request.remote, request.headers.getall("X-Forwarded-For", []))


class JoinPage:
    def __init__(
        self,
        meetings: MeetingService,
        matrix: Matrix,
        settings: JoinSettings,
        default_language: str,
        room_settings: RoomSettings,
        lobby: Lobby,
        desk: LobbyDesk,
        limits: JoinLimits,
        clock: Clock,
    ) -> None:
        self._meetings = meetings
        self._room_settings = room_settings
        self._lobby = lobby
        self._desk = desk
        self.limits = limits
        self._clock = clock
        self._matrix = matrix
        self._settings = settings
        # (meeting, client address, name) → the lobby request it opened, oldest first.
        self._knocks: dict[tuple[str, str, str], str] = {}
        self._default_language = default_language
        frontend = urlparse(settings.frontend_url)
        self._frontend_origin = f"{frontend.scheme}://{frontend.netloc}"
        self.builtin = settings.frontend_url == BUILTIN_FRONTEND_URL
        if self.builtin:
            self._frontend_origin = "'self'"

    async def show(self, request: web.Request) -> web.Response:
        language = page_language(request, self._default_language)
        client = self.limits.client(request)
        if not self.limits.page.allow(client):
            return self._limited_page(language, self.limits.page.retry_after_s(client))
        opened = await self._open_meeting(request, language)
        if isinstance(opened, web.Response):
            return opened
        meeting, config = opened
        language = meeting_language(request, config, self._default_language)
        if self.builtin:
            return await self._call_page(request, meeting, config, language)
        return await self._form(meeting, config, language, error=None)

    async def join(self, request: web.Request) -> web.Response:
        language = page_language(request, self._default_language)
        as_json = wants_json(request)
        client = self.limits.client(request)
        if not self.limits.join.allow(client):
            if as_json:
                return self._limited_json(request, self.limits.join.retry_after_s(client))
            return self._limited_page(language, self.limits.join.retry_after_s(client))
        opened = await self._open_meeting(request, language)
        if isinstance(opened, web.Response):
            return _as_json(opened) if as_json else opened
        meeting, config = opened
        language = meeting_language(request, config, self._default_language)
        # Counted only once the address was within its own limit: no one address drains it.
        if not self.limits.meeting.allow(meeting.id):
            if as_json:
                return self._limited_json(request, self.limits.meeting.retry_after_s(meeting.id))
            return self._limited_page(language, self.limits.meeting.retry_after_s(meeting.id))
        try:
            raw_name = await _posted_name(request)
        except BodyTooLarge:
            return web.Response(status=413, text="Request too large")
        try:
            name = clean_display_name(raw_name)
        except InvalidDisplayName:
            error = i18n.text(language, "page_name_invalid")
            if as_json:
                return json_answer({"errcode": "M_INVALID_PARAM", "error": error}, status=400)
            if self.builtin:
                return await self._call_page(request, meeting, config, language, error=error)
            return await self._form(meeting, config, language, error=error)
        # In the call, a guest's name says they are a guest (in the room's language).
        shown_name = i18n.text(config.language, "guest_name", name=name)
        identity: ParticipantIdentity = new_guest_identity()
        if config.room.access is Access.LOBBY:
            lobby_request = await self._knock(meeting, client, identity, shown_name)
            if as_json:
                return json_answer({"state": "waiting", "request_id": lobby_request.id})
            return self._waiting_page(language, lobby_request.id, is_recorded(meeting, config))
        if self.builtin and not as_json:
            # The built-in page asks for its token as JSON; a token is never put in a URL.
            raise web.HTTPSeeOther(f"/m/{meeting.slug}")
        token = mint_token(self._settings, meeting.livekit_room, identity, shown_name)
        log.info(
            "Join token minted for %s in meeting %s (%s)", identity, meeting.id, meeting.room_id
        )
        if as_json:
            answer = {
                "state": "joined",
                "token": token,
                "livekit_url": self._settings.livekit_url,
                "identity": identity,
                "name": shown_name,
            }
            return json_answer(answer)
        response = web.HTTPSeeOther(frontend_url(self._settings, meeting.livekit_room, token))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        raise response

    async def _knock(
        self, meeting: Meeting, client: str, identity: ParticipantIdentity, shown_name: str
    ) -> LobbyRequest:
        """The guest's lobby request, announced once: a reloaded form (the browser posts it
        again) or a second click finds the request still waiting instead of knocking twice."""
        key = (meeting.id, client, shown_name)
        known = self._knocks.get(key)
        waiting = await self._lobby.get(known) if known else None
        if waiting is not None and waiting.state is LobbyState.WAITING:
            return waiting
        request = await self._lobby.open_request(meeting.id, identity, shown_name)
        await self._desk.announce(meeting, request)
        if len(self._knocks) >= MAX_REMEMBERED_KNOCKS:
            self._knocks.pop(next(iter(self._knocks)))  # the oldest: long decided by now
        self._knocks[key] = request.id
        return request

    @property
    def livekit_url(self) -> str:
        return self._settings.livekit_url

    async def lobby_status(self, request: web.Request) -> web.Response:
        """Long-poll for a waiting guest: `{"state", "frontend_url"?}` once decided."""
        client = self.limits.client(request)
        if not self.limits.poll.allow(client):
            return self._limited_json(request, self.limits.poll.retry_after_s(client))
        if not self.limits.polls.acquire(client):
            return self._limited_json(request, BUSY_RETRY_S)
        try:
            return await self._lobby_status(request)
        finally:
            self.limits.polls.release(client)

    async def _lobby_status(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        lobby_request = await self._lobby.wait(request_id, timeout_s=LONG_POLL_S)
        if lobby_request is None:
            return web.json_response(
                {"errcode": "M_NOT_FOUND", "error": "No such request"}, status=404
            )
        now = self._clock.now_ms()
        if lobby_request.state is LobbyState.WAITING and now >= lobby_request.expires_at:
            await self._desk.expire()
            lobby_request = await self._lobby.get(request_id) or lobby_request
        body: dict[str, str] = {"state": lobby_request.state.value}
        url = await self._desk.token_url(lobby_request, now)
        if url is not None:
            body["frontend_url"] = url
        response = web.json_response(body)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _limited_json(self, request: web.Request, retry_after_s: int) -> web.Response:
        language = page_language(request, self._default_language)
        body = {
            "errcode": "M_LIMIT_EXCEEDED",
            "error": i18n.text(language, "widget_limited"),
            "retry_after_ms": retry_after_s * 1000,
        }
        response = web.json_response(body, status=429)
        response.headers["Cache-Control"] = "no-store"
        return limited(response, retry_after_s)

    def _limited_page(self, language: str, retry_after_s: int) -> web.Response:
        body = f"<p>{_t(language, 'widget_limited')}</p>"
        return limited(self._page(language, "page_title", body, 429), retry_after_s)

    def _waiting_page(self, language: str, request_id: str, recorded: bool) -> web.Response:
        texts = {
            "refused": i18n.text(language, "page_lobby_refused"),
            "expired": i18n.text(language, "page_lobby_expired"),
            "ended": i18n.text(language, "page_lobby_ended"),
        }
        config = json.dumps({"id": request_id, "texts": texts}).replace("<", "\\u003c")
        body = (
            f'<p id="status" role="status">{_t(language, "page_lobby_waiting")}</p>'
            f"{recording_notice(language) if recorded else ''}"
            f'<script type="application/json" id="lobby-config">{config}</script>'
        )
        return self._page(language, "page_lobby_title", body, 200, script=_LOBBY_SCRIPT)

    async def _call_page(
        self,
        request: web.Request,
        meeting: Meeting,
        config: EffectiveConfig,
        language: str,
        error: str | None = None,
    ) -> web.Response:
        """The built-in call page on its pre-join screen (rendered here, enhanced by its script)."""
        starter = await self._matrix.display_name(meeting.room_id, meeting.started_by)
        intro = await self._intro(language, meeting, starter)
        recorded = is_recorded(meeting, config)
        error_html = (
            f'<div class="fr-alert fr-alert--error fr-alert--sm" role="alert"><p>'
            f"{html.escape(error)}</p></div>"
            if error
            else ""
        )
        body = prejoin_html(
            language,
            intro=intro,
            recorded=recorded,
            error_html=error_html,
            guest=True,
        )
        page_config = {
            "mode": "guest",
            "slug": meeting.slug,
            "join_url": f"/m/{meeting.slug}",
            "recorded": recorded,
            "lobby": config.room.access is Access.LOBBY,
            "starter": starter,
        }
        return call_page.render(
            request,
            language=language,
            title=i18n.text(language, "page_title"),
            body=body,
            config=page_config,
            livekit_url=self._settings.livekit_url,
            status=400 if error else 200,
        )

    async def _open_meeting(
        self, request: web.Request, language: str
    ) -> tuple[Meeting, EffectiveConfig] | web.Response:
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
        if config.room.access is Access.MEMBERS:
            # Members join through the room (the widget, which verifies who they are).
            return self._page(
                language,
                "page_members_only_title",
                f"<p>{_t(language, 'page_members_only')}</p>",
                403,
            )
        return meeting, config

    async def _intro(self, language: str, meeting: Meeting, starter: str) -> str:
        """Which meeting this is: the room's name when it has one, and who started it."""
        content = await self._matrix.state_content(meeting.room_id, "m.room.name") or {}
        name = content.get("name")
        if isinstance(name, str) and name.strip():
            return _t(language, "page_intro_named", room=name.strip()[:80], starter=starter)
        return _t(language, "page_intro", starter=starter)

    async def _form(
        self, meeting: Meeting, config: EffectiveConfig, language: str, error: str | None
    ) -> web.Response:
        starter = await self._matrix.display_name(meeting.room_id, meeting.started_by)
        intro = await self._intro(language, meeting, starter)
        error_html = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        recording = recording_notice(language) if is_recorded(meeting, config) else ""
        body = (
            f"<p>{intro}</p>{recording}{error_html}"
            f'<form method="post"><label for="name">{_t(language, "page_name_label")}</label>'
            '<input id="name" name="name" maxlength="48" required autofocus autocomplete="name">'
            f'<button type="submit">{_t(language, "page_join")}</button></form>'
            f'<p class="hint">{_t(language, "page_members_hint")}</p>'
        )
        return self._page(language, "page_title", body, 400 if error else 200)

    def _page(
        self, language: str, title_key: str, body: str, status: int, *, script: str = ""
    ) -> web.Response:
        title = _t(language, title_key)
        nonce = secrets.token_urlsafe(16)
        script_tag = f'<script nonce="{nonce}">{script}</script>' if script else ""
        document = (
            f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{title}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{title}</h1>{body}{script_tag}</body></html>"
        )
        response = web.Response(text=document, content_type="text/html", status=status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
            f"connect-src 'self'; form-action 'self' {self._frontend_origin}; "
            "frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def prejoin_html(language: str, *, intro: str, recorded: bool, error_html: str, guest: bool) -> str:
    """The pre-join screen as the server renders it: readable before the script runs, which adds
    the camera and microphone preview into `#preview` and takes over the form."""
    recording = recording_notice(language) if recorded else ""
    if guest:
        action = (
            '<form method="post" id="join-form" class="visio-join-form">'
            '<div class="fr-input-group">'
            f'<label class="fr-label" for="name">{_t(language, "page_name_label")}</label>'
            '<input id="name" name="name" class="fr-input" maxlength="48" required '
            'autocomplete="name"></div>'
            f'<button class="fr-btn" id="join" type="submit">{_t(language, "page_join")}</button>'
            "</form>"
            f'<p class="fr-hint-text visio-hint">{_t(language, "page_members_hint")}</p>'
        )
    else:
        action = (
            f"<p>{_t(language, 'callpage_member_intro')}</p>"
            f'<button class="fr-btn" id="join" type="button">{_t(language, "page_join")}</button>'
        )
    return (
        '<section id="prejoin" class="visio-prejoin fr-container">'
        f'<h1 class="visio-title">{_t(language, "page_title")}</h1>'
        f'<p class="visio-intro">{intro}</p>{recording}{error_html}'
        '<div class="visio-prejoin__grid"><div id="preview" class="visio-preview"></div>'
        f'<div class="visio-prejoin__action">{action}'
        '<p id="status" class="visio-status" role="status" aria-live="polite"></p>'
        "</div></div></section>"
        '<div id="call" class="visio-call" hidden></div>'
    )


def _as_json(page: web.Response) -> web.Response:
    """An explanation page (unknown, ended, members only) as the script's JSON error."""
    errcodes = {404: "M_NOT_FOUND", 410: "M_NOT_FOUND", 403: "M_FORBIDDEN"}
    found = re.search(r"<p>(.*?)</p>", page.text or "")
    message = html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else ""
    body = {"errcode": errcodes.get(page.status, "M_UNKNOWN"), "error": message}
    return json_answer(body, status=page.status)


async def _posted_name(request: web.Request) -> str:
    """The form's `name` ("" when missing or unreadable), from a body read with a hard cap.

    Not `request.post()`: that reads up to the app-wide 16 MiB, accepts multipart (spooled to
    temporary files), and raises on bytes that are not UTF-8 (a 500)."""
    body = await read_capped(request, MAX_FORM_BYTES)
    if request.content_type != "application/x-www-form-urlencoded":
        return ""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=8, errors="strict")
    except ValueError:  # not UTF-8, percent-encoded bytes that are not UTF-8, too many fields
        return ""
    return fields.get("name", [""])[0]


def _t(language: str, key: str, **fields: str) -> str:
    escaped = {name: html.escape(value) for name, value in fields.items()}
    return i18n.text(language, key, **escaped)
