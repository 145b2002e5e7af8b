"""`POST /api/token` must not let a stranger make the bridge connect where they like (SSRF).

The OpenID token names the homeserver that vouches for it, and the request is unauthenticated:
these tests are the review's probes (IP literals, loopback names, delegation, redirects, plain
http, huge answers, made-up links), each against real loopback servers. A raw TCP counter
proves that no connection was even opened; federated servers are played over TLS on loopback
by a lab guard (a resolver mapping names onto loopback ports, a policy allowing 127.0.0.1 only
and a context trusting the test certificate); everything else uses the production guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fast import ALICE, FastBridge
from harness import DatabaseTarget, ManualClock, bridge_config
from livekit_double import LiveKitDouble

from appservice.http.token_api import TokenAPI
from appservice.local.ports import free_port
from appservice.settings import ConfigError, parse_settings
from bridge.join.members import JoinRefused
from bridge.join.openid import OpenIDRejected, OpenIDVerifier
from bridge.join.outbound import MAX_BODY, OutboundGuard, is_public_address
from bridge.rate_limit import RateLimiter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LAB_NAMES = ["good.example", "matrix.good.example", "plain.example"]
SLUG = re.compile(r"/m/([a-z]{3}-[a-z]{4}-[a-z]{3})")


# --- loopback servers --------------------------------------------------------------------------


class Counter:
    """A raw TCP listener that only counts connections: zero means nothing was even tried."""

    def __init__(self) -> None:
        self.connections = 0

    def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


class Site:
    """An aiohttp app on loopback (http or https) that records the paths it was asked for."""

    def __init__(self, port: int, scheme: str) -> None:
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.paths: list[str] = []


class Lab:
    def __init__(self, stack: contextlib.AsyncExitStack, tmp: Path) -> None:
        self._stack = stack
        self.server_tls, self.client_tls = _tls_contexts(tmp)

    async def counter(self, *hosts: str) -> tuple[Counter, int]:
        """A `Counter` on a free port of each of `hosts` (default 127.0.0.1)."""
        counter, port = Counter(), free_port()
        server = await asyncio.start_server(counter._accept, list(hosts or ["127.0.0.1"]), port)
        self._stack.push_async_callback(server.wait_closed)
        self._stack.callback(server.close)
        return counter, port

    async def site(self, routes: dict[str, Handler], *, tls: bool = False) -> Site:
        site = Site(free_port(), "https" if tls else "http")

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            site.paths.append(request.path)
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        context = self.server_tls if tls else None
        await web.TCPSite(runner, "127.0.0.1", site.port, ssl_context=context).start()
        return site

    def guard(
        self, names: dict[tuple[str, int], tuple[str, int]], calls: list[str]
    ) -> OutboundGuard:
        """The lab's outbound guard: `names` is its DNS; only 127.0.0.1 counts as public."""

        async def resolve(host: str, port: int) -> list[tuple[str, int]]:
            calls.append(f"{host}:{port}")
            if (host, port) not in names:
                raise socket.gaierror(socket.EAI_NONAME, "unknown in the lab")
            return [names[(host, port)]]

        lab_public = ipaddress.IPv4Address("127.0.0.1")
        return OutboundGuard(
            resolver=resolve, allow_address=lambda a: a == lab_public, tls=self.client_tls
        )

    async def verifier(self, known: dict[str, str] | None = None, **kwargs: Any) -> OpenIDVerifier:
        verifier = OpenIDVerifier(known or {}, **kwargs)
        self._stack.push_async_callback(verifier.close)
        return verifier


def _tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for the lab's names: (server context, client trusting it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in LAB_NAMES]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "lab.crt").write_bytes(cert_pem)
    (tmp / "lab.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "lab.crt", tmp / "lab.key")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with contextlib.AsyncExitStack() as stack:
        yield Lab(stack, tmp_path)


def answer(body: Any, status: int = 200, **headers: str) -> Handler:
    async def handle(_request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return handle


def userinfo(sub: str) -> dict[str, Handler]:
    return {"/_matrix/federation/v1/openid/userinfo": answer({"sub": sub})}


USERINFO = "/_matrix/federation/v1/openid/userinfo"
# The guard's own reasons: a refusal for any other reason (unreachable…) proves nothing.
REFUSED = "not a public address|not a fully qualified name"
WELL_KNOWN = "/.well-known/matrix/server"


# --- the address policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104
        "224.0.0.1",  # multicast: `is_global` alone lets it through
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    ],
)
def test_inside_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# --- server names: refused before any connection -----------------------------------------------


@pytest.mark.parametrize(
    "server_name",
    [
        "127.0.0.1:{port}",
        "[::1]:{port}",
        "[::ffff:127.0.0.1]:{port}",
        "localhost:{port}",
        "localhost",
        "LocalHost:{port}",
        "127.1:{port}",  # a legacy form of 127.0.0.1
        "0x7f.1:{port}",
        "2130706433:{port}",
        "0.0.0.0:{port}",
        "10.0.0.1",
        "169.254.169.254",
    ],
)
async def test_inside_server_names_are_refused_without_a_connection(
    lab: Lab, server_name: str
) -> None:
    try:
        counter, port = await lab.counter("127.0.0.1", "::1")
    except OSError:  # no IPv6 loopback on this machine
        counter, port = await lab.counter()
    verifier = await lab.verifier({"home.test": "http://127.0.0.1:1"})
    with pytest.raises(OpenIDRejected, match=REFUSED):
        await verifier.verify("token", server_name.format(port=port))
    assert counter.connections == 0


@pytest.mark.parametrize(
    "answers",
    [[("127.0.0.1", "{port}")], [("93.184.215.14", "{port}"), ("127.0.0.1", "{port}")]],
    ids=["loopback", "public-and-loopback"],
)
async def test_a_name_that_resolves_inside_is_refused_without_a_connection(
    lab: Lab, answers: list[tuple[str, str]]
) -> None:
    counter, port = await lab.counter()
    calls: list[str] = []

    async def evil_dns(host: str, to_port: int) -> list[tuple[str, int]]:
        calls.append(f"{host}:{to_port}")
        return [(address, port) for address, _ in answers]

    # The production policy, with a resolver that says evil.example is this machine.
    verifier = await lab.verifier(guard=OutboundGuard(resolver=evil_dns))
    with pytest.raises(OpenIDRejected, match="not a public address"):
        await verifier.verify("token", f"evil.example:{port}")
    assert calls == [f"evil.example:{port}"]  # resolved once, and that answer was refused
    assert counter.connections == 0


async def test_the_allow_list_refuses_other_servers_before_any_lookup(lab: Lab) -> None:
    tls = await lab.site(userinfo("@alice:good.example:8448"), tls=True)
    calls: list[str] = []
    guard = lab.guard({("good.example", 8448): ("127.0.0.1", tls.port)}, calls)
    verifier = await lab.verifier(allowed_servers=["Good.Example:8448"], guard=guard)
    with pytest.raises(OpenIDRejected, match="openid_allowed_servers"):
        await verifier.verify("token", "other.example:8448")
    assert calls == [] and tls.paths == []
    assert await verifier.verify("token", "good.example:8448") == "@alice:good.example:8448"


# --- federation over the lab's TLS ---------------------------------------------------------------


async def test_a_public_homeserver_is_verified_over_https_through_its_delegation(lab: Lab) -> None:
    """The control: the guard lets ordinary federation through."""
    tokens: list[str] = []

    async def userinfo_handler(request: web.Request) -> web.StreamResponse:
        tokens.append(request.query["access_token"])
        return web.json_response({"sub": "@alice:good.example"})

    tls = await lab.site(
        {WELL_KNOWN: answer({"m.server": "matrix.good.example:8448"}), USERINFO: userinfo_handler},
        tls=True,
    )
    calls: list[str] = []
    names = {
        ("good.example", 443): ("127.0.0.1", tls.port),
        ("matrix.good.example", 8448): ("127.0.0.1", tls.port),
    }
    verifier = await lab.verifier(guard=lab.guard(names, calls))
    assert await verifier.verify("tok/en+", "good.example") == "@alice:good.example"
    assert tokens == ["tok/en+"]
    assert calls == ["good.example:443", "matrix.good.example:8448"]


@pytest.mark.parametrize(
    "delegation", ["inside.example:{port}", "127.0.0.2:{port}", "10.0.0.1", "localhost:{port}"]
)
async def test_a_delegation_inside_is_refused_without_a_connection(
    lab: Lab, delegation: str
) -> None:
    inside, port = await lab.counter("127.0.0.2")
    m_server = delegation.format(port=port)
    tls = await lab.site({WELL_KNOWN: answer({"m.server": m_server})}, tls=True)
    calls: list[str] = []
    names = {
        ("good.example", 443): ("127.0.0.1", tls.port),
        ("inside.example", port): ("127.0.0.2", port),
    }
    verifier = await lab.verifier(guard=lab.guard(names, calls))
    with pytest.raises(OpenIDRejected, match=f"{REFUSED}|delegates to"):
        await verifier.verify("token", "good.example")
    assert tls.paths == [WELL_KNOWN]
    assert inside.connections == 0


async def test_redirects_are_not_followed(lab: Lab) -> None:
    plain = await lab.site(userinfo("@alice:good.example") | {WELL_KNOWN: answer({})})
    to_plain = {"Location": f"{plain.url}{USERINFO}?access_token=token"}
    tls = await lab.site({USERINFO: answer({}, 302, **to_plain)}, tls=True)
    calls: list[str] = []
    names = {("good.example", 8448): ("127.0.0.1", tls.port)}
    verifier = await lab.verifier(guard=lab.guard(names, calls))
    with pytest.raises(OpenIDRejected, match="answered 302"):
        await verifier.verify("token", "good.example:8448")
    # A .well-known that redirects is no delegation: discovery falls back to port 8448.
    wk_tls = await lab.site(
        {WELL_KNOWN: answer({}, 301, Location=f"{plain.url}{WELL_KNOWN}")}, tls=True
    )
    names[("good.example", 443)] = ("127.0.0.1", wk_tls.port)
    with pytest.raises(OpenIDRejected, match="answered 302"):
        await verifier.verify("token", "good.example")
    assert wk_tls.paths == [WELL_KNOWN]
    # Not even our own homeserver is followed elsewhere.
    home = await lab.site({USERINFO: answer({}, 307, **to_plain)})
    verifier = await lab.verifier({"home.test": home.url})
    with pytest.raises(OpenIDRejected, match="answered 307"):
        await verifier.verify("token", "home.test")
    assert plain.paths == []


async def test_a_federated_server_is_only_spoken_to_over_https(lab: Lab) -> None:
    plain = await lab.site(userinfo("@alice:plain.example") | {WELL_KNOWN: answer({})})
    calls: list[str] = []
    names = {("plain.example", 8448): ("127.0.0.1", plain.port)}
    verifier = await lab.verifier(guard=lab.guard(names, calls))
    with pytest.raises(OpenIDRejected):
        await verifier.verify("token", "plain.example:8448")
    assert calls == ["plain.example:8448"] and plain.paths == []


# --- bounded answers -----------------------------------------------------------------------------


class Endless:
    """A JSON answer that never ends; counts what it managed to send before the client hung up."""

    def __init__(self) -> None:
        self.sent = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            await response.write(b'{"m.server": "')
            while self.sent < 256 * 1024 * 1024:
                await response.write(b"a" * 4096)
                self.sent += 4096
        except ConnectionError:
            pass  # the client hung up: what it should do past the cap
        finally:
            self.done.set()
        return response


async def test_an_endless_userinfo_is_cut_at_the_cap(lab: Lab) -> None:
    endless = Endless()
    home = await lab.site({USERINFO: endless.handle})
    verifier = await lab.verifier({"home.test": home.url})
    started = time.monotonic()
    with pytest.raises(OpenIDRejected, match=f"more than {MAX_BODY} bytes"):
        await verifier.verify("token", "home.test")
    assert time.monotonic() - started < 3
    await asyncio.wait_for(endless.done.wait(), 5)
    # What is left in the socket buffers is a few MiB at most; the server was cut off.
    assert endless.sent < 32 * 1024 * 1024


async def test_an_endless_well_known_is_refused_not_read(lab: Lab) -> None:
    endless = Endless()
    tls = await lab.site({WELL_KNOWN: endless.handle}, tls=True)
    calls: list[str] = []
    verifier = await lab.verifier(
        guard=lab.guard({("good.example", 443): ("127.0.0.1", tls.port)}, calls)
    )
    with pytest.raises(OpenIDRejected, match=r"\.well-known: more than"):
        await verifier.verify("token", "good.example")
    await asyncio.wait_for(endless.done.wait(), 5)
    assert endless.sent < 32 * 1024 * 1024
    assert calls == ["good.example:443"]  # no fallback to 8448 after an oversized answer


async def test_a_declared_mebibyte_is_refused_unread(lab: Lab) -> None:
    big = {"sub": "@alice:home.test", "padding": "a" * (1024 * 1024)}
    home = await lab.site({USERINFO: answer(big)})
    verifier = await lab.verifier({"home.test": home.url})
    with pytest.raises(OpenIDRejected, match="declared"):
        await verifier.verify("token", "home.test")


async def test_a_silent_server_is_given_up_on(lab: Lab) -> None:
    release = asyncio.Event()

    async def silent(_request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({})

    home = await lab.site({USERINFO: silent})
    verifier = await lab.verifier({"home.test": home.url}, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(OpenIDRejected, match="did not answer"):
            await verifier.verify("token", "home.test")
        assert time.monotonic() - started < 2
    finally:
        release.set()  # lets the server shut down at once


# --- through the token API: the link is checked first --------------------------------------------


async def test_no_homeserver_is_asked_about_a_link_without_a_live_meeting(
    lab: Lab, tmp_path: Path, livekit: LiveKitDouble
) -> None:
    home = await lab.site(userinfo(ALICE))
    overrides = {"homeserver": {"address": home.url, "openid_allowed_servers": ["Example.ORG"]}}
    async with FastBridge(tmp_path / "bridge", livekit, config_overrides=overrides) as fast:
        assert fast.settings.homeserver.openid_allowed_servers == ("example.org",)

        async def ask(slug: str, server_name: str = "localhost") -> tuple[int, str]:
            openid = {"access_token": "token", "matrix_server_name": server_name}
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{fast.base_url}/api/token", json={"slug": slug, "openid_token": openid}
                ) as response,
            ):
                body = await response.json()
                return response.status, body["identity" if response.status == 200 else "errcode"]

        assert await ask("zzz-zzzz-zzz") == (404, "M_NOT_FOUND")
        assert await ask("not a slug at all") == (404, "M_NOT_FOUND")
        await fast.say("!visio")
        match = SLUG.search(fast.notices()[0])
        assert match, fast.notices()
        slug = match.group(1)
        assert home.paths == []
        # The local homeserver (plain http on loopback, as configured) still vouches.
        assert await ask(slug) == (200, ALICE)
        assert home.paths == [USERINFO]
        # A federated name for this same loopback server is refused without asking it.
        assert await ask(slug, f"127.0.0.1:{home.port}") == (401, "M_UNAUTHORIZED")
        assert home.paths == [USERINFO]
        await fast.say("!visio end")
        assert await ask(slug) == (404, "M_NOT_FOUND")
        assert home.paths == [USERINFO]


class RecordingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(ManualClock(), per_minute=60, burst=10)
        self.keys: list[str] = []

    def allow(self, key: str) -> bool:
        self.keys.append(key)
        return super().allow(key)


class NoMeetings:
    """A `MemberJoin` for which no link is live; it must never be asked to grant."""

    async def live_meeting(self, slug: str) -> Any:
        raise JoinRefused(404, "M_NOT_FOUND", "No live meeting for this link")

    async def grant(self, *args: Any) -> Any:
        raise AssertionError("grant() for a link without a live meeting")


async def test_made_up_links_spend_no_meeting_rate_limit(lab: Lab) -> None:
    per_meeting = RecordingLimiter()
    api = TokenAPI(NoMeetings(), RecordingLimiter(), per_meeting)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/api/token", api.issue)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        openid = {"access_token": "token", "matrix_server_name": "example.org"}
        async with aiohttp.ClientSession() as http:
            for slug in ("zzz-zzzz-zzz", "aaa-aaaa-aaa"):
                body = {"slug": slug, "openid_token": openid}
                async with http.post(f"http://127.0.0.1:{port}/api/token", json=body) as response:
                    assert response.status == 404
    finally:
        await runner.cleanup()
    assert per_meeting.keys == []


async def test_the_allow_list_setting_must_be_a_list_of_names(
    tmp_path: Path, livekit: LiveKitDouble
) -> None:
    config = bridge_config(
        synapse_port=1,
        bridge_port=2,
        livekit=livekit,
        database=DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {}),
        overrides={"homeserver": {"openid_allowed_servers": "example.org"}},
    )
    with pytest.raises(ConfigError, match=r"homeserver\.openid_allowed_servers: must be a list"):
        parse_settings(config, tmp_path, {}, need_tokens=False)
