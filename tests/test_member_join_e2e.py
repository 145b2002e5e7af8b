"""`POST /api/token`: members prove who they are with OpenID; tokens are for them and one room."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from harness import Human, Stack
from livekit.api import TokenVerifier

pytestmark = pytest.mark.synapse


async def openid_token(stack: Stack, human: Human) -> dict[str, Any]:
    """What a Matrix client gets from its homeserver (and hands to widgets)."""
    url = f"{stack.synapse.base_url}/_matrix/client/v3/user/{human.user_id}/openid/request_token"
    headers = {"Authorization": f"Bearer {human.client.access_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={}, headers=headers) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())


async def ask_token(stack: Stack, body: Any) -> tuple[int, dict[str, Any]]:
    url = f"{stack.settings.appservice.address}/api/token"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as response:
            return response.status, dict(await response.json())


async def live_meeting(stack: Stack, starter: Human) -> tuple[str, str]:
    room = await stack.room_with_bot(starter)
    await starter.send(room, "!visio")
    [status] = await starter.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
    assert slug
    return room, slug.group(1)


def verify(stack: Stack, token: str) -> Any:
    return TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(token)


async def test_a_member_gets_a_token_for_themselves_in_that_room(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")  # room creator: moderator
    bob = await stack.human("bob", "Bob")
    room, slug = await live_meeting(stack, alice)
    await alice.client.room_invite(room, bob.user_id)
    await bob.client.join(room)
    for human, admin in ((alice, True), (bob, False)):
        openid = await openid_token(stack, human)
        status, body = await ask_token(
            stack, {"slug": slug, "user_id": human.user_id, "openid_token": openid}
        )
        assert status == 200, body
        claims = verify(stack, body["token"])
        assert claims.identity == human.user_id == body["identity"]
        assert claims.name == ("Alice" if admin else "Bob")
        assert claims.video.room == f"visio-{slug}" and claims.video.room_join
        assert bool(claims.video.room_admin) is admin
        assert not claims.video.room_create
        # The built-in call page: the token rides in a fragment its script reads, never a URL
        # a browser would send anywhere.
        assert body["frontend_url"].startswith("#livekit_url=")


async def test_a_non_member_is_forbidden(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    mallory = await stack.human("mallory", "Mallory")
    _, slug = await live_meeting(stack, alice)
    openid = await openid_token(stack, mallory)
    status, body = await ask_token(stack, {"slug": slug, "openid_token": openid})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_forged_or_mismatched_openid_is_unauthorized(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    bob = await stack.human("bob", "Bob")
    _, slug = await live_meeting(stack, alice)
    forged = {"access_token": "forged-token", "matrix_server_name": "localhost"}
    status, body = await ask_token(stack, {"slug": slug, "openid_token": forged})
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    # Bob's real token, claiming to be Alice.
    bobs = await openid_token(stack, bob)
    status, body = await ask_token(
        stack, {"slug": slug, "user_id": alice.user_id, "openid_token": bobs}
    )
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    # A token whose server name lies about its homeserver is not accepted either.
    lying = {**bobs, "matrix_server_name": "127.0.0.1:1"}
    status, body = await ask_token(stack, {"slug": slug, "openid_token": lying})
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_no_live_meeting_and_bad_requests(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    room, slug = await live_meeting(stack, alice)
    openid = await openid_token(stack, alice)
    status, body = await ask_token(stack, {"slug": "zzz-zzzz-zzz", "openid_token": openid})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    await alice.send(room, "!visio end")
    await alice.wait_for(room, lambda e: "Visio terminée par Alice" in e["content"]["body"])
    status, body = await ask_token(stack, {"slug": slug, "openid_token": openid})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await ask_token(stack, {"slug": slug, "openid_token": "nope"})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_rate_limited_per_address(stack: Stack) -> None:
    alice = await stack.human("alice", "Alice")
    _, slug = await live_meeting(stack, alice)
    forged = {"access_token": "forged", "matrix_server_name": "localhost"}
    answers = await asyncio.gather(
        *(ask_token(stack, {"slug": slug, "openid_token": forged}) for _ in range(15))
    )
    codes = [body["errcode"] for _, body in answers]
    assert codes.count("M_LIMIT_EXCEEDED") >= 4
    assert set(codes) == {"M_UNAUTHORIZED", "M_LIMIT_EXCEEDED"}
