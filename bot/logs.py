"""Logs: one JSON object per line, and a request id that ties together the lines of one turn.

`configure_logging` installs one handler on the root logger. Each HTTP request to `/api/messages`
binds a request id (the caller's `x-request-id` when it is sane, else a new uuid4) and, once the
activity is parsed, its id, type and conversation id; every line logged while that request runs
carries them. Nothing here logs headers or bodies.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


@dataclass(frozen=True)
class TurnInfo:
    """What the log lines of one request say about it."""

    request_id: str
    activity_id: str | None = None
    activity_type: str | None = None
    conversation_id: str | None = None


_turn: ContextVar[TurnInfo | None] = ContextVar("frontdesk_turn", default=None)


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is sane (1-128 of `A-Z a-z 0-9 - _ .`), else a new uuid4."""
    if header is not None and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return str(uuid.uuid4())


def begin_request(header: str | None) -> str:
    """Bind a request id to the current context and return it.

    aiohttp runs every request in a task of its own (a copy of the context), so the binding lasts
    exactly as long as the request, its access-log line included, and reaches the tasks it starts.
    """
    request_id = request_id_from(header)
    _turn.set(TurnInfo(request_id=request_id))
    return request_id


def bind_activity(
    *, activity_id: str | None, activity_type: str | None, conversation_id: str | None
) -> None:
    """Add the activity being handled to the current request's log fields (no-op outside one)."""
    current = _turn.get()
    if current is None:
        return
    _turn.set(
        replace(
            current,
            activity_id=activity_id or None,
            activity_type=activity_type or None,
            conversation_id=conversation_id or None,
        )
    )


def current_turn() -> TurnInfo | None:
    """The request being handled in this context, if any."""
    return _turn.get()


class TurnFilter(logging.Filter):
    """Stamps the current request's fields onto each record (as `record.turn`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "turn"):
            setattr(record, "turn", _turn.get())  # noqa: B010 - LogRecord has no such field
        return True


def _turn_of(record: logging.LogRecord) -> TurnInfo | None:
    turn = getattr(record, "turn", None)
    return turn if isinstance(turn, TurnInfo) else _turn.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, the request's
    fields when in one, and the exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        turn = _turn_of(record)
        if turn is not None:
            entry["request_id"] = turn.request_id
            for key in ("activity_id", "activity_type", "conversation_id"):
                value = getattr(turn, key)
                if value is not None:
                    entry[key] = value
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id]: message`, for reading by eye."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(turn_label)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        turn = _turn_of(record)
        label = f" [{turn.request_id}]" if turn is not None else ""
        setattr(record, "turn_label", label)  # noqa: B010 - LogRecord has no such field
        return super().format(record)


def configure_logging(
    level: str, log_format: LogFormat | str = LogFormat.JSON, *, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record to stderr (or `stream`) in the chosen format; return the handler.

    A handler installed by an earlier call is replaced; other handlers are left alone.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(TurnFilter())
    if LogFormat(log_format) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.set_name("frontdesk")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "frontdesk"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
