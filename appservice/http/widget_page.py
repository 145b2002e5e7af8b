"""`GET /widget/{slug}`: the meeting as a room widget, signing the member in through their client.

The page speaks the Matrix widget API over postMessage: it answers the client's capabilities
request (it needs none), asks for an OpenID token (`get_openid`), posts it to `/api/token`,
and moves on to the meeting front end with the LiveKit token it gets back. The user never
types a name or a password: their client vouches for them, and the bridge checks membership.

When joining means being recorded (for the meeting's transcript), the page says so and waits
for the member to choose to join before signing in. The page is limited per client address.

With the built-in call page (the default), the widget is that page in its member mode: the
same pre-join screen (preview, devices), then the same widget API exchange and `/api/token`,
from the page's own script, and the call inside the client's iframe.
"""

from __future__ import annotations

import html
import json
import secrets

from aiohttp import web

from appservice.http import call_page
from appservice.http.join_page import (
    JoinPage,
    is_recorded,
    limited,
    meeting_language,
    page_language,
    prejoin_html,
    recording_notice,
)
from bridge.meetings.service import MeetingService
from bridge.messages import i18n
from bridge.rate_limit import ClientAddresses, RateLimiter
from bridge.room_settings.service import RoomSettings

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:3rem auto;max-width:28rem;padding:0 1rem;"
    "color:#1e1e1e}.error{color:#ce0500}"
    ".recording{border-left:4px solid #ce0500;background:#fef4f4;padding:.5rem .75rem}"
    "button{font-size:1rem;padding:.6rem 1.2rem;background:#000091;color:#fff;border:0;"
    "border-radius:4px}"
)

# Kept small and dependency-free: it runs inside the client's iframe.
_SCRIPT = """
(() => {
  const params = new URLSearchParams(location.search);
  const widgetId = params.get("widgetId") || "";
  const userId = params.get("userId") || null;
  const config = JSON.parse(document.getElementById("visio-config").textContent);
  const status = document.getElementById("status");
  const pending = new Map();
  let counter = 0;
  let credentialsWaiter = null;
  let started = false;
  // A recorded meeting: the member reads the notice and chooses to join first.
  const joinButton = document.getElementById("join");
  const consent = joinButton
    ? new Promise((resolve) => joinButton.addEventListener("click", () => {
        joinButton.disabled = true;
        resolve();
      }, {once: true}))
    : Promise.resolve();
  const show = (text, isError) => {
    status.textContent = text;
    status.className = isError ? "error" : "";
  };
  const reply = (message, response, origin) =>
    window.parent.postMessage({...message, response}, origin);
  const ask = (action, data) => new Promise((resolve) => {
    const requestId = "visio-" + (++counter);
    pending.set(requestId, resolve);
    window.parent.postMessage({api: "fromWidget", widgetId, requestId, action, data}, "*");
  });
  async function signIn() {
    if (started) return;
    started = true;
    await consent;
    show(config.signing_in, false);
    let credentials = await ask("get_openid", {});
    if (credentials && credentials.state === "request") {
      credentials = await new Promise((resolve) => { credentialsWaiter = resolve; });
    }
    if (!credentials || credentials.state !== "allowed") {
      show(config.refused, true);
      return;
    }
    const response = await fetch("/api/token", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({
        slug: config.slug,
        user_id: userId,
        openid_token: {
          access_token: credentials.access_token,
          matrix_server_name: credentials.matrix_server_name,
        },
      }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const reason = config.errors[body.errcode] || config.errors.default;
      show(reason + " (" + body.errcode + ")", true);
      return;
    }
    show(config.joining, false);
    location.replace(body.frontend_url);
  }
  window.addEventListener("message", (event) => {
    const message = event.data;
    if (event.source !== window.parent || !message || typeof message !== "object") return;
    if (message.api === "toWidget") {
      if (message.action === "capabilities") {
        reply(message, {capabilities: []}, event.origin);
      } else if (message.action === "openid_credentials") {
        reply(message, {}, event.origin);
        if (credentialsWaiter) credentialsWaiter(message.data);
      } else {
        reply(message, {}, event.origin);
      }
      if (message.action === "notify_capabilities" || message.action === "capabilities") {
        setTimeout(signIn, 0);
      }
    } else if (message.api === "fromWidget" && message.response && pending.has(message.requestId)) {
      pending.get(message.requestId)(message.response);
      pending.delete(message.requestId);
    }
  });
  window.parent.postMessage(
    {api: "fromWidget", widgetId, requestId: "visio-loaded", action: "content_loaded", data: {}},
    "*",
  );
})();
"""


class WidgetPage:
    def __init__(
        self,
        default_language: str,
        meetings: MeetingService,
        room_settings: RoomSettings,
        addresses: ClientAddresses,
        limiter: RateLimiter,
    ) -> None:
        self._default_language = default_language
        self._meetings = meetings
        self._room_settings = room_settings
        self._addresses = addresses
        self._limiter = limiter

    async def show(self, request: web.Request, join_page: JoinPage | None = None) -> web.Response:
        language = page_language(request, self._default_language)
        client = self._addresses.of(request.remote, request.headers.getall("X-Forwarded-For", []))
        if not self._limiter.allow(client):
            text = html.escape(i18n.text(language, "widget_limited"))
            page = _document(language, f'<p class="error">{text}</p>', status=429)
            return limited(page, self._limiter.retry_after_s(client))
        slug = request.match_info["slug"]
        if join_page is not None and join_page.builtin:
            return await self._call_page(request, slug, language, join_page.livekit_url)
        recorded = await self._recorded(slug)
        config = {
            "slug": slug,
            "signing_in": i18n.text(language, "widget_signing_in"),
            "refused": i18n.text(language, "widget_refused"),
            "joining": i18n.text(language, "widget_joining"),
            "errors": {
                "M_FORBIDDEN": i18n.text(language, "widget_not_member"),
                "M_NOT_FOUND": i18n.text(language, "page_ended"),
                "M_UNAUTHORIZED": i18n.text(language, "widget_unauthorized"),
                "M_LIMIT_EXCEEDED": i18n.text(language, "widget_limited"),
                "default": i18n.text(language, "widget_failed"),
            },
        }
        # JSON inside <script type="application/json">: escape "<" so no "</script>" can appear.
        config_json = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
        if recorded:
            join = html.escape(i18n.text(language, "page_join"))
            status = f'{recording_notice(language)}<button id="join" type="button">{join}</button>'
            status += '<p id="status" role="status"></p>'
        else:
            signing_in = html.escape(i18n.text(language, "widget_signing_in"))
            status = f'<p id="status" role="status">{signing_in}</p>'
        body = f'{status}<script type="application/json" id="visio-config">{config_json}</script>'
        return _document(language, body, script=_SCRIPT)

    async def _call_page(
        self, request: web.Request, slug: str, language: str, livekit_url: str
    ) -> web.Response:
        """The built-in call page in its member mode (signed in through the widget API)."""
        meeting = await self._meetings.by_slug(slug)
        recorded = False
        if meeting is not None and meeting.is_open:
            config = await self._room_settings.effective(meeting.room_id)
            recorded = is_recorded(meeting, config)
            language = meeting_language(request, config, self._default_language)
        body = prejoin_html(language, intro="", recorded=recorded, error_html="", guest=False)
        page_config = {"mode": "member", "slug": slug, "recorded": recorded, "lobby": False}
        return call_page.render(
            request,
            language=language,
            title=i18n.text(language, "page_title"),
            body=body,
            config=page_config,
            livekit_url=livekit_url,
            embeddable=True,
        )

    async def _recorded(self, slug: str) -> bool:
        meeting = await self._meetings.by_slug(slug)
        if meeting is None or not meeting.is_open:
            return False  # the token API says why, once the member is signed in
        return is_recorded(meeting, await self._room_settings.effective(meeting.room_id))


def _document(language: str, body: str, *, status: int = 200, script: str = "") -> web.Response:
    nonce = secrets.token_urlsafe(16)
    title = html.escape(i18n.text(language, "page_title"))
    script_tag = f'<script nonce="{nonce}">{script}</script>' if script else ""
    document = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1>{body}{script_tag}</body></html>"
    )
    response = web.Response(text=document, content_type="text/html", status=status)
    # Embeddable by any Matrix client (frame-ancestors *), but runs only our own script.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors *"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
