"""`POST /api/token`: a LiveKit token for a room member who proves who they are with OpenID.

Body: `{"slug": "abc-defg-hij", "user_id": "@alice:example.org",
"openid_token": {"access_token": "…", "matrix_server_name": "example.org"}}`.
Answers `{"token", "livekit_url", "room", "identity", "frontend_url"}`, or a Matrix-style error:
`M_UNAUTHORIZED` (bad OpenID), `M_FORBIDDEN` (not a member), `M_NOT_FOUND` (no live meeting),
`M_LIMIT_EXCEEDED` (rate limit, per client address and per meeting), `M_BAD_JSON`.

The client address is the socket's, or behind a trusted reverse proxy the one it forwards
(`ClientAddresses`). The per-meeting ceiling is ten addresses' worth: no one address can drain it
and lock the meeting's other members out.

The meeting is looked up before its rate-limit bucket is spent and before the OpenID token is
verified: verification contacts the homeserver the caller names, and a made-up link must cost
the bridge nothing but a database lookup.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from appservice.http.transactions import matrix_error
from bridge.join.members import JoinRefused, MemberJoin
from bridge.rate_limit import ClientAddresses, Rate, RateLimiter

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024
PER_ADDRESS = Rate(per_minute=30, burst=10)
PER_MEETING = Rate(per_minute=300, burst=60)


class TokenAPI:
    def __init__(
        self,
        member_join: MemberJoin,
        per_address: RateLimiter,
        per_meeting: RateLimiter,
        addresses: ClientAddresses | None = None,
    ) -> None:
        self._member_join = member_join
        self._per_address = per_address
        self._per_meeting = per_meeting
        self._addresses = addresses or ClientAddresses()

    async def issue(self, request: web.Request) -> web.Response:
        client = self._addresses.of(request.remote, request.headers.getall("X-Forwarded-For", []))
        if not self._per_address.allow(f"addr:{client}"):
            return _limited(self._per_address.retry_after_s(f"addr:{client}"))
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            return matrix_error(413, "M_TOO_LARGE", "Request too large")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return matrix_error(400, "M_NOT_JSON", "Body is not JSON")
        openid = body.get("openid_token") if isinstance(body, dict) else None
        slug = body.get("slug") if isinstance(body, dict) else None
        claimed = body.get("user_id") if isinstance(body, dict) else None
        if not (
            isinstance(slug, str)
            and isinstance(openid, dict)
            and isinstance(openid.get("access_token"), str)
            and isinstance(openid.get("matrix_server_name"), str)
            and (claimed is None or isinstance(claimed, str))
        ):
            return matrix_error(
                400, "M_BAD_JSON", "Expected slug, openid_token.access_token, matrix_server_name"
            )
        try:
            meeting = await self._member_join.live_meeting(slug)
            if not self._per_meeting.allow(f"slug:{slug}"):
                return _limited(self._per_meeting.retry_after_s(f"slug:{slug}"))
            grant = await self._member_join.grant(
                meeting, openid["access_token"], openid["matrix_server_name"], claimed
            )
        except JoinRefused as refusal:
            return matrix_error(refusal.status, refusal.errcode, refusal.error)
        response = web.json_response(
            {
                "token": grant.token,
                "livekit_url": grant.livekit_url,
                "room": grant.room,
                "identity": grant.identity,
                "frontend_url": grant.frontend_url,
            }
        )
        response.headers["Cache-Control"] = "no-store"
        return response


def _limited(retry_after_s: int) -> web.Response:
    response = web.json_response(
        {
            "errcode": "M_LIMIT_EXCEEDED",
            "error": "Too many requests",
            "retry_after_ms": retry_after_s * 1000,
        },
        status=429,
    )
    response.headers["Retry-After"] = str(retry_after_s)
    return response
