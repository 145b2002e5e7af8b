"""Request bodies read with a hard cap, and JSON parsed without letting hostile input crash us.

`Content-Length` alone is no limit: a chunked body declares no length. So the body is streamed
and reading stops as soon as it passes the route's cap. aiohttp's app-wide `client_max_size`
only applies to `request.read()`/`post()`, which these helpers do not use.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

# Matrix events nest a handful of levels deep (content → m.relates_to → …); 64 is generous,
# and far enough from Python's recursion limit that later json.dumps of a stored event is safe.
MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    """The body went past the route's cap; what was read so far is dropped."""


class NotJSON(ValueError):
    """The body is not UTF-8 JSON we can use (syntax, encoding, nesting or numbers)."""


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, or `BodyTooLarge` as soon as more than `limit` bytes are declared or sent."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"declared {request.content_length} bytes, cap {limit}")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"over {limit} bytes")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`, or `NotJSON`.

    The json module recurses once per nesting level and raises RecursionError (not ValueError)
    past Python's limit, so that is caught here along with bad syntax and encodings. It also
    takes `NaN`, `Infinity` and `1e999` (infinite), which are not JSON: refused too.
    """
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise NotJSON(type(err).__name__) from err


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} is out of range")
    return number


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` (parsed JSON) cannot be stored as is, or None when it can.

    Refused: nesting deeper than `max_depth`, and strings or keys holding lone UTF-16
    surrogates (`"\\ud800"` is valid JSON, but no database or UTF-8 encoder accepts it).
    Walked with an explicit stack, so the check itself cannot overflow Python's.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _is_utf8(item):
                return "lone surrogate in a string"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth}"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not _is_utf8(key):
                        return "lone surrogate in a key"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
