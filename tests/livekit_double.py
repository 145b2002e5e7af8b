"""A protocol-faithful LiveKit server double for tests.

`LiveKitDouble` is a real aiohttp server on 127.0.0.1 (ephemeral port) that speaks the same
wire protocol as livekit-server for the parts the bridge uses, so the *real*
``livekit.api.LiveKitAPI`` client can be pointed at it unchanged:

* Twirp RPC: ``POST /twirp/livekit.RoomService/<Method>`` and ``/twirp/livekit.Egress/<Method>``,
  bodies in ``application/protobuf`` (what livekit-api sends) or ``application/json`` (protojson,
  what other SDKs send), answered in the request's encoding, errors as Twirp JSON.
* Auth: ``Authorization: Bearer <JWT>`` (HS256 with the API secret, ``iss`` = API key) and the
  ``video`` grants the real server checks for each method.
* Webhooks: ``application/webhook+json`` protojson bodies signed with a JWT carrying the body's
  SHA-256, exactly what ``livekit.api.WebhookReceiver`` verifies.

Nothing is mocked: tests drive the double through HTTP and simulate the media side (participants
joining/leaving, rooms finishing) with `join`, `leave` and `finish_room`, which emit the same
webhooks the real server would. Every call is recorded in `requests` for assertions, and
`fail_next` / `delay` inject faults.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aiohttp
import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.api import AccessToken, VideoGrants
from livekit.protocol import egress as proto_egress
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room
from livekit.protocol.webhook import WebhookEvent

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "LiveKitDouble", "RecordedRequest", "SentData"]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "devkey"
# 32+ bytes: PyJWT warns about shorter HMAC keys, and LiveKit itself requires >= 32 chars.
DEFAULT_API_SECRET = "livekit-double-secret-0123456789abcdef"

# livekit-server validates tokens with go-jose's default leeway of one minute.
_JWT_LEEWAY_S = 60
# livekit-server's defaults when CreateRoom leaves the timeouts at 0.
_DEFAULT_EMPTY_TIMEOUT_S = 300
_DEFAULT_DEPARTURE_TIMEOUT_S = 20
# How long the webhook JWT is valid; the real server uses 5 minutes too.
_WEBHOOK_TOKEN_TTL = datetime.timedelta(minutes=5)
_WEBHOOK_TIMEOUT = aiohttp.ClientTimeout(total=5)

_JSON = "application/json"
_PROTOBUF = "application/protobuf"
_ID_ALPHABET = string.ascii_letters + string.digits

# Twirp's code -> HTTP status table (twirp spec), used when the double raises its own errors.
_TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
}

_ACTIVE_EGRESS = frozenset(
    {
        proto_egress.EgressStatus.EGRESS_STARTING,
        proto_egress.EgressStatus.EGRESS_ACTIVE,
        proto_egress.EgressStatus.EGRESS_ENDING,
    }
)

_Grant = Literal["roomCreate", "roomList", "roomAdmin", "roomRecord"]
_M = TypeVar("_M", bound=Message)


def _new_id(prefix: str) -> str:
    # Same shape as LiveKit's ids ("RM_" + 12 base62 chars); random so tests can't rely on order.
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class TwirpFault(Exception):
    """A Twirp error the double answers with (``{"code": ..., "msg": ...}``)."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(f"{status} {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg

    @classmethod
    def of(cls, code: str, msg: str) -> TwirpFault:
        # Anything not in the table (internal, unknown, ...) would be a 5xx on a real server;
        # the double answers 400 instead so a client with retry/failover never sleeps on it.
        return cls(_TWIRP_STATUS.get(code, 400), code, msg)


@dataclass
class RecordedRequest:
    """One authenticated, decoded Twirp call, whatever its outcome (see `status`)."""

    service: str  # "RoomService" or "Egress"
    method: str  # e.g. "CreateRoom"
    content_type: str  # "application/protobuf" or "application/json"
    request: Message  # the decoded request message (e.g. CreateRoomRequest)
    grants: dict[str, Any]  # the token's raw `video` claim (camelCase keys)
    identity: str  # the token's `sub`
    status: int = 200  # HTTP status the double answered with


@dataclass
class SentData:
    """A data packet accepted by SendData (the double has no real participants to deliver to)."""

    room: str
    payload: bytes
    topic: str
    destination_identities: list[str]
    kind: int


@dataclass
class _Fault:
    status: int
    code: str
    msg: str
    remaining: int


@dataclass
class _MethodSpec:
    request_type: type[Message]
    grant: _Grant
    handler: Callable[[Any], Awaitable[Message]]


@dataclass
class _WebhookJob:
    event: WebhookEvent


class LiveKitDouble:
    """In-process LiveKit server speaking Twirp + webhooks over real HTTP."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        webhook_url: str | None = None,
        *,
        sync_webhooks: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        # Where webhooks go; None means events are not delivered (nor recorded in webhooks_sent).
        self.webhook_url = webhook_url
        # True: the triggering call (Twirp handler, join(), ...) awaits the webhook POST, so a test
        # sees it delivered as soon as the call returns. False: delivered in order by a background
        # worker, like the real server; use `flush_webhooks()` to wait for them.
        self.sync_webhooks = sync_webhooks
        # Seconds slept before handling each Twirp call (after it is recorded).
        self.delay: float = 0.0

        self.rooms: dict[str, proto_models.Room] = {}
        self.participants: dict[str, dict[str, proto_models.ParticipantInfo]] = {}
        self.egresses: dict[str, proto_egress.EgressInfo] = {}
        self.sent_data: list[SentData] = []
        self.requests: list[RecordedRequest] = []
        self.webhooks_sent: list[tuple[WebhookEvent, int]] = []

        self._faults: dict[str, list[_Fault]] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[_WebhookJob] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

        self._methods: dict[tuple[str, str], _MethodSpec] = {
            ("RoomService", "CreateRoom"): _MethodSpec(
                proto_room.CreateRoomRequest, "roomCreate", self._create_room
            ),
            ("RoomService", "ListRooms"): _MethodSpec(
                proto_room.ListRoomsRequest, "roomList", self._list_rooms
            ),
            ("RoomService", "DeleteRoom"): _MethodSpec(
                proto_room.DeleteRoomRequest, "roomCreate", self._delete_room
            ),
            ("RoomService", "ListParticipants"): _MethodSpec(
                proto_room.ListParticipantsRequest, "roomAdmin", self._list_participants
            ),
            ("RoomService", "GetParticipant"): _MethodSpec(
                proto_room.RoomParticipantIdentity, "roomAdmin", self._get_participant
            ),
            ("RoomService", "RemoveParticipant"): _MethodSpec(
                proto_room.RoomParticipantIdentity, "roomAdmin", self._remove_participant
            ),
            ("RoomService", "MutePublishedTrack"): _MethodSpec(
                proto_room.MuteRoomTrackRequest, "roomAdmin", self._mute_published_track
            ),
            ("RoomService", "UpdateParticipant"): _MethodSpec(
                proto_room.UpdateParticipantRequest, "roomAdmin", self._update_participant
            ),
            ("RoomService", "UpdateRoomMetadata"): _MethodSpec(
                proto_room.UpdateRoomMetadataRequest, "roomAdmin", self._update_room_metadata
            ),
            ("RoomService", "SendData"): _MethodSpec(
                proto_room.SendDataRequest, "roomAdmin", self._send_data
            ),
            ("Egress", "StartRoomCompositeEgress"): _MethodSpec(
                proto_egress.RoomCompositeEgressRequest, "roomRecord", self._start_room_composite
            ),
            ("Egress", "StartTrackEgress"): _MethodSpec(
                proto_egress.TrackEgressRequest, "roomRecord", self._start_track_egress
            ),
            ("Egress", "StopEgress"): _MethodSpec(
                proto_egress.StopEgressRequest, "roomRecord", self._stop_egress
            ),
            ("Egress", "ListEgress"): _MethodSpec(
                proto_egress.ListEgressRequest, "roomRecord", self._list_egress
            ),
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        # One catch-all route: Twirp answers bad_route (404) for unknown paths and non-POST
        # methods, which aiohttp's router would otherwise turn into 404/405 HTML pages.
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Short shutdown grace: stop() must not hang for aiohttp's default 60 s on a call that a
        # test left sleeping in `delay`.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=_WEBHOOK_TIMEOUT)
        self._worker = asyncio.create_task(self._webhook_worker())

    async def stop(self) -> None:
        if self._worker is not None:
            # Undelivered queued webhooks are dropped, like a server shutting down.
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("LiveKitDouble is not started")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ test helpers

    def make_token(
        self,
        grants: VideoGrants,
        *,
        identity: str = "",
        ttl: datetime.timedelta = datetime.timedelta(minutes=10),
    ) -> str:
        """A Bearer-able API token signed with this double's key/secret."""
        token = AccessToken(self.api_key, self.api_secret).with_grants(grants).with_ttl(ttl)
        return token.with_identity(identity).to_jwt()

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded calls to `method` (e.g. "CreateRoom"), oldest first."""
        return [r for r in self.requests if r.method == method]

    def fail_next(
        self,
        method: str,
        status: int = 400,
        code: str = "invalid_argument",
        msg: str = "injected failure",
        times: int = 1,
    ) -> None:
        """Make the next `times` calls to `method` fail with this Twirp error.

        The call is still authenticated and recorded, but has no effect. Keep `status` 4xx unless
        the test is about 5xx: livekit-api's failover retries 5xx (with back-off) on cloud hosts.
        """
        self._faults.setdefault(method, []).append(_Fault(status, code, msg, times))

    def webhook_events(self, event: str | None = None) -> list[WebhookEvent]:
        """Webhooks delivered so far (any HTTP status), optionally only those named `event`."""
        return [ev for ev, _ in self.webhooks_sent if event is None or ev.event == event]

    # ------------------------------------------------------------------ media-side simulation

    async def join(
        self,
        room: str,
        identity: str,
        name: str = "",
        metadata: str = "",
        *,
        create_room: bool = False,
    ) -> proto_models.ParticipantInfo:
        """Simulate a participant connecting; emits participant_joined.

        The room must exist (created through the API) unless `create_room` is set, which mimics
        livekit-server's auto_create (room_started first). A duplicate identity replaces the
        previous participant, who leaves with DUPLICATE_IDENTITY, as on the real server.
        """
        if room not in self.rooms:
            if not create_room:
                raise KeyError(f"room {room!r} does not exist")
            await self._create_room(proto_room.CreateRoomRequest(name=room))
        members = self.participants[room]
        if identity in members:
            await self._disconnect(
                room, identity, "participant_left", proto_models.DisconnectReason.DUPLICATE_IDENTITY
            )
        now_ms = int(time.time() * 1000)
        info = proto_models.ParticipantInfo(
            sid=_new_id("PA_"),
            identity=identity,
            name=name,
            metadata=metadata,
            state=proto_models.ParticipantInfo.State.ACTIVE,
            joined_at=now_ms // 1000,
            joined_at_ms=now_ms,
            kind=proto_models.ParticipantInfo.Kind.STANDARD,
            permission=proto_models.ParticipantPermission(
                can_subscribe=True, can_publish=True, can_publish_data=True
            ),
        )
        members[identity] = info
        self.rooms[room].num_participants = len(members)
        await self._emit("participant_joined", room=self.rooms[room], participant=info)
        return _copy(info)

    async def leave(
        self, room: str, identity: str, aborted: bool = False
    ) -> proto_models.ParticipantInfo:
        """Simulate a participant disconnecting (participant_left, or
        participant_connection_aborted when the connection dropped)."""
        if identity not in self.participants.get(room, {}):
            raise KeyError(f"{identity!r} is not in room {room!r}")
        if aborted:
            return await self._disconnect(
                room,
                identity,
                "participant_connection_aborted",
                proto_models.DisconnectReason.CONNECTION_TIMEOUT,
            )
        return await self._disconnect(
            room, identity, "participant_left", proto_models.DisconnectReason.CLIENT_INITIATED
        )

    async def publish_track(
        self,
        room: str,
        identity: str,
        track_type: proto_models.TrackType = proto_models.TrackType.AUDIO,
        name: str = "",
    ) -> proto_models.TrackInfo:
        """Give a participant a published track (for MutePublishedTrack); emits track_published."""
        participant = self.participants.get(room, {}).get(identity)
        if participant is None:
            raise KeyError(f"{identity!r} is not in room {room!r}")
        source = (
            proto_models.TrackSource.MICROPHONE
            if track_type == proto_models.TrackType.AUDIO
            else proto_models.TrackSource.CAMERA
        )
        track = participant.tracks.add(
            sid=_new_id("TR_"), type=track_type, name=name, source=source
        )
        participant.is_publisher = True
        await self._emit(
            "track_published", room=self.rooms[room], participant=participant, track=track
        )
        return _copy(track)

    async def finish_room(
        self,
        room: str,
        reason: proto_models.RoomEndReason = (proto_models.RoomEndReason.ROOM_END_IDLE_TIMEOUT),
    ) -> None:
        """Simulate the room closing (e.g. empty_timeout elapsed): remaining participants leave,
        then room_finished."""
        if room not in self.rooms:
            raise KeyError(f"room {room!r} does not exist")
        await self._close_room(room, reason)

    # ------------------------------------------------------------------ webhooks

    async def send_webhook(
        self,
        event: WebhookEvent,
        *,
        sign: bool = True,
        api_key: str | None = None,
        api_secret: str | None = None,
        url: str | None = None,
    ) -> int:
        """POST `event` to the webhook URL the way livekit-server does; return the HTTP status.

        Fills in `id` ("EV_...") and `created_at` when unset. `sign=False` omits the Authorization
        header; `api_key` / `api_secret` override the signing credentials (to test rejection).
        Transport errors are reported as status 0. Every attempt lands in `webhooks_sent`.
        """
        target = url or self.webhook_url
        if target is None:
            raise RuntimeError("no webhook_url configured")
        ev = WebhookEvent()
        ev.CopyFrom(event)
        if not ev.id:
            ev.id = _new_id("EV_")
        if not ev.created_at:
            ev.created_at = int(time.time())
        # Default MessageToJson = protojson with lowerCamelCase names, as the Go server emits.
        # The signature covers these exact bytes, so they must be sent unchanged.
        body = json_format.MessageToJson(ev).encode()
        headers = {"Content-Type": "application/webhook+json"}
        if sign:
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            token = (
                AccessToken(api_key or self.api_key, api_secret or self.api_secret)
                .with_sha256(digest)
                .with_ttl(_WEBHOOK_TOKEN_TTL)
                .to_jwt()
            )
            # No "Bearer " prefix: livekit-server puts the bare JWT in Authorization.
            headers["Authorization"] = token
        status = 0
        session = self._session or aiohttp.ClientSession(timeout=_WEBHOOK_TIMEOUT)
        try:
            async with session.post(target, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("webhook %s to %s failed: %s", ev.event, target, exc)
        finally:
            if session is not self._session:
                await session.close()
        self.webhooks_sent.append((ev, status))
        return status

    async def flush_webhooks(self) -> None:
        """Wait until every queued webhook (sync_webhooks=False) has been delivered."""
        await self._queue.join()

    async def _emit(self, event: str, **fields: Any) -> None:
        if self.webhook_url is None:
            return
        ev = WebhookEvent(event=event, id=_new_id("EV_"), created_at=int(time.time()), **fields)
        if self.sync_webhooks:
            await self.send_webhook(ev)
        else:
            self._queue.put_nowait(_WebhookJob(ev))

    async def _webhook_worker(self) -> None:
        # A single worker keeps delivery in emission order, as livekit-server's queue does.
        while True:
            job = await self._queue.get()
            try:
                if self.webhook_url is not None:
                    await self.send_webhook(job.event)
            except Exception:
                logger.exception("webhook delivery failed")
            finally:
                self._queue.task_done()

    # ------------------------------------------------------------------ Twirp plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        if (
            request.method != "POST"
            or len(parts) != 3
            or parts[0] != "twirp"
            or not parts[1].startswith("livekit.")
        ):
            return _error(
                TwirpFault.of("bad_route", f"no handler for {request.method} {request.path}")
            )
        service, method = parts[1].removeprefix("livekit."), parts[2]
        spec = self._methods.get((service, method))
        if spec is None:
            return _error(TwirpFault.of("bad_route", f"unknown method {service}/{method}"))
        content_type = request.content_type  # aiohttp strips "; charset=..."
        if content_type not in (_JSON, _PROTOBUF):
            return _error(TwirpFault.of("bad_route", f"unexpected Content-Type: {content_type!r}"))
        try:
            # The real server authenticates in a middleware, before the body is decoded.
            grants, identity = self._authenticate(request)
            message = await _decode(request, spec.request_type, content_type)
        except TwirpFault as fault:
            return _error(fault)

        record = RecordedRequest(service, method, content_type, message, grants, identity)
        self.requests.append(record)
        try:
            self._authorize(spec.grant, grants, message)
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            self._take_fault(method)
            reply = await spec.handler(message)
        except TwirpFault as fault:
            record.status = fault.status
            return _error(fault)
        except Exception as exc:
            # A bug in the double must not look like a retryable 5xx to the client.
            logger.exception("LiveKitDouble failed on %s", method)
            record.status = 400
            return _error(TwirpFault(400, "internal", f"double error: {exc!r}"))
        return _encode(reply, content_type)

    def _authenticate(self, request: web.Request) -> tuple[dict[str, Any], str]:
        header = request.headers.get("Authorization", "")
        if not header:
            raise TwirpFault.of("unauthenticated", "authorization header missing")
        if not header.startswith("Bearer "):
            raise TwirpFault.of("unauthenticated", "authorization header is not a Bearer token")
        token = header.removeprefix("Bearer ")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TwirpFault.of("unauthenticated", f"invalid token: {exc}") from exc
        # The server looks the secret up by `iss`: an unknown key fails before the signature.
        if unverified.get("iss") != self.api_key:
            raise TwirpFault.of("unauthenticated", f"invalid API key: {unverified.get('iss')}")
        try:
            claims = jwt.decode(
                token,
                self.api_secret,
                algorithms=["HS256"],
                issuer=self.api_key,
                leeway=_JWT_LEEWAY_S,
                options={"require": ["exp", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise TwirpFault.of("unauthenticated", f"invalid token: {exc}") from exc
        video = claims.get("video") or {}
        if not isinstance(video, dict):
            raise TwirpFault.of("unauthenticated", "invalid token: video claim is not an object")
        return video, str(claims.get("sub", ""))

    @staticmethod
    def _authorize(grant: _Grant, video: dict[str, Any], message: Message) -> None:
        if not video.get(grant):
            raise TwirpFault.of("permission_denied", f"permissions denied: {grant} required")
        # Room admin is scoped: the token's `room` must be the room the call acts on.
        if grant == "roomAdmin" and video.get("room") != getattr(message, "room", None):
            raise TwirpFault.of(
                "permission_denied", "permissions denied: token is for another room"
            )

    def _take_fault(self, method: str) -> None:
        queue = self._faults.get(method)
        if not queue:
            return
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        raise TwirpFault(fault.status, fault.code, fault.msg)

    # ------------------------------------------------------------------ state helpers

    def _room(self, name: str) -> proto_models.Room:
        room = self.rooms.get(name)
        if room is None:
            raise TwirpFault.of("not_found", f"requested room does not exist: {name}")
        return room

    def _participant(self, room: str, identity: str) -> proto_models.ParticipantInfo:
        self._room(room)
        participant = self.participants[room].get(identity)
        if participant is None:
            raise TwirpFault.of("not_found", f"participant does not exist: {identity}")
        return participant

    async def _disconnect(
        self,
        room: str,
        identity: str,
        event: str,
        reason: proto_models.DisconnectReason,
    ) -> proto_models.ParticipantInfo:
        info = self.participants[room].pop(identity)
        info.state = proto_models.ParticipantInfo.State.DISCONNECTED
        info.disconnect_reason = reason
        room_info = self.rooms[room]
        room_info.num_participants = len(self.participants[room])
        await self._emit(event, room=room_info, participant=info)
        return _copy(info)

    async def _close_room(self, name: str, reason: proto_models.RoomEndReason) -> None:
        for identity in list(self.participants[name]):
            await self._disconnect(
                name, identity, "participant_left", proto_models.DisconnectReason.ROOM_DELETED
            )
        # As on the real server, a room closing completes its recordings (egress_ended).
        for info in list(self.egresses.values()):
            if info.room_name == name and info.status in _ACTIVE_EGRESS:
                await self._stop_egress(proto_egress.StopEgressRequest(egress_id=info.egress_id))
        room = self.rooms.pop(name)
        del self.participants[name]
        await self._emit("room_finished", room=room, room_end_reason=reason)

    # ------------------------------------------------------------------ RoomService

    async def _create_room(self, req: proto_room.CreateRoomRequest) -> proto_models.Room:
        if not req.name:
            raise TwirpFault.of("invalid_argument", "room name is required")
        existing = self.rooms.get(req.name)
        if existing is not None:
            # Idempotent like livekit-server: the live room comes back, same sid, no new event.
            return _copy(existing)
        now_ms = int(time.time() * 1000)
        room = proto_models.Room(
            sid=_new_id("RM_"),
            name=req.name,
            empty_timeout=req.empty_timeout or _DEFAULT_EMPTY_TIMEOUT_S,
            departure_timeout=req.departure_timeout or _DEFAULT_DEPARTURE_TIMEOUT_S,
            max_participants=req.max_participants,
            metadata=req.metadata,
            creation_time=now_ms // 1000,
            creation_time_ms=now_ms,
            num_participants=0,
        )
        self.rooms[req.name] = room
        self.participants[req.name] = {}
        await self._emit("room_started", room=room)
        return _copy(room)

    async def _list_rooms(self, req: proto_room.ListRoomsRequest) -> proto_room.ListRoomsResponse:
        names = set(req.names)
        rooms = [r for n, r in self.rooms.items() if not names or n in names]
        return proto_room.ListRoomsResponse(rooms=rooms)

    async def _delete_room(
        self, req: proto_room.DeleteRoomRequest
    ) -> proto_room.DeleteRoomResponse:
        self._room(req.room)
        await self._close_room(req.room, proto_models.RoomEndReason.ROOM_END_API_DELETE)
        return proto_room.DeleteRoomResponse()

    async def _list_participants(
        self, req: proto_room.ListParticipantsRequest
    ) -> proto_room.ListParticipantsResponse:
        self._room(req.room)
        return proto_room.ListParticipantsResponse(
            participants=list(self.participants[req.room].values())
        )

    async def _get_participant(
        self, req: proto_room.RoomParticipantIdentity
    ) -> proto_models.ParticipantInfo:
        return _copy(self._participant(req.room, req.identity))

    async def _remove_participant(
        self, req: proto_room.RoomParticipantIdentity
    ) -> proto_room.RemoveParticipantResponse:
        self._participant(req.room, req.identity)
        await self._disconnect(
            req.room,
            req.identity,
            "participant_left",
            proto_models.DisconnectReason.PARTICIPANT_REMOVED,
        )
        return proto_room.RemoveParticipantResponse()

    async def _mute_published_track(
        self, req: proto_room.MuteRoomTrackRequest
    ) -> proto_room.MuteRoomTrackResponse:
        participant = self._participant(req.room, req.identity)
        for track in participant.tracks:
            if track.sid == req.track_sid:
                track.muted = req.muted
                return proto_room.MuteRoomTrackResponse(track=track)
        raise TwirpFault.of("not_found", f"track does not exist: {req.track_sid}")

    async def _update_participant(
        self, req: proto_room.UpdateParticipantRequest
    ) -> proto_models.ParticipantInfo:
        participant = self._participant(req.room, req.identity)
        # Like the server, empty strings mean "leave unchanged"; attributes are merged and an
        # empty value deletes the key.
        if req.metadata:
            participant.metadata = req.metadata
        if req.name:
            participant.name = req.name
        if req.HasField("permission"):
            participant.permission.CopyFrom(req.permission)
        for key, value in req.attributes.items():
            if value:
                participant.attributes[key] = value
            else:
                participant.attributes.pop(key, None)
        return _copy(participant)

    async def _update_room_metadata(
        self, req: proto_room.UpdateRoomMetadataRequest
    ) -> proto_models.Room:
        room = self._room(req.room)
        room.metadata = req.metadata
        return _copy(room)

    async def _send_data(self, req: proto_room.SendDataRequest) -> proto_room.SendDataResponse:
        self._room(req.room)
        self.sent_data.append(
            SentData(
                room=req.room,
                payload=req.data,
                topic=req.topic,
                destination_identities=list(req.destination_identities),
                kind=req.kind,
            )
        )
        return proto_room.SendDataResponse()

    # ------------------------------------------------------------------ Egress

    async def _start_egress(self, room_name: str, **request: Any) -> proto_egress.EgressInfo:
        room = self._room(room_name)
        now = time.time_ns()
        info = proto_egress.EgressInfo(
            egress_id=_new_id("EG_"),
            room_id=room.sid,
            room_name=room_name,
            status=proto_egress.EgressStatus.EGRESS_ACTIVE,
            started_at=now,
            updated_at=now,
            **request,
        )
        self.egresses[info.egress_id] = info
        room.active_recording = True
        await self._emit("egress_started", egress_info=info)
        return _copy(info)

    async def _start_room_composite(
        self, req: proto_egress.RoomCompositeEgressRequest
    ) -> proto_egress.EgressInfo:
        return await self._start_egress(req.room_name, room_composite=req)

    async def _start_track_egress(
        self, req: proto_egress.TrackEgressRequest
    ) -> proto_egress.EgressInfo:
        return await self._start_egress(
            req.room_name,
            track=req,
            source_type=proto_egress.EgressSourceType.EGRESS_SOURCE_TYPE_SDK,
        )

    async def _stop_egress(self, req: proto_egress.StopEgressRequest) -> proto_egress.EgressInfo:
        info = self.egresses.get(req.egress_id)
        if info is None:
            raise TwirpFault.of("not_found", f"egress does not exist: {req.egress_id}")
        if info.status not in _ACTIVE_EGRESS:
            raise TwirpFault.of("failed_precondition", "egress is not active")
        now = time.time_ns()
        info.status = proto_egress.EgressStatus.EGRESS_COMPLETE
        info.ended_at = now
        info.updated_at = now
        filename = _output_filepath(info) or f"{info.room_name}-{info.started_at}.mp4"
        result = proto_egress.FileInfo(
            filename=filename,
            location=filename,
            started_at=info.started_at,
            ended_at=now,
            duration=now - info.started_at,
        )
        info.file_results.append(result)
        info.file.CopyFrom(result)  # deprecated single-result field, still filled by the server
        room = self.rooms.get(info.room_name)
        if room is not None and not any(
            e.status in _ACTIVE_EGRESS for e in self.egresses.values() if e.room_name == room.name
        ):
            room.active_recording = False
        await self._emit("egress_ended", egress_info=info)
        return _copy(info)

    async def _list_egress(
        self, req: proto_egress.ListEgressRequest
    ) -> proto_egress.ListEgressResponse:
        items = [
            e
            for e in self.egresses.values()
            if (not req.room_name or e.room_name == req.room_name)
            and (not req.egress_id or e.egress_id == req.egress_id)
            and (not req.active or e.status in _ACTIVE_EGRESS)
        ]
        return proto_egress.ListEgressResponse(items=items)


# ---------------------------------------------------------------------- module helpers


def _copy(message: _M) -> _M:
    # Hand out copies so callers can't mutate the double's state behind its back.
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _output_filepath(info: proto_egress.EgressInfo) -> str:
    request = info.WhichOneof("request")
    if request == "room_composite":
        rc = info.room_composite
        if rc.HasField("file"):
            return rc.file.filepath
        if rc.file_outputs:
            return rc.file_outputs[0].filepath
    elif request == "track" and info.track.HasField("file"):
        return info.track.file.filepath
    return ""


async def _decode(request: web.Request, message_type: type[Message], content_type: str) -> Message:
    raw = await request.read()
    message = message_type()
    try:
        if content_type == _JSON:
            # Twirp's JSON codec discards unknown fields and accepts both name styles.
            json_format.Parse(raw.decode(), message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(raw)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
        raise TwirpFault.of("malformed", f"the request could not be decoded: {exc}") from exc
    return message


def _encode(message: Message, content_type: str) -> web.Response:
    if content_type == _JSON:
        # Twirp's default JSON marshaller: original proto field names, defaults included.
        body = json_format.MessageToJson(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            indent=None,
        )
        return web.Response(text=body, content_type=_JSON)
    return web.Response(body=message.SerializeToString(), content_type=_PROTOBUF)


def _error(fault: TwirpFault) -> web.Response:
    # Twirp always answers errors as JSON, whatever the request's content type.
    return web.json_response({"code": fault.code, "msg": fault.msg}, status=fault.status)
