"""Which events of a homeserver transaction can be stored in the inbox, and which are dropped.

The inbox writes ids to TEXT columns and the event to a JSON payload. Any value those cannot
hold (a room id that is an object, a NUL, a lone surrogate) would make the insert fail, the
transaction answer 500, and the homeserver retry it forever, holding back everything after it.
Such an event cannot be a valid Matrix event anyway, so it is dropped alone, with a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from appservice.http.bodies import json_problem

log = logging.getLogger(__name__)

# Matrix identifiers are at most 255 bytes (spec, "Identifier grammar"); transaction ids
# have no stated limit, but Synapse's are short integers.
MAX_ID_BYTES = 255


def usable_txn_id(txn_id: str) -> bool:
    """A transaction id the inbox table can hold (the URL segment, percent-decoded)."""
    return _is_id(txn_id)


def usable_events(txn_id: str, events: list[Any]) -> list[dict[str, Any]]:
    """The events of `events` that can be stored; each one dropped is logged."""
    usable: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        problem = event_problem(event)
        if problem is None:
            usable.append(event)
            continue
        event_id = event.get("event_id") if isinstance(event, dict) else None
        shown = repr(event_id)[:80] if isinstance(event_id, str) else f"#{index}"
        log.warning("Transaction %s: event %s dropped (%s)", txn_id, shown, problem)
    return usable


def event_problem(event: Any) -> str | None:
    """Why `event` cannot be stored, or None. Only what storage needs is checked here: the
    dispatcher already ignores well-formed events it has no use for."""
    if not isinstance(event, dict):
        return "not an object"
    # The JSON first: an id with a lone surrogate would fail the byte-length check below.
    if (problem := json_problem(event)) is not None:
        return problem
    for key in ("event_id", "room_id", "sender", "type"):
        if not _is_id(event.get(key)):
            return f"{key} is not a usable string"
    if "content" in event and not isinstance(event["content"], dict):
        return "content is not an object"
    return None


def _is_id(value: Any) -> bool:
    if not isinstance(value, str) or not value or "\x00" in value:
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_ID_BYTES
    except UnicodeEncodeError:  # a lone surrogate
        return False
