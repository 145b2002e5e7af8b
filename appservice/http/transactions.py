"""The application service API the homeserver calls: transactions, ping, user and room queries.

A transaction is acknowledged only after its events are in the inbox table; any failure to
store them answers 500, so the homeserver keeps the transaction and retries it later. Because
a retried transaction blocks every one after it, nothing the sender controls may cause that
500: a body that is not JSON gets 400, and an event that could not be stored (wrong types,
lone surrogates, absurd nesting) is dropped with a log line while the rest is stored.

The hs_token is accepted only in the `Authorization: Bearer` header, as the current AS spec
says (Synapse always sends it; `?access_token=` would end up in proxy logs).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from appservice.http.bodies import BodyTooLarge, NotJSON, parse_json, read_capped
from appservice.http.events import usable_events, usable_txn_id
from bridge.inbox.store import InboxStore
from bridge.ports import Clock

log = logging.getLogger(__name__)

# Synapse sends at most 100 PDUs (plus ephemeral events) per transaction; 16 MiB is generous
# and still stops a hostile client from making us buffer an unbounded body.
MAX_TRANSACTION_BYTES = 16 * 1024 * 1024


def matrix_error(status: int, errcode: str, error: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": error}, status=status)


class AppserviceAPI:
    def __init__(
        self,
        hs_token: str,
        inbox: InboxStore,
        clock: Clock,
        on_stored: Callable[[], None],
        is_own_user: Callable[[str], bool],
        on_extras: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        # on_extras: to-device messages, device lists and key counts (encryption), handled
        # before the acknowledgement, since the homeserver does not send them again.
        self._on_extras = on_extras
        self._hs_token = hs_token.encode()
        self._inbox = inbox
        self._clock = clock
        self._on_stored = on_stored
        self._is_own_user = is_own_user

    def _refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        if not token:
            return matrix_error(401, "M_UNAUTHORIZED", "Missing hs_token")
        if not hmac.compare_digest(token.encode(), self._hs_token):
            return matrix_error(403, "M_FORBIDDEN", "Invalid hs_token")
        return None

    async def put_transaction(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        txn_id = request.match_info["txn_id"]
        if not usable_txn_id(txn_id):
            return matrix_error(400, "M_INVALID_PARAM", "Unusable transaction id")
        try:
            body = parse_json(await read_capped(request, MAX_TRANSACTION_BYTES))
        except BodyTooLarge:
            return matrix_error(413, "M_TOO_LARGE", "Transaction too large")
        except NotJSON as err:
            log.warning("Transaction %s refused: body is not JSON (%s)", txn_id, err)
            return matrix_error(400, "M_NOT_JSON", "Transaction body is not JSON")
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            return matrix_error(400, "M_BAD_JSON", "Transaction has no events list")
        pdus = usable_events(txn_id, events)
        try:
            if self._on_extras is not None:
                await self._on_extras(body)
            new = await self._inbox.accept(txn_id, pdus, self._clock.now_ms())
        except Exception:
            # Not stored means not acknowledged: the homeserver will send it again.
            log.exception("Could not store transaction %s; asking the homeserver to retry", txn_id)
            return matrix_error(500, "M_UNKNOWN", "Could not store the transaction")
        if new:
            log.debug("Stored %d new event(s) of transaction %s", new, txn_id)
            self._on_stored()
        elif pdus:
            log.info("Transaction %s brought no new event: a retry, acknowledged again", txn_id)
        return web.json_response({})

    async def ping(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        return web.json_response({})

    async def query_user(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        if self._is_own_user(request.match_info["user_id"]):
            return web.json_response({})
        return matrix_error(404, "M_NOT_FOUND", "No such user")

    async def query_room(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        return matrix_error(404, "M_NOT_FOUND", "This bridge has no room aliases")
