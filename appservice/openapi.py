"""The bridge's HTTP API, written down: an OpenAPI 3.1 document, served at `/api/openapi.json`.

`tests/test_openapi.py` keeps it in step with the routes `app.add_routes` registers (and the
metrics listener's), both ways. Each path says who calls it (`x-visio-audience`): `public`
(browsers, through the reverse proxy), `homeserver` (application service API, hs_token),
`livekit` (signed webhooks) or `operator` (probes and metrics, never exposed publicly).
"""

from __future__ import annotations

import copy
import importlib.metadata
from typing import Any

_ERROR = {"$ref": "#/components/schemas/MatrixError"}
_JSON_ERROR = {"application/json": {"schema": _ERROR}}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _JSON_ERROR}


def _slug() -> dict[str, Any]:
    return {
        "name": "slug",
        "in": "path",
        "required": True,
        "description": "The meeting's slug, as in its join link (abc-defg-hij)",
        "schema": {"type": "string"},
    }


_LOBBY_STATES = ["waiting", "admitted", "refused", "expired", "ended"]
_LIMITED = _error("Rate limit (M_LIMIT_EXCEEDED with retry_after_ms), per client address")
_HS_AUTH: list[dict[str, list[str]]] = [{"hs_token": []}]
_AS_ERRORS = {
    "401": _error("No hs_token (M_UNAUTHORIZED)"),
    "403": _error("Wrong hs_token (M_FORBIDDEN)"),
}

_PATHS: dict[str, Any] = {
    "/_matrix/app/v1/transactions/{txn_id}": {
        "x-visio-audience": "homeserver",
        "put": {
            "summary": "Events from the homeserver (stored before they are acknowledged)",
            "security": _HS_AUTH,
            "parameters": [
                {"name": "txn_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["events"],
                            "properties": {"events": {"type": "array", "items": {}}},
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "Stored (or already stored)"},
                "400": _error("Not JSON, no events list, or an unusable transaction id"),
                **_AS_ERRORS,
                "413": _error("Larger than 16 MiB"),
                "500": _error("Not stored: the homeserver sends it again"),
            },
        },
    },
    "/_matrix/app/v1/ping": {
        "x-visio-audience": "homeserver",
        "post": {
            "summary": "The homeserver checks it reaches the bridge",
            "security": _HS_AUTH,
            "responses": {"200": {"description": "Reached"}, **_AS_ERRORS},
        },
    },
    "/_matrix/app/v1/users/{user_id}": {
        "x-visio-audience": "homeserver",
        "get": {
            "summary": "Whether a user of the bridge's namespace exists",
            "security": _HS_AUTH,
            "parameters": [
                {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "The bot or one of the bridge's users"},
                **_AS_ERRORS,
                "404": _error("Not one of the bridge's users"),
            },
        },
    },
    "/_matrix/app/v1/rooms/{alias}": {
        "x-visio-audience": "homeserver",
        "get": {
            "summary": "Room alias query (the bridge has none)",
            "security": _HS_AUTH,
            "parameters": [
                {"name": "alias", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {**_AS_ERRORS, "404": _error("Always")},
        },
    },
    "/m/{slug}": {
        "x-visio-audience": "public",
        "get": {
            "summary": "The join page of a meeting",
            "parameters": [_slug()],
            "responses": {
                "200": {"description": "The page", "content": _HTML},
                "404": {"description": "No such meeting, or it ended", "content": _HTML},
                "429": {"description": "Rate limit", "content": _HTML},
            },
        },
        "post": {
            "summary": "Join as a guest: a LiveKit token (JSON) or a redirect to the front end",
            "description": (
                "With `Accept: application/json` the answer is JSON: `joined` with a token, or "
                "`waiting` with a lobby request to long-poll at /api/lobby/{request_id}. "
                "Otherwise a 303 to the front end, or the waiting page."
            ),
            "parameters": [_slug()],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string", "maxLength": 64}},
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Joined, or waiting in the lobby",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Joined"}},
                        **_HTML,
                    },
                },
                "303": {"description": "To the front end, token in its URL fragment or query"},
                "400": _error("Unusable display name (M_INVALID_PARAM)"),
                "404": _error("No such meeting, or it ended (M_NOT_FOUND)"),
                "413": {"description": "Body too large"},
                "429": _LIMITED,
            },
        },
    },
    "/widget/{slug}": {
        "x-visio-audience": "public",
        "get": {
            "summary": "The meeting's widget page, shown inside Matrix clients",
            "parameters": [_slug()],
            "responses": {
                "200": {"description": "The page", "content": _HTML},
                "404": {"description": "No such meeting", "content": _HTML},
                "429": {"description": "Rate limit", "content": _HTML},
            },
        },
    },
    "/call/assets/{name}": {
        "x-visio-audience": "public",
        "get": {
            "summary": "The built-in call page's script, stylesheet, fonts and artwork",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "The file (long-cached when its name is hashed)"},
                "404": {"description": "No such asset"},
            },
        },
    },
    "/api/token": {
        "x-visio-audience": "public",
        "post": {
            "summary": "A LiveKit token for a room member, proven with a Matrix OpenID token",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}
                },
            },
            "responses": {
                "200": {
                    "description": "The token",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Token"}}
                    },
                },
                "400": _error("Body not usable (M_BAD_JSON)"),
                "401": _error("OpenID token not valid (M_UNAUTHORIZED)"),
                "403": _error("Not a member of the meeting's room (M_FORBIDDEN)"),
                "404": _error("No live meeting with this slug (M_NOT_FOUND)"),
                "413": _error("Body larger than 8 KiB"),
                "429": _LIMITED,
            },
        },
    },
    "/api/lobby/{request_id}": {
        "x-visio-audience": "public",
        "get": {
            "summary": "Long-poll (up to ~25 s) for a waiting guest's lobby decision",
            "parameters": [
                {
                    "name": "request_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": {
                    "description": "The request's state; frontend_url once admitted",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["state"],
                                "properties": {
                                    "state": {
                                        "type": "string",
                                        "enum": _LOBBY_STATES,
                                    },
                                    "frontend_url": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "404": _error("No such request (M_NOT_FOUND)"),
                "429": _LIMITED,
            },
        },
    },
    "/livekit/webhook": {
        "x-visio-audience": "livekit",
        "post": {
            "summary": "LiveKit's webhooks, signed with the API key pair",
            "security": [{"livekit_webhook": []}],
            "requestBody": {
                "required": True,
                "content": {"application/webhook+json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": {"description": "Applied, ignored (not ours) or seen before"},
                "401": {"description": "Missing or bad signature"},
                "413": {"description": "Larger than 1 MiB"},
                "500": {"description": "Not applied: LiveKit retries"},
            },
        },
    },
    "/health": {
        "x-visio-audience": "operator",
        "get": {
            "summary": "Alive: the process answers",
            "responses": {
                "200": {
                    "description": "Alive",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "status": {"const": "ok"},
                                    "inbox_pending": {"type": ["integer", "null"]},
                                },
                            }
                        }
                    },
                }
            },
        },
    },
    "/ready": {
        "x-visio-audience": "operator",
        "get": {
            "summary": "Ready: database, homeserver and LiveKit answer",
            "responses": {
                "200": {
                    "description": "Ready",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}
                    },
                },
                "503": {
                    "description": "Not ready: each check that failed says why",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}
                    },
                },
            },
        },
    },
    "/api/openapi.json": {
        "x-visio-audience": "public",
        "get": {
            "summary": "This document",
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        },
    },
    "/metrics": {
        "x-visio-audience": "operator",
        "x-visio-listener": "metrics",
        "servers": [
            {"url": "http://127.0.0.1:29341", "description": "metrics.hostname:metrics.port"}
        ],
        "get": {
            "summary": "Prometheus metrics (served only when metrics.enabled)",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        },
    },
}

_SCHEMAS: dict[str, Any] = {
    "MatrixError": {
        "type": "object",
        "required": ["errcode", "error"],
        "properties": {
            "errcode": {"type": "string", "examples": ["M_NOT_FOUND"]},
            "error": {"type": "string"},
            "retry_after_ms": {"type": "integer"},
        },
    },
    "TokenRequest": {
        "type": "object",
        "required": ["slug", "user_id", "openid_token"],
        "properties": {
            "slug": {"type": "string", "examples": ["abc-defg-hij"]},
            "user_id": {"type": "string", "examples": ["@alice:example.org"]},
            "openid_token": {
                "type": "object",
                "required": ["access_token", "matrix_server_name"],
                "description": "From the client's POST /_matrix/client/v3/user/{userId}/openid/"
                "request_token",
                "properties": {
                    "access_token": {"type": "string"},
                    "matrix_server_name": {"type": "string"},
                    "token_type": {"type": "string"},
                    "expires_in": {"type": "integer"},
                },
            },
        },
    },
    "Token": {
        "type": "object",
        "required": ["token", "livekit_url", "room", "identity", "frontend_url"],
        "properties": {
            "token": {"type": "string", "description": "LiveKit access token (JWT)"},
            "livekit_url": {"type": "string"},
            "room": {"type": "string"},
            "identity": {"type": "string"},
            "frontend_url": {"type": "string"},
        },
    },
    "Joined": {
        "type": "object",
        "required": ["state"],
        "properties": {
            "state": {"type": "string", "enum": ["joined", "waiting"]},
            "token": {"type": "string"},
            "livekit_url": {"type": "string"},
            "identity": {"type": "string"},
            "name": {"type": "string"},
            "request_id": {"type": "string", "description": "When waiting: poll /api/lobby/…"},
        },
    },
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "checks": {
                "type": "object",
                "description": 'database, homeserver, livekit: "ok" or the reason',
                "additionalProperties": {"type": "string"},
            },
        },
    },
}


def _version() -> str:
    try:
        return importlib.metadata.version("visio-bridge")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "visio-bridge",
            "version": _version(),
            "description": "LiveKit calls from Matrix rooms. Only `public` paths belong behind "
            "the public reverse proxy; `homeserver` and `livekit` ones are reached directly.",
        },
        "paths": copy.deepcopy(_PATHS),
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {
                "hs_token": {"type": "http", "scheme": "bearer", "description": "hs_token"},
                "livekit_webhook": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "JWT signed with the LiveKit API secret, over the body's hash",
                },
            },
        },
    }
