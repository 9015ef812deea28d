"""Structured logs: `--log-format json` writes one JSON object a line, each with the event id,
pipeline, table and trace id of the work it is about (null outside any event).

The engine says what it works on with `bind(...)` at its step boundaries (an event being
processed, a table being committed); a `contextvars` value carries it to every log call below,
so no log call has to pass it. Threads start with nothing bound.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FIELDS", "JsonFormatter", "bind", "configure_logging", "current"]

# the keys every JSON line has, bound or not
FIELDS = ("event_id", "pipeline", "table", "trace_id")
_EMPTY: dict[str, Any] = dict.fromkeys(FIELDS)
_BOUND: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("icefloe_log_context", default=_EMPTY)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Log lines inside are about these (event_id, pipeline, table, trace_id); the rest stay."""
    token = _BOUND.set({**_BOUND.get(), **fields})
    try:
        yield
    finally:
        _BOUND.reset(token)


def current() -> dict[str, Any]:
    return dict(_BOUND.get())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_BOUND.get(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: int, fmt: str = "text") -> None:
    """The process's log handler on stderr: `text` (the default) or `json`. Like
    `logging.basicConfig`, it leaves a process that configured logging already alone."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
