"""LiveKit webhooks: verify the signature over the raw body, then translate to domain events.

Verification is livekit-api's `WebhookReceiver` (JWT signed with the API key pair, claim
`sha256` over the exact body). Translation is a pure function, so everything after it deals
with small typed events instead of protobuf messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit import api
from livekit.protocol import egress
from livekit.protocol.webhook import WebhookEvent

from bridge.ids import LiveKitRoomName
from bridge.livekit import PEOPLE_KINDS


class WebhookRejected(Exception):
    """The webhook's signature or body is not acceptable; nothing was applied."""


@dataclass(frozen=True)
class RoomStarted:
    room: LiveKitRoomName
    at_ms: int


@dataclass(frozen=True)
class RoomFinished:
    room: LiveKitRoomName
    at_ms: int


@dataclass(frozen=True)
class ParticipantJoined:
    room: LiveKitRoomName
    sid: str
    identity: str
    name: str
    at_ms: int


@dataclass(frozen=True)
class ParticipantLeft:
    room: LiveKitRoomName
    sid: str
    identity: str
    name: str
    at_ms: int


@dataclass(frozen=True)
class EgressEnded:
    room: LiveKitRoomName
    egress_id: str
    # The file is there and usable (EGRESS_COMPLETE, or EGRESS_LIMIT_REACHED: cut short).
    usable: bool
    filename: str
    started_ns: int
    error: str
    at_ms: int


LiveKitEvent = RoomStarted | RoomFinished | ParticipantJoined | ParticipantLeft | EgressEnded

_USABLE = {egress.EgressStatus.EGRESS_COMPLETE, egress.EgressStatus.EGRESS_LIMIT_REACHED}


class WebhookVerifier:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self._receiver = api.WebhookReceiver(api.TokenVerifier(api_key, api_secret))

    def verify(self, body: bytes, authorization: str | None) -> WebhookEvent:
        if not authorization:
            raise WebhookRejected("no Authorization header")
        try:
            text = body.decode("utf-8")
            return self._receiver.receive(text, authorization)
        except Exception as err:  # livekit-api raises bare Exception for hash mismatches
            raise WebhookRejected(f"invalid webhook: {err}") from err


def translate(event: WebhookEvent) -> LiveKitEvent | None:
    """The domain event a webhook stands for, or None for the ones the bridge ignores."""
    room = LiveKitRoomName(event.room.name or event.egress_info.room_name)
    at_ms = event.created_at * 1000
    if not room:
        return None
    match event.event:
        case "egress_ended":
            info = event.egress_info
            result = info.file_results[0] if info.file_results else info.file
            return EgressEnded(
                room=LiveKitRoomName(info.room_name),
                egress_id=info.egress_id,
                usable=info.status in _USABLE and bool(result.filename),
                filename=result.location or result.filename,
                started_ns=result.started_at or info.started_at,
                error=info.error,
                at_ms=at_ms,
            )
        case "room_started":
            return RoomStarted(room, at_ms)
        case "room_finished":
            return RoomFinished(room, at_ms)
        case "participant_joined" | "participant_left" | "participant_connection_aborted":
            participant = event.participant
            if participant.kind not in PEOPLE_KINDS or not participant.sid:
                return None
            if event.event == "participant_joined":
                joined_ms = participant.joined_at_ms or participant.joined_at * 1000 or at_ms
                return ParticipantJoined(
                    room, participant.sid, participant.identity, participant.name, joined_ms
                )
            return ParticipantLeft(
                room, participant.sid, participant.identity, participant.name, at_ms
            )
    return None
