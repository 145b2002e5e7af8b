"""`GET /widget/{slug}`: the meeting as a room widget, signing the member in through their client.

The page speaks the Matrix widget API over postMessage: it answers the client's capabilities
request (it needs none), asks for an OpenID token (`get_openid`), posts it to `/api/token`,
and moves on to the meeting front end with the LiveKit token it gets back. The user never
types a name or a password: their client vouches for them, and the bridge checks membership.
"""

from __future__ import annotations

import html
import json
import secrets

from aiohttp import web

from appservice.http.join_page import page_language
from bridge.messages import i18n

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:3rem auto;max-width:28rem;padding:0 1rem;"
    "color:#1e1e1e}.error{color:#ce0500}"
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
    def __init__(self, default_language: str) -> None:
        self._default_language = default_language

    async def show(self, request: web.Request) -> web.Response:
        language = page_language(request, self._default_language)
        config = {
            "slug": request.match_info["slug"],
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
        nonce = secrets.token_urlsafe(16)
        # JSON inside <script type="application/json">: escape "<" so no "</script>" can appear.
        config_json = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
        title = html.escape(i18n.text(language, "page_title"))
        signing_in = html.escape(i18n.text(language, "widget_signing_in"))
        document = (
            f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            f"<title>{title}</title><style>{_STYLE}</style></head><body>"
            f'<h1>{title}</h1><p id="status">{signing_in}</p>'
            f'<script type="application/json" id="visio-config">{config_json}</script>'
            f'<script nonce="{nonce}">{_SCRIPT}</script></body></html>'
        )
        response = web.Response(text=document, content_type="text/html")
        # Embeddable by any Matrix client (frame-ancestors *), but runs only our own script.
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "connect-src 'self'; frame-ancestors *"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
