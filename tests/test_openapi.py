"""The OpenAPI description matches the routes the bridge registers, both ways."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from fast import FastBridge

from appservice.app import add_routes
from appservice.metrics import BridgeMetrics, metrics_app
from appservice.openapi import openapi_document

METHODS = {"get", "put", "post", "delete", "patch"}
AUDIENCES = {"public", "homeserver", "livekit", "operator"}


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(path, method) for every route; HEAD is aiohttp's free companion of GET."""
    found = set()
    for resource in app.router.resources():
        for route in resource:
            if route.method != "HEAD":
                found.add((resource.canonical, route.method.lower()))
    return found


def main_routes() -> set[tuple[str, str]]:
    app = web.Application()
    add_routes(app)
    return registered(app)


def metrics_routes() -> set[tuple[str, str]]:
    return registered(metrics_app(BridgeMetrics(), None, lambda: 0))  # type: ignore[arg-type]


def documented(listener: str | None) -> set[tuple[str, str]]:
    paths = openapi_document()["paths"]
    return {
        (path, method)
        for path, item in paths.items()
        if item.get("x-visio-listener") == listener
        for method in item
        if method in METHODS
    }


def test_every_route_is_documented_and_every_documented_path_exists() -> None:
    assert documented(None) == main_routes()
    assert documented("metrics") == metrics_routes()


def test_every_path_says_who_calls_it() -> None:
    for path, item in openapi_document()["paths"].items():
        assert item["x-visio-audience"] in AUDIENCES, path
    paths = openapi_document()["paths"]
    assert paths["/metrics"]["x-visio-audience"] == "operator"
    assert all(
        paths[path]["x-visio-audience"] == "homeserver"
        for path in paths
        if path.startswith("/_matrix/")
    )


def test_every_schema_reference_resolves() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    token = schemas["TokenRequest"]
    assert token["required"] == ["slug", "user_id", "openid_token"]


async def test_the_bridge_serves_it(fast: FastBridge) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fast.base_url}/api/openapi.json") as response,
    ):
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert document == openapi_document()
