"""Rate limits on the public routes hold back one abuser without locking out everyone else.

Fast tier: the bridge's real routes on loopback, time moved by the manual clock. A second client
address is real (a socket bound to 127.0.0.2), or, behind a trusted reverse proxy (127.0.0.1
here), the one the proxy forwards in `X-Forwarded-For`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fakes.matrix import Sent
from fast import ALICE, ROOM, FastBridge
from harness import DatabaseTarget, ManualClock, bridge_config
from livekit_double import LiveKitDouble

from appservice.http.join_page import JOIN_RATE, MEETING_JOIN_RATE, PAGE_RATE, POLL_RATE
from appservice.http.token_api import PER_ADDRESS
from appservice.settings import ConfigError, parse_settings
from bridge.rate_limit import ClientAddresses, ConcurrencyLimit, RateLimiter
from bridge.room_settings.config import ROOM_CONFIG_EVENT

BEHIND_PROXY = {"appservice": {"trusted_proxies": ["127.0.0.1"]}}
ANSWER_S = 5
TOO_MANY = 200  # more requests than any limit lets through


async def _meeting(fast: FastBridge, access: str = "guests") -> str:
    await fast.put_state(ROOM_CONFIG_EVENT, {"access": access})
    await fast.say("!visio")
    found = re.search(r"/m/([a-z-]+)", fast.notices()[-1])
    assert found, fast.notices()
    return found.group(1)


def _from(address: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A client whose socket has `address` (any 127.0.0.0/8 address reaches loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


def _forwarded(client: str) -> dict[str, str]:
    return {"X-Forwarded-For": client}


async def _answer(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    data: Any = None,
) -> int:
    async with http.request(
        method, url, headers=headers, data=data, allow_redirects=False
    ) as response:
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
        return response.status


async def _until_limited(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    data: Any = None,
) -> int:
    """Ask until answered 429; returns how many were answered before."""
    for answered in range(TOO_MANY):
        if await _answer(http, method, url, headers, data) == 429:
            return answered
    raise AssertionError(f"{method} {url}: never limited")


# --- client addresses behind a reverse proxy --------------------------------------------------


@pytest.mark.parametrize("fast", [BEHIND_PROXY], indirect=True)
async def test_behind_a_trusted_proxy_each_guest_has_their_own_bucket(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    page = f"{fast.base_url}/m/{slug}"
    async with _from() as proxy:
        assert await _until_limited(proxy, "GET", page, _forwarded("203.0.113.7")) == (
            PAGE_RATE.burst
        )
        # Another guest, through the same proxy: their own bucket.
        assert await _answer(proxy, "GET", page, _forwarded("198.51.100.4")) == 200
        # The proxy appends the address it saw: what the client wrote before it is not believed.
        for spoofed in range(3):
            headers = _forwarded(f"10.9.{spoofed}.1, 203.0.113.7")
            assert await _answer(proxy, "GET", page, headers) == 429


@pytest.mark.parametrize(
    "fast", [{}, {"appservice": {"trusted_proxies": ["10.0.0.0/8", "::1"]}}], indirect=True
)
async def test_the_header_from_an_untrusted_peer_is_ignored(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    page = f"{fast.base_url}/m/{slug}"
    async with _from() as client:
        assert await _until_limited(client, "GET", page, _forwarded("203.0.113.7")) == (
            PAGE_RATE.burst
        )
        assert await _answer(client, "GET", page, _forwarded("198.51.100.4")) == 429


def test_the_client_is_the_right_most_address_no_trusted_proxy_wrote() -> None:
    addresses = ClientAddresses(["127.0.0.1", "10.0.0.0/8"])
    assert addresses.of("127.0.0.1", ["203.0.113.7"]) == "203.0.113.7"
    # Two trusted proxies in a row, a forged entry on the left, a header split in two.
    assert addresses.of("127.0.0.1", ["6.6.6.6, 203.0.113.7", "10.1.2.3"]) == "203.0.113.7"
    assert addresses.of("127.0.0.1", ["[2001:db8::1]:4711"]) == "2001:db8::/64"
    assert addresses.of("127.0.0.1", ["192.0.2.1:80"]) == "192.0.2.1"
    # A hop that is no address ends the walk: never a key the client could vary.
    assert addresses.of("127.0.0.1", ["203.0.113.7, unknown, 10.0.0.2"]) == "10.0.0.2"
    # Only trusted hops: the farthest one.
    assert addresses.of("127.0.0.1", ["10.0.0.9, 10.0.0.2"]) == "10.0.0.9"
    # No header: the proxy itself.
    assert addresses.of("127.0.0.1", []) == "127.0.0.1"
    # An untrusted peer's header is never read.
    assert addresses.of("198.51.100.4", ["203.0.113.7"]) == "198.51.100.4"
    assert ClientAddresses().of("127.0.0.1", ["203.0.113.7"]) == "127.0.0.1"
    # IPv6 clients count by their /64; IPv4 seen over IPv6 as itself.
    assert ClientAddresses().of("2001:db8:1:2:a::1") == "2001:db8:1:2::/64"
    assert ClientAddresses().of("::ffff:192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize(
    ("proxies", "problem"),
    [
        ("127.0.0.1", "must be a list of addresses or networks"),
        (["10.0.0.0/8", "proxy.example.org"], "not an address or network: 'proxy.example.org'"),
    ],
)
def test_trusted_proxies_must_be_addresses(
    tmp_path: Path, livekit: LiveKitDouble, proxies: object, problem: str
) -> None:
    config = bridge_config(
        synapse_port=1,
        bridge_port=2,
        livekit=livekit,
        database=DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {}),
        overrides={"appservice": {"trusted_proxies": proxies}},
    )
    with pytest.raises(ConfigError, match=re.escape(f"appservice.trusted_proxies: {problem}")):
        parse_settings(config, tmp_path, {}, need_tokens=False)


# --- per meeting: nobody drains it for everyone -----------------------------------------------


async def test_one_address_cannot_lock_the_meetings_guests_out(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    page = f"{fast.base_url}/m/{slug}"
    form = {"name": "Mallory"}
    async with _from("127.0.0.1") as mallory:
        assert await _until_limited(mallory, "POST", page, data=form) == JOIN_RATE.burst
        for _ in range(50):  # and keeps going, refused
            assert await _answer(mallory, "POST", page, data=form) == 429
    async with _from("127.0.0.2") as guest:
        assert await _answer(guest, "POST", page, data={"name": "Zoé"}) == 303


@pytest.mark.parametrize("fast", [BEHIND_PROXY], indirect=True)
async def test_a_meeting_keeps_a_ceiling_many_addresses_reach(fast: FastBridge) -> None:
    """The bound on a meeting (and on the lobby notices in its room) is still there."""
    slug = await _meeting(fast)
    page = f"{fast.base_url}/m/{slug}"
    joined = 0
    async with _from() as proxy:
        for client in range(TOO_MANY):
            headers = _forwarded(f"203.0.113.{client}")
            answered = await _until_limited(proxy, "POST", page, headers, {"name": "Bot"})
            joined += answered
            if answered == 0:
                break
    assert joined == MEETING_JOIN_RATE.burst
    fast.clock.now += 60_000  # the meeting's bucket refills
    async with _from() as proxy:
        assert (
            await _answer(proxy, "POST", page, _forwarded("198.51.100.4"), {"name": "Zoé"}) == 303
        )


# --- every public route is limited ----------------------------------------------------------


async def test_get_routes_answer_429_past_their_limit(fast: FastBridge) -> None:
    slug = await _meeting(fast)
    routes = {
        f"/m/{slug}": PAGE_RATE.burst,
        f"/widget/{slug}": PAGE_RATE.burst,
        "/api/lobby/no-such-request": POLL_RATE.burst,
    }
    async with _from() as client:
        for path, burst in routes.items():
            assert await _until_limited(client, "GET", fast.base_url + path) == burst, path
        async with client.get(f"{fast.base_url}/api/lobby/no-such-request") as response:
            assert response.status == 429
            assert await response.json() == {
                "errcode": "M_LIMIT_EXCEEDED",
                "error": "Trop de tentatives\u00a0: réessayez dans quelques secondes.",
                "retry_after_ms": int(response.headers["Retry-After"]) * 1000,
            }
        async with client.get(f"{fast.base_url}/m/{slug}?lang=en") as response:
            assert response.status == 429
            assert "Too many attempts" in await response.text()
        fast.clock.now += 60_000
        for path in routes:
            assert await _answer(client, "GET", fast.base_url + path) in (200, 404), path


@pytest.mark.parametrize(("fast", "clients"), [({}, 1), (BEHIND_PROXY, 3)], indirect=["fast"])
async def test_the_token_api_counts_each_client(fast: FastBridge, clients: int) -> None:
    """Behind the trusted proxy each forwarded client has its own bucket; without, every
    forwarded address is the one socket's."""
    slug = await _meeting(fast)
    body = {"slug": slug, "openid_token": "not an object"}  # refused (400), but counted
    url = f"{fast.base_url}/api/token"
    answered = 0
    async with _from() as http:
        for attempt in range(TOO_MANY):
            headers = _forwarded(f"203.0.113.{attempt % 3}")
            async with http.post(url, json=body, headers=headers) as response:
                if response.status == 429:
                    assert (await response.json())["errcode"] == "M_LIMIT_EXCEEDED"
                    assert int(response.headers["Retry-After"]) >= 1
                    break
                assert response.status == 400
                answered += 1
    assert answered == clients * PER_ADDRESS.burst


# --- the lobby's long-polls -----------------------------------------------------------------


async def _knock(fast: FastBridge, slug: str) -> str:
    async with (
        _from() as http,
        http.post(f"{fast.base_url}/m/{slug}", data={"name": "Zoé"}) as page,
    ):
        assert page.status == 200
        found = re.search(r'"id": "([A-Za-z0-9_-]+)"', await page.text())
    assert found
    return found.group(1)


async def _poll(url: str, address: str) -> tuple[int, dict[str, Any]]:
    async with _from(address) as http, http.get(url) as response:
        return response.status, dict(await response.json())


def _lobby_notice(fast: FastBridge) -> Sent:
    [notice] = [s for s in fast.matrix.in_room(ROOM, "notice") if "demande à entrer" in s.body]
    return notice


async def _waiting(fast: FastBridge, polls: int) -> None:
    """Until `polls` long-polls hold a slot."""
    for _ in range(5000):
        if fast.running.join_page.limits.polls.in_use() == polls:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{fast.running.join_page.limits.polls.in_use()} polls, not {polls}")


@pytest.mark.parametrize(
    "fast", [{"appservice": {"lobby_polls_per_address": 3, "lobby_polls": 5}}], indirect=True
)
async def test_concurrent_long_polls_are_capped(fast: FastBridge) -> None:
    slug = await _meeting(fast, access="lobby")
    url = f"{fast.base_url}/api/lobby/{await _knock(fast, slug)}"
    held = [asyncio.create_task(_poll(url, "127.0.0.1")) for _ in range(3)]
    await _waiting(fast, 3)
    # The fourth from the same address is refused at once, and told when to come back.
    async with _from("127.0.0.1") as http, http.get(url) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["errcode"] == "M_LIMIT_EXCEEDED"
    # Others still have room, up to the cap on all of them.
    held += [asyncio.create_task(_poll(url, "127.0.0.2")) for _ in range(2)]
    await _waiting(fast, 5)
    status, _ = await asyncio.wait_for(_poll(url, "127.0.0.3"), ANSWER_S)
    assert status == 429
    # A decision answers every waiting page, and gives the slots back.
    relation = {"rel_type": "m.annotation", "event_id": _lobby_notice(fast).event_id, "key": "⛔"}
    await fast.event(
        {
            "type": "m.reaction",
            "sender": ALICE,
            "room_id": ROOM,
            "content": {"m.relates_to": relation},
        }
    )
    answers = await asyncio.wait_for(asyncio.gather(*held), ANSWER_S)
    assert answers == [(200, {"state": "refused"})] * 5
    assert fast.running.join_page.limits.polls.in_use() == 0
    assert await asyncio.wait_for(_poll(url, "127.0.0.1"), ANSWER_S) == (200, {"state": "refused"})


# --- the limiter itself -----------------------------------------------------------------------


def test_the_bucket_table_stays_bounded() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, per_minute=60, burst=5, max_keys=100)
    for n in range(1000):  # every key busy: the least recently used are forgotten
        assert limiter.allow(f"client-{n}")
    assert len(limiter) == 100
    # Idle buckets (full again) go as traffic comes, long before the table is full.
    clock.now += 5_000
    for _ in range(60):
        limiter.allow("busy")
    assert len(limiter) < 10


def test_a_refused_key_is_told_when_to_come_back() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, per_minute=6, burst=1)  # a token every 10 s
    assert limiter.allow("a") and not limiter.allow("a")
    assert limiter.retry_after_s("a") == 10
    clock.now += 9_500
    assert limiter.retry_after_s("a") == 1 and not limiter.allow("a")
    clock.now += 500
    assert limiter.allow("a")


def test_concurrency_slots_per_key_and_in_all() -> None:
    slots = ConcurrencyLimit(per_key=2, total=3)
    assert slots.acquire("a") and slots.acquire("a") and not slots.acquire("a")
    assert slots.acquire("b") and not slots.acquire("c")
    slots.release("a")
    assert slots.acquire("c") and slots.in_use() == 3 and slots.in_use("a") == 1
    for key in ("a", "b", "c", "c"):  # a release too many is harmless
        slots.release(key)
    assert slots.in_use() == 0
