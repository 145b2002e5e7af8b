"""Log set-up: text or JSON lines, the room and meeting in every line, and never a token.

`log_context(room=…, meeting=…)` sets, for the task at hand, what `ContextFilter` adds to every
record logged meanwhile: the inbox sets the room for each event it hands on, the webhook
handler the LiveKit room of each webhook. Nothing else changes its log calls.

`RedactionFilter` rewrites every record before it is written: the operator's own secrets
(as/hs tokens, LiveKit secret, pickle key) wherever they appear, and anything shaped like a
token (JWTs, `access_token=…`, `Bearer …`, Synapse and MAS access tokens).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TextIO

MASK = "***"
_CONTEXT_FIELDS = ("room", "meeting", "event")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "visio_log_context", default=None
)

# Shapes of tokens, whoever logs them (a library's URL, an exception's repr…).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs (LiveKit access tokens, OpenID-signed things): header.payload[.signature]
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,2}"), "eyJ" + MASK),
    # Query strings and form bodies: ?access_token=…, &token=…
    (
        re.compile(r"((?:access_token|token|hs_token|as_token|api_secret|secret)=)[^&\s\"'<>]+"),
        r"\1" + MASK,
    ),
    # JSON or repr of a dict: "access_token": "…"
    (
        re.compile(
            r"""(["']?(?:access_token|hs_token|as_token|api_secret|pickle_key|token)["']?"""
            r"""\s*[:=]\s*["'])[^"']+"""
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1" + MASK),
    # Synapse (syt_), MAS (mat_, mct_) and refresh (syr_) tokens
    (re.compile(r"\b(?:syt|syr|mat|mct)_[A-Za-z0-9_]{8,}"), MASK),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add `fields` (room, meeting, event) to every line logged inside the block."""
    token = _context.set(_with(fields))
    try:
        yield
    finally:
        _context.reset(token)


def set_log_context(**fields: str | None) -> None:
    """Add `fields` for the rest of the current task (a request handler, say)."""
    _context.set(_with(fields))


def _with(fields: Mapping[str, str | None]) -> dict[str, str]:
    return {**(_context.get() or {}), **{key: value for key, value in fields.items() if value}}


class ContextFilter(logging.Filter):
    """Copies the task's log context onto each record (`record.room`, `record.meeting`…)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        for key in _CONTEXT_FIELDS:
            if not hasattr(record, key):
                setattr(record, key, context.get(key, ""))
        return True


class RedactionFilter(logging.Filter):
    """Masks secrets in the message, its arguments and its traceback, before any formatter."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact(message, self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        where = " ".join(
            f"{key}={getattr(record, key)}" for key in _CONTEXT_FIELDS if getattr(record, key, "")
        )
        if not where:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{where}]{newline}{rest}"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _iso_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_FIELDS:
            value = getattr(record, key, "")
            if value:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def _iso_time(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_handler(
    fmt: str = "text", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """A stream handler (stderr) with the context and redaction filters and the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter(secrets))
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(level: str, fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """The process's logging: one handler on the root logger (replacing any), at `level`."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(log_handler(fmt, secrets))
    root.setLevel(level)
    # mautrix logs every request at DEBUG/INFO; keep the bridge's own lines readable.
    logging.getLogger("mau").setLevel(max(logging.getLevelName(level), logging.WARNING))


__all__ = [
    "ContextFilter",
    "JSONFormatter",
    "RedactionFilter",
    "configure_logging",
    "log_context",
    "log_handler",
    "redact",
    "set_log_context",
]
