"""The LiveKit port: the narrow set of server calls the domain makes, and its livekit-api adapter.

One `LiveKitAPI` client is made at start-up and closed at shutdown (see `appservice/app.py`).
Every failure is translated to `LiveKitError`, with `unreachable` telling "LiveKit is down"
apart from "LiveKit said no", because the user-facing message differs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from livekit import api
from livekit.protocol import models

from bridge.ids import LiveKitRoomName
from bridge.ports import LiveKitError, LiveParticipant, LiveRoom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoomOptions:
    """Options for each LiveKit room the bridge creates (defaults as Element Call's service)."""

    empty_timeout: int = 300
    departure_timeout: int = 20
    max_participants: int = 0


# Recorders and agents are not people: they neither count nor keep a meeting "in use".
PEOPLE_KINDS = frozenset({models.ParticipantInfo.Kind.STANDARD, models.ParticipantInfo.Kind.SIP})


class LiveKitAdapter:
    """`LiveKitRooms` over livekit-api's Twirp client."""

    def __init__(
        self, client: api.LiveKitAPI, options: RoomOptions, *, call_timeout_s: float = 10.0
    ) -> None:
        self._client = client
        self._options = options
        # livekit-api passes no timeout to aiohttp per request, so its own `timeout` setting
        # never applies: without this bound a hung LiveKit would hang the command forever.
        self._timeout = call_timeout_s

    async def create_room(
        self, name: LiveKitRoomName, metadata: str, max_participants: int = 0
    ) -> LiveRoom:
        request = api.CreateRoomRequest(
            name=name,
            empty_timeout=self._options.empty_timeout,
            departure_timeout=self._options.departure_timeout,
            max_participants=max_participants or self._options.max_participants,
            metadata=metadata,
        )
        async with _translated_errors("CreateRoom", name), asyncio.timeout(self._timeout):
            room = await self._client.room.create_room(request)
        return LiveRoom(LiveKitRoomName(room.name), room.sid, room.num_participants)

    async def delete_room(self, name: LiveKitRoomName) -> bool:
        try:
            async with _translated_errors("DeleteRoom", name), asyncio.timeout(self._timeout):
                await self._client.room.delete_room(api.DeleteRoomRequest(room=name))
        except LiveKitError as err:
            if err.code == "not_found":
                return False
            raise
        return True

    async def list_rooms(self, names: list[LiveKitRoomName] | None = None) -> list[LiveRoom]:
        rooms = ",".join(names or [])
        async with _translated_errors("ListRooms", rooms), asyncio.timeout(self._timeout):
            response = await self._client.room.list_rooms(api.ListRoomsRequest(names=names or []))
        return [
            LiveRoom(LiveKitRoomName(room.name), room.sid, room.num_participants)
            for room in response.rooms
        ]

    async def list_participants(self, name: LiveKitRoomName) -> list[LiveParticipant]:
        try:
            async with _translated_errors("ListParticipants", name), asyncio.timeout(self._timeout):
                response = await self._client.room.list_participants(
                    api.ListParticipantsRequest(room=name)
                )
        except LiveKitError as err:
            if err.code == "not_found":
                return []
            raise
        return [
            LiveParticipant(p.sid, p.identity, p.name, p.joined_at_ms or p.joined_at * 1000)
            for p in response.participants
            if p.kind in PEOPLE_KINDS
        ]

    async def send_data(self, name: LiveKitRoomName, payload: bytes, topic: str) -> None:
        request = api.SendDataRequest(
            room=name, data=payload, kind=models.DataPacket.Kind.RELIABLE, topic=topic
        )
        async with _translated_errors("SendData", name), asyncio.timeout(self._timeout):
            await self._client.room.send_data(request)

    async def update_room_metadata(self, name: LiveKitRoomName, metadata: str) -> None:
        request = api.UpdateRoomMetadataRequest(room=name, metadata=metadata)
        async with _translated_errors("UpdateRoomMetadata", name), asyncio.timeout(self._timeout):
            await self._client.room.update_room_metadata(request)

    async def start_audio_recording(self, name: LiveKitRoomName, filepath: str) -> str:
        request = api.RoomCompositeEgressRequest(
            room_name=name,
            audio_only=True,
            file_outputs=[
                api.EncodedFileOutput(file_type=api.EncodedFileType.OGG, filepath=filepath)
            ],
        )
        async with (
            _translated_errors("StartRoomCompositeEgress", name),
            asyncio.timeout(self._timeout),
        ):
            info = await self._client.egress.start_room_composite_egress(request)
        return str(info.egress_id)

    async def stop_recording(self, egress_id: str) -> None:
        try:
            async with _translated_errors("StopEgress", egress_id), asyncio.timeout(self._timeout):
                await self._client.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        except LiveKitError as err:
            if err.code in ("not_found", "failed_precondition"):
                return  # already over
            raise


class _translated_errors:
    def __init__(self, method: str, room: str) -> None:
        self._method = method
        self._room = room

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        if exc is None:
            return False
        if isinstance(exc, api.TwirpError):
            raise LiveKitError(
                f"LiveKit {self._method} for {self._room!r} refused: {exc.code} {exc.message}",
                unreachable=exc.status >= 500,
                code=exc.code,
            ) from exc
        if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
            raise LiveKitError(
                f"LiveKit {self._method} for {self._room!r}: no answer ({exc!r})",
                unreachable=True,
            ) from exc
        return False
