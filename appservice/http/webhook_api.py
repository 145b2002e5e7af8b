"""`POST /livekit/webhook`: LiveKit's signed webhooks, verified over the raw body, then applied.

A bad or missing signature gets 401 and changes nothing. A webhook for a room the bridge does
not own, or one it has already applied (same id), gets 200 and is ignored. A failure to apply
gets 500, so LiveKit's own retry can try again. The body is read with a hard cap (413), even
when it comes chunked, before anything looks at it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from appservice.http.bodies import BodyTooLarge, read_capped
from appservice.logs import set_log_context
from bridge.meetings.lifecycle import MeetingLifecycle
from bridge.meetings.webhooks import WebhookRejected, WebhookVerifier, translate

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1024 * 1024


class WebhookAPI:
    def __init__(self, verifier: WebhookVerifier, lifecycle: MeetingLifecycle) -> None:
        self._verifier = verifier
        self._lifecycle = lifecycle

    async def receive(self, request: web.Request) -> web.Response:
        try:
            body = await read_capped(request, MAX_WEBHOOK_BYTES)
        except BodyTooLarge:
            return web.json_response({"error": "too large"}, status=413)
        try:
            event = self._verifier.verify(body, request.headers.get("Authorization"))
        except WebhookRejected as err:
            log.warning("Rejected a LiveKit webhook from %s: %s", request.remote, err)
            return web.json_response({"error": "invalid signature"}, status=401)
        # Every line logged while applying it names the meeting's LiveKit room (visio-<slug>).
        set_log_context(meeting=event.room.name or event.egress_info.room_name)
        log.debug("LiveKit webhook %s: %s", event.id, event.event)
        try:
            fresh = await self._lifecycle.apply_webhook(event.id, translate(event))
        except Exception:
            log.exception("Could not apply LiveKit webhook %s (%s)", event.id, event.event)
            return web.json_response({"error": "not applied"}, status=500)
        if not fresh:
            log.debug("LiveKit webhook %s seen before; ignored", event.id)
        return web.json_response({})
