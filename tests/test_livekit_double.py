"""Tests for tests/livekit_double.py, driven only through the real livekit-api client, raw
HTTP and a real webhook receiver: if these pass, the double speaks LiveKit's wire protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import jwt
import pytest
from aiohttp import web
from livekit.api import (
    LiveKitAPI,
    TokenVerifier,
    TwirpError,
    VideoGrants,
    WebhookReceiver,
)
from livekit.protocol import egress as proto_egress
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room
from livekit.protocol.webhook import WebhookEvent

try:
    # tests/ has no __init__.py, so pytest puts tests/ itself on sys.path (plain `pytest` too).
    from livekit_double import LiveKitDouble
except ModuleNotFoundError:  # tests/ turned into a package
    from tests.livekit_double import LiveKitDouble

WRONG_SECRET = "not-the-right-secret-0123456789abcdef"


@dataclass
class Receiver:
    """A minimal webhook endpoint verifying exactly like a LiveKit-consuming app would."""

    url: str
    verified: list[WebhookEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return [ev.event for ev in self.verified]


@pytest.fixture
async def lk() -> AsyncIterator[LiveKitDouble]:
    async with LiveKitDouble() as double:
        yield double


@pytest.fixture
async def api(lk: LiveKitDouble) -> AsyncIterator[LiveKitAPI]:
    async with LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as client:
        yield client


@pytest.fixture
async def receiver(lk: LiveKitDouble) -> AsyncIterator[Receiver]:
    checker = WebhookReceiver(TokenVerifier(lk.api_key, lk.api_secret))
    rec = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        body = await request.text()
        assert request.content_type == "application/webhook+json"
        try:
            rec.verified.append(checker.receive(body, request.headers.get("Authorization", "")))
        except Exception as exc:
            rec.rejected.append(repr(exc))
            return web.Response(status=401)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    lk.webhook_url = rec.url
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_create_room_is_idempotent_and_rooms_can_be_listed_and_deleted(
    lk: LiveKitDouble, api: LiveKitAPI
) -> None:
    first = await api.room.create_room(proto_room.CreateRoomRequest(name="r1", empty_timeout=60))
    again = await api.room.create_room(proto_room.CreateRoomRequest(name="r1"))
    await api.room.create_room(proto_room.CreateRoomRequest(name="r2", metadata="m"))

    assert first.sid.startswith("RM_")
    assert again.sid == first.sid
    assert first.empty_timeout == 60
    assert first.creation_time > 0
    listed = await api.room.list_rooms(proto_room.ListRoomsRequest())
    assert sorted(r.name for r in listed.rooms) == ["r1", "r2"]
    only = await api.room.list_rooms(proto_room.ListRoomsRequest(names=["r2"]))
    assert [(r.name, r.metadata) for r in only.rooms] == [("r2", "m")]

    await api.room.delete_room(proto_room.DeleteRoomRequest(room="r1"))
    assert list(lk.rooms) == ["r2"]
    with pytest.raises(TwirpError) as err:
        await api.room.delete_room(proto_room.DeleteRoomRequest(room="r1"))
    assert (err.value.code, err.value.status) == ("not_found", 404)

    create_calls = lk.calls("CreateRoom")
    assert len(create_calls) == 3
    assert create_calls[0].content_type == "application/protobuf"
    # The raw `video` claim, camelCase as on the wire.
    assert create_calls[0].grants["roomCreate"] is True
    assert isinstance(create_calls[0].request, proto_room.CreateRoomRequest)
    assert [c.status for c in lk.calls("DeleteRoom")] == [200, 404]


async def test_missing_grant_is_permission_denied(lk: LiveKitDouble) -> None:
    await lk.join("admin-room", "alice", create_room=True)
    list_only = lk.make_token(VideoGrants(room_list=True))
    async with LiveKitAPI.with_token(list_only, lk.url) as client:
        with pytest.raises(TwirpError) as err:
            await client.room.create_room(proto_room.CreateRoomRequest(name="nope"))
        assert (err.value.code, err.value.status) == ("permission_denied", 403)
        await client.room.list_rooms(proto_room.ListRoomsRequest())  # roomList suffices

    # roomAdmin is scoped to one room.
    other_room = lk.make_token(VideoGrants(room_admin=True, room="elsewhere"))
    async with LiveKitAPI.with_token(other_room, lk.url) as client:
        with pytest.raises(TwirpError) as err:
            await client.room.list_participants(
                proto_room.ListParticipantsRequest(room="admin-room")
            )
        assert err.value.code == "permission_denied"
    assert "nope" not in lk.rooms
    assert [c.status for c in lk.calls("CreateRoom")] == [403]


async def test_bad_credentials_are_unauthenticated(lk: LiveKitDouble) -> None:
    async with LiveKitAPI(lk.url, lk.api_key, WRONG_SECRET) as client:
        with pytest.raises(TwirpError) as err:
            await client.room.list_rooms(proto_room.ListRoomsRequest())
    assert (err.value.code, err.value.status) == ("unauthenticated", 401)

    async with LiveKitAPI(lk.url, "otherkey", lk.api_secret) as client:
        with pytest.raises(TwirpError) as err:
            await client.room.list_rooms(proto_room.ListRoomsRequest())
    assert err.value.status == 401

    expired = jwt.encode(
        {"iss": lk.api_key, "exp": int(time.time()) - 3600, "video": {"roomList": True}},
        lk.api_secret,
        algorithm="HS256",
    )
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"Authorization": f"Bearer {expired}"},
            {"Authorization": lk.make_token(VideoGrants(room_list=True))},  # no "Bearer "
        ):
            async with http.post(
                f"{lk.url}/twirp/livekit.RoomService/ListRooms",
                json={},
                headers=headers,
            ) as resp:
                assert resp.status == 401
                assert (await resp.json())["code"] == "unauthenticated"
    assert lk.requests == []  # unauthenticated calls never reach the service


async def test_json_content_type_round_trip(lk: LiveKitDouble) -> None:
    token = lk.make_token(VideoGrants(room_create=True), identity="json-client")
    url = f"{lk.url}/twirp/livekit.RoomService/CreateRoom"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, json={"name": "json-room", "emptyTimeout": 42}, headers=headers
        ) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            room = await resp.json()
        async with http.post(
            url,
            data="{not json",
            headers={**headers, "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["code"] == "malformed"
        async with http.post(
            f"{lk.url}/twirp/livekit.RoomService/NoSuchMethod", json={}, headers=headers
        ) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == "bad_route"

    assert room["name"] == "json-room"
    assert room["sid"].startswith("RM_")
    assert room["empty_timeout"] == 42  # Twirp's JSON uses proto field names
    call = lk.calls("CreateRoom")[0]
    assert (call.content_type, call.identity) == ("application/json", "json-client")
    assert lk.rooms["json-room"].sid == room["sid"]


async def test_fail_next_and_delay(lk: LiveKitDouble, api: LiveKitAPI) -> None:
    lk.fail_next("CreateRoom", status=409, code="already_exists", msg="boom", times=2)
    for _ in range(2):
        with pytest.raises(TwirpError) as err:
            await api.room.create_room(proto_room.CreateRoomRequest(name="flaky"))
        assert (err.value.code, err.value.message, err.value.status) == (
            "already_exists",
            "boom",
            409,
        )
    assert "flaky" not in lk.rooms
    await api.room.create_room(proto_room.CreateRoomRequest(name="flaky"))
    assert [c.status for c in lk.calls("CreateRoom")] == [409, 409, 200]

    # delay applies per call and calls are served concurrently.
    lk.delay = 0.25
    started = time.monotonic()
    await asyncio.gather(
        api.room.list_rooms(proto_room.ListRoomsRequest()),
        api.room.list_rooms(proto_room.ListRoomsRequest()),
    )
    assert 0.25 <= time.monotonic() - started < 0.45  # sequential would be >= 0.5
    # Surprise in livekit-api 1.2.2: TwirpClient passes timeout=None per call, which aiohttp
    # reads as "no timeout", so the client's own timeout (default 10 s) is silently ignored.
    # Callers must bound calls themselves, e.g. with asyncio.timeout().
    async with LiveKitAPI(
        lk.url, lk.api_key, lk.api_secret, timeout=aiohttp.ClientTimeout(total=0.05)
    ) as impatient:
        await impatient.room.list_rooms(proto_room.ListRoomsRequest())  # takes 0.25 s, no error
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await impatient.room.list_rooms(proto_room.ListRoomsRequest())


async def test_participants_and_data(lk: LiveKitDouble, api: LiveKitAPI) -> None:
    await api.room.create_room(proto_room.CreateRoomRequest(name="p"))
    alice = await lk.join("p", "alice", name="Alice", metadata="{}")
    track = await lk.publish_track("p", "alice")
    await lk.join("p", "bob")

    listed = await api.room.list_participants(proto_room.ListParticipantsRequest(room="p"))
    assert [p.identity for p in listed.participants] == ["alice", "bob"]
    got = await api.room.get_participant(
        proto_room.RoomParticipantIdentity(room="p", identity="alice")
    )
    assert (got.sid, got.name, got.state) == (
        alice.sid,
        "Alice",
        proto_models.ParticipantInfo.State.ACTIVE,
    )
    muted = await api.room.mute_published_track(
        proto_room.MuteRoomTrackRequest(room="p", identity="alice", track_sid=track.sid, muted=True)
    )
    assert muted.track.muted
    updated = await api.room.update_participant(
        proto_room.UpdateParticipantRequest(
            room="p", identity="bob", name="Bob", attributes={"a": "1"}
        )
    )
    assert (updated.name, dict(updated.attributes)) == ("Bob", {"a": "1"})
    room = await api.room.update_room_metadata(
        proto_room.UpdateRoomMetadataRequest(room="p", metadata="meta")
    )
    assert (room.metadata, room.num_participants) == ("meta", 2)
    await api.room.send_data(
        proto_room.SendDataRequest(
            room="p", data=b"hi", topic="chat", destination_identities=["bob"]
        )
    )
    assert [(d.payload, d.topic, d.destination_identities) for d in lk.sent_data] == [
        (b"hi", "chat", ["bob"])
    ]
    await api.room.remove_participant(proto_room.RoomParticipantIdentity(room="p", identity="bob"))
    with pytest.raises(TwirpError) as err:
        await api.room.get_participant(proto_room.RoomParticipantIdentity(room="p", identity="bob"))
    assert err.value.code == "not_found"


async def test_egress_start_stop(lk: LiveKitDouble, api: LiveKitAPI, receiver: Receiver) -> None:
    await api.room.create_room(proto_room.CreateRoomRequest(name="rec"))
    started = await api.egress.start_room_composite_egress(
        proto_egress.RoomCompositeEgressRequest(
            room_name="rec",
            layout="grid",
            file_outputs=[proto_egress.EncodedFileOutput(filepath="out/rec.mp4")],
        )
    )
    assert started.egress_id.startswith("EG_")
    assert started.status == proto_egress.EgressStatus.EGRESS_ACTIVE
    assert started.room_composite.layout == "grid"
    active = await api.egress.list_egress(
        proto_egress.ListEgressRequest(room_name="rec", active=True)
    )
    assert [e.egress_id for e in active.items] == [started.egress_id]

    stopped = await api.egress.stop_egress(
        proto_egress.StopEgressRequest(egress_id=started.egress_id)
    )
    assert stopped.status == proto_egress.EgressStatus.EGRESS_COMPLETE
    assert stopped.file_results[0].filename == "out/rec.mp4"
    assert stopped.started_at <= stopped.ended_at
    assert stopped.ended_at > 10**18  # nanoseconds
    active = await api.egress.list_egress(proto_egress.ListEgressRequest(active=True))
    assert list(active.items) == []
    with pytest.raises(TwirpError) as err:
        await api.egress.start_room_composite_egress(
            proto_egress.RoomCompositeEgressRequest(room_name="missing")
        )
    assert err.value.status == 404

    assert receiver.names() == ["room_started", "egress_started", "egress_ended"]
    assert receiver.verified[2].egress_info.file_results[0].filename == "out/rec.mp4"

    room_token_only = lk.make_token(VideoGrants(room_create=True))
    async with LiveKitAPI.with_token(room_token_only, lk.url) as client:
        with pytest.raises(TwirpError) as err:
            await client.egress.list_egress(proto_egress.ListEgressRequest())
    assert err.value.code == "permission_denied"


async def test_webhooks_are_verifiable(
    lk: LiveKitDouble, api: LiveKitAPI, receiver: Receiver
) -> None:
    room = await api.room.create_room(proto_room.CreateRoomRequest(name="w"))
    alice = await lk.join("w", "alice")
    await lk.join("w", "bob")
    await lk.leave("w", "alice")
    await lk.leave("w", "bob", aborted=True)
    await lk.join("w", "carol")
    await lk.finish_room("w")

    assert receiver.rejected == []
    assert receiver.names() == [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_left",
        "participant_connection_aborted",
        "participant_joined",
        "participant_left",  # carol, disconnected by the room closing
        "room_finished",
    ]
    joined = receiver.verified[1]
    assert (joined.room.sid, joined.participant.sid) == (room.sid, alice.sid)
    assert joined.id.startswith("EV_")
    assert abs(joined.created_at - time.time()) < 5
    assert len({ev.id for ev in receiver.verified}) == len(receiver.verified)
    assert receiver.verified[-1].room.name == "w"
    assert [status for _, status in lk.webhooks_sent] == [200] * 8

    # DeleteRoom through the API also ends with room_finished.
    await api.room.create_room(proto_room.CreateRoomRequest(name="w2"))
    await api.room.delete_room(proto_room.DeleteRoomRequest(room="w2"))
    assert receiver.names()[-1] == "room_finished"
    assert receiver.verified[-1].room_end_reason == proto_models.RoomEndReason.ROOM_END_API_DELETE


async def test_badly_signed_webhooks_fail_verification(
    lk: LiveKitDouble, receiver: Receiver
) -> None:
    event = WebhookEvent(event="room_started", room=proto_models.Room(name="x"))
    assert await lk.send_webhook(event, api_secret=WRONG_SECRET) == 401
    assert await lk.send_webhook(event, sign=False) == 401
    assert receiver.verified == []
    assert len(receiver.rejected) == 2
    assert await lk.send_webhook(event) == 200
    assert receiver.names() == ["room_started"]


async def test_async_webhook_delivery_keeps_order(receiver: Receiver) -> None:
    async with LiveKitDouble(webhook_url=receiver.url, sync_webhooks=False) as double:
        await double.join("a", "alice", create_room=True)
        await double.leave("a", "alice")
        await double.flush_webhooks()
    assert receiver.names()[-3:] == ["room_started", "participant_joined", "participant_left"]


async def test_stopped_double_refuses_connections() -> None:
    double = LiveKitDouble()
    await double.start()
    url = double.url
    await double.stop()
    async with LiveKitAPI(url, double.api_key, double.api_secret) as client:
        with pytest.raises(aiohttp.ClientConnectorError):
            await client.room.list_rooms(proto_room.ListRoomsRequest())
