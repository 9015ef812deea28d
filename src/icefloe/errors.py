"""Every error icefloe raises, and whether it is worth retrying.

    IcefloeError
    ├── ConfigError                  bad icefloe.yaml / flags (line-precise), never retried
    ├── NotInstalledError            an optional extra is missing (with the pip hint)
    ├── NotFoundError                unknown table, event, pipeline, ...
    ├── LedgerVersionError           the ledger's schema is newer than this icefloe
    ├── TransientError  (marker)     worth retrying with backoff
    │   ├── CommitConflictError      another writer committed first
    │   ├── LeaseLostError           our lease moved on (expired and taken again): drop the work
    │   ├── LedgerUnavailableError   the ledger database dropped the connection (reconnects next call)
    │   ├── ObjectChangedError       the object changed while we read it (still being written)
    │   └── StorageUnavailableError  object store / catalog not reachable
    └── PermanentError  (marker)     retrying cannot help: dead-letter at once
        ├── DataError                bad input, with file and position
        ├── SchemaError              incompatible schema change
        └── UserCodeError            a transform or hook raised (wraps the cause)

Retry versus dead-letter is decided by type (`is_transient`), never by matching messages.
An exception that is not an IcefloeError (say, an OSError from a flaky disk) is treated as
transient, because the ledger's `max_attempts` bounds how often it can come back.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "IcefloeError",
    "ConfigError",
    "NotInstalledError",
    "NotFoundError",
    "TransientError",
    "CommitConflictError",
    "LeaseLostError",
    "LedgerUnavailableError",
    "LedgerVersionError",
    "StorageUnavailableError",
    "ObjectChangedError",
    "PermanentError",
    "DataError",
    "SchemaError",
    "UserCodeError",
    "is_transient",
    "describe",
]


class IcefloeError(Exception):
    """Root of every icefloe error. `context` carries pipeline/step/file/event when known."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}

    def with_context(self, **context: Any) -> IcefloeError:
        for key, value in context.items():
            if value is not None:
                self.context.setdefault(key, value)
        return self

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.context.items() if k in _SHOWN)
        return f"{self.message} [{where}]" if where else self.message


_SHOWN = ("pipeline", "step", "event")


class ConfigError(IcefloeError):
    """The project configuration is invalid; the message names file and line."""


class NotInstalledError(IcefloeError):
    """An optional dependency is missing."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'icefloe[{extra}]'")


class NotFoundError(IcefloeError):
    """A named thing (table, event, pipeline, snapshot) does not exist."""


class TransientError(IcefloeError):
    """Marker: the same work may succeed if tried again later."""


class CommitConflictError(TransientError):
    pass


class LeaseLostError(TransientError):
    """A fenced ledger write named an epoch the event no longer has: another worker leased it
    since (or it left `running`). `ids` are the refused events; the others' writes applied."""

    def __init__(self, ids: list[str], message: str | None = None) -> None:
        self.ids = list(ids)
        super().__init__(message or f"lease lost on {len(self.ids)} event(s): {', '.join(self.ids[:5])}")


class LedgerUnavailableError(TransientError):
    pass


class LedgerVersionError(IcefloeError):
    pass


class StorageUnavailableError(TransientError):
    pass


class ObjectChangedError(TransientError):
    pass


class PermanentError(IcefloeError):
    """Marker: retrying the same input cannot succeed; the event goes to the dead-letter queue."""


class DataError(PermanentError):
    """Bad input. `file` and `line` (1-based) or `offset` (bytes) say where."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        offset: int | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, file=file, line=line, column=column, offset=offset, **context)
        self.file, self.line, self.column, self.offset = file, line, column, offset

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        elif self.offset is not None:
            where += f" @byte {self.offset}"
        base = super().__str__()
        return f"{where}: {base}" if where else base


class SchemaError(PermanentError):
    """Incoming data cannot be written to the table without breaking it."""


class UserCodeError(PermanentError):
    """A user transform raised. The original exception is `__cause__`."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, IcefloeError):
        return False
    return not isinstance(exc, (TypeError, ValueError, KeyError, AttributeError))


def describe(exc: BaseException) -> str:
    """One line for the ledger and the DLQ: the message plus the cause for user code."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, UserCodeError) and exc.__cause__ is not None:
        cause = exc.__cause__
        text += f": {type(cause).__name__}: {cause}"
    elif not isinstance(exc, IcefloeError):
        text = f"{type(exc).__name__}: {text}"
    return text
