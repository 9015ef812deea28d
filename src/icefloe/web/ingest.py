"""What the HTTP ingest API does once a request is allowed: parse records, land uploads, record
their events. Plain blocking code: the handlers in `web/api.py` run it in worker threads.

Records posted to a pipeline land as one NDJSON object per request on the records source
(`serve.ingest.records_source`, default the first), under a dot-folder that listings and watches
skip, and their event names that pipeline alone: routes are for objects that arrive on their own.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from typing import Any

from icefloe.errors import ConfigError, DataError, NotFoundError
from icefloe.ledger import Event
from icefloe.ledger.idempotency import IdempotencyStore
from icefloe.ledger.sql_side import SqlBase
from icefloe.project import Project
from icefloe.sources import Landed, Source
from icefloe.sources.base import check_key
from icefloe.sources.upload import Upload
from icefloe.web.group import GroupCommit, Landing

__all__ = ["Ingestor", "RecordBatch", "WrongFormatError", "parse_records"]

# a pipeline whose reader takes NDJSON: declared so, or left to the file extension
_RECORD_FORMATS = (None, "ndjson", "json")
# the backlog is counted at most this often (a COUNT per request would cost more than the request)
_BACKLOG_EVERY = 0.5


@dataclass(frozen=True)
class RecordBatch:
    """Records checked and rewritten as NDJSON: the bytes that land, and how many rows."""

    data: bytes
    rows: int


def parse_records(body: bytes, content_type: str, *, name: str = "body") -> RecordBatch:
    """NDJSON (one JSON object a line) or a JSON array of objects -> NDJSON bytes.

    A DataError names the 1-based line (NDJSON) or item (array) of the first bad record. Valid
    NDJSON lands as it came (blank lines and CRLF included: the reader takes them)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" or (not kind and body.lstrip()[:1] == b"["):
        return _array(body, name)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid NDJSON: {exc.reason} (not UTF-8)", file=name, line=body.count(b"\n", 0, exc.start) + 1) from None
    rows = _check_joined(body)
    if rows is None:
        lines = text.split("\n")
        rows = _check_fast(lines)
        if rows is None:
            rows = _check_lines(lines, name)
    return RecordBatch(body if body.endswith(b"\n") else body + b"\n", rows)


def _check_joined(body: bytes) -> int | None:
    """The record count of a body written the usual way (every line one object, no blank or
    indented line, LF or CRLF), checked by one msgspec call over the whole body; None for
    anything else, which the per-line checks decide (about 0.4 ms of CPU for bench 12's 1,000-row
    body, against 0.6-0.7 ms for the per-line decode into dicts before).

    `decode_lines` reads a stream of values, so a value may span lines or share one. Not here:
    every newline must sit in a `}\n{` (or `}\r\n{`), and in valid JSON a `}` followed by a
    `{` is a boundary between top-level values (inside a container a comma is needed, and a
    string holds no raw newline). So each line boundary is a value boundary, and as many values
    as lines means one a line."""
    decoder = _strict_decoder()
    if decoder is None or not body.startswith(b"{"):
        return None
    end = len(body) - (2 if body.endswith(b"\r\n") else 1 if body.endswith(b"\n") else 0)
    if body[end - 1 : end] != b"}":
        return None
    newlines = body.count(b"\n", 0, end)
    if body.count(b"}\n{", 0, end) + body.count(b"}\r\n{", 0, end) != newlines:
        return None
    try:
        values = decoder.decode_lines(body)
    except ValueError:  # msgspec's DecodeError and ValidationError are ValueErrors
        return None
    return len(values) if len(values) == newlines + 1 else None


def _check_fast(lines: list[str]) -> int | None:
    """The record count if every non-blank line is one JSON object, else None: then
    `_check_lines` decides, and names the first bad line. msgspec checks a line several
    times faster than the json module (the largest cost on the request path, README bench 12),
    and is stricter (NaN, lone surrogates): what it refuses, the json module has the last word on."""
    decoder = _strict_decoder()
    if decoder is None:
        return None
    present = list(filter(None, map(str.strip, lines, repeat(" \t\r"))))
    try:
        for _ in map(decoder.decode, present):
            pass
    except ValueError:  # msgspec's DecodeError and ValidationError are ValueErrors
        return None
    return len(present) or None


@cache
def _strict_decoder() -> Any:
    """msgspec's decoder of a JSON object into a struct with no fields: it checks every value
    of the object as strictly as decoding it would, but builds none of them (a third of the CPU
    time of decoding into dicts, 1,000-row bench 12 body). It does not check the UTF-8 inside strings: `parse_records` has."""
    try:
        import msgspec
    except ImportError:  # the web extra brings it; without it every body takes the json module's loop
        return None

    class _AnyObject(msgspec.Struct):
        pass

    decoder = msgspec.json.Decoder(_AnyObject)
    return decoder if hasattr(decoder, "decode_lines") else None


def _check_lines(lines: list[str], name: str) -> int:
    rows = 0
    for number, line in enumerate(lines, start=1):
        line = line.strip(" \t\r")  # JSON's own whitespace, not str.strip's Unicode spaces
        if not line:
            continue
        rows += 1
        # the C scanner parses one value and says where it ended: a second value on the line,
        # or one spread over several lines, is not NDJSON (json.loads per line costs twice this)
        try:
            value, end = _SCAN(line, 0)
        except StopIteration:
            raise DataError("not valid NDJSON: expecting a JSON object", file=name, line=number) from None
        except ValueError as exc:
            raise DataError(f"not valid NDJSON: {exc}", file=name, line=number) from None
        if end != len(line):
            raise DataError(f"not valid NDJSON: extra data after the record at column {end + 1}", file=name, line=number)
        if not isinstance(value, dict):
            raise DataError(f"a record must be a JSON object, not {type(value).__name__}", file=name, line=number)
    if not rows:
        raise DataError("no records: send one JSON object per line (NDJSON) or a JSON array of objects", file=name)
    return rows


_SCAN: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _array(body: bytes, name: str) -> RecordBatch:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise DataError(f"not valid JSON: {exc}", file=name) from None
    items = value if isinstance(value, list) else [value]
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise DataError(f"item {number}: a record must be a JSON object, not {type(item).__name__}", file=name)
    if not items:
        raise DataError("no records: the array is empty", file=name)
    lines = [json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() for item in items]
    return RecordBatch(b"\n".join(lines) + b"\n", len(lines))


class Ingestor:
    """The API's side of landing, shared by its requests (thread-safe: the ledger locks)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.settings = project.config.serve.ingest
        self.ledger = project.ledger
        from icefloe.ledger.sqlite import SqliteLedger

        # a 202 says the event is in the ledger: on SQLite its commit must outlive a power cut,
        # not only a crash (PostgreSQL's synchronous_commit does that for every commit already)
        self.synced: Callable[[], AbstractContextManager[object]] = (
            self.ledger.synced if isinstance(self.ledger, SqliteLedger) else nullcontext
        )
        self._backlog: tuple[float, int] = (0.0, 0)
        self._lock = threading.Lock()
        self._store: IdempotencyStore | None = None
        self.group = GroupCommit(self._write)
        self._transaction: Callable[[], AbstractContextManager[object]] = (
            self.ledger.transaction if isinstance(self.ledger, SqlBase) else nullcontext
        )

    @property
    def idempotency(self) -> IdempotencyStore:
        if self._store is None:
            self._store = IdempotencyStore(
                self.ledger, ttl=self.settings.idempotency_ttl, in_flight=self.settings.idempotency_in_flight
            )
        return self._store

    # -- what a request names -------------------------------------------------------------------
    def source(self, name: str) -> Source:
        found = self.project.sources.get(name)
        if found is None:
            raise NotFoundError(f"no source {name!r}; sources: {', '.join(self.project.sources) or 'none'}")
        return found

    def records_source(self) -> Source:
        name = self.settings.records_source
        if name is None:
            if not self.project.sources:
                raise ConfigError("records need a source to land on, and the project has none")
            return next(iter(self.project.sources.values()))
        if name not in self.project.sources:
            where = self.project.config.where("serve", "ingest", "records_source")
            raise ConfigError(f"{where}: records_source names unknown source {name!r}")
        return self.project.sources[name]

    def check_pipeline(self, name: str) -> None:
        pipeline = self.project.config.pipelines.get(name)
        if pipeline is None:
            raise NotFoundError(f"no pipeline {name!r}; pipelines: {', '.join(self.project.config.pipelines) or 'none'}")
        if pipeline.read.format not in _RECORD_FORMATS:
            raise WrongFormatError(f"pipeline {name!r} reads {pipeline.read.format}; records go to a pipeline reading ndjson")

    def backlog_known(self) -> bool:
        """Whether `backlog_full` can answer from its last count, without asking the ledger."""
        return time.monotonic() - self._backlog[0] <= _BACKLOG_EVERY

    def backlog_full(self) -> bool:
        """True once more events wait for a worker than `max_backlog` (counted every 0.5 s)."""
        at, count = self._backlog
        if time.monotonic() - at > _BACKLOG_EVERY:
            with self._lock:
                at, count = self._backlog
                if time.monotonic() - at > _BACKLOG_EVERY:
                    count = self.ledger.pending_count()
                    self._backlog = (time.monotonic(), count)
        return count >= self.settings.max_backlog

    # -- landing --------------------------------------------------------------------------------
    def land_upload(self, upload: Upload, source: Source, key: str, traceparent: str | None = None) -> list[Event]:
        """Commit an upload at `key` (durable), then record it: routed like any object on the
        source. Returns the events of this version of it (new, or the same bytes again)."""
        check_key(source.name, key)
        landed = upload.commit(key)
        return self._record(landed, self.project.router.match(landed.source, landed.key), traceparent)

    def accept_records(
        self,
        pipeline: str,
        body: bytes,
        content_type: str,
        idempotency: str | None,
        traceparent: str | None = None,
        then: Callable[[RecordBatch, list[Event]], None] | None = None,
    ) -> tuple[RecordBatch, list[Event]]:
        """`parse_records`, then `land_records`: one call, so one worker thread a request.
        `then(batch, events)` runs inside the landing's transaction."""
        batch = parse_records(body, content_type)
        after = None if then is None else (lambda events: then(batch, events))
        return batch, self.land_records(pipeline, batch, idempotency, traceparent, after)

    def land_records(
        self,
        pipeline: str,
        batch: RecordBatch,
        idempotency: str | None,
        traceparent: str | None = None,
        then: Callable[[list[Event]], None] | None = None,
    ) -> list[Event]:
        """Write the records as one NDJSON object and record one event for `pipeline`.

        With an Idempotency-Key the object's name comes from (token, key, bytes): a retry after a
        crash between landing and storing the answer lands the same object again, which is the
        same event, not a second one."""
        source = self.records_source()
        if idempotency:
            digest = hashlib.sha256(batch.data).hexdigest()
            name = hashlib.sha256(f"{idempotency}\0{digest}".encode()).hexdigest()[:32]
        else:
            name = uuid.uuid4().hex
        key = f"{self.settings.records_prefix}/{pipeline}/{name[:2]}/{name}.ndjson"
        return self._record(source.create(key, batch.data), [pipeline], traceparent, then)

    def _record(
        self, landed: Landed, pipelines: list[str], traceparent: str | None = None, then: Callable[[list[Event]], None] | None = None
    ) -> list[Event]:
        """The events of a durable object, committed durably with the others landing at the same
        time (web/group.py); returns those of this version of it (new, or the same bytes
        delivered again). `then(events)` runs inside that transaction."""
        return self.group.land(Landing(landed, pipelines, traceparent, then))

    def _write(self, batch: list[Landing]) -> None:
        """A group commit: every landing of `batch` in one transaction, fsynced once. Each one's
        trace is a `land` span, a child of its request's `traceparent` when it had one: the
        workers' spans join it."""
        from icefloe.observe.tracing import tracing_for

        tracing = tracing_for(self.project.runtime)
        spans: list[Any] = []
        try:
            with self.synced(), self._transaction():
                for item in batch:
                    landed = item.landed
                    attempts = {p: self.project.config.pipelines[p].retry.max_attempts for p in item.pipelines}
                    parent, span = tracing.start_land(item.traceparent, source=landed.source, key=landed.key, size=landed.size)
                    spans.append(span)
                    self.ledger.land(
                        source=landed.source, key=landed.key, uri=landed.uri, content_hash=landed.content_hash,
                        size=landed.size, pipelines=item.pipelines, max_attempts=attempts, stamp=landed.stamp,
                        traceparent=parent,
                    )  # fmt: skip
                    self.ledger.set_object_stamp(landed.source, landed.key, landed.stamp)
                    item.events = [e for e in self.ledger.object_events(landed.source, landed.key) if e.content_hash == landed.content_hash]
                    if item.then is not None:
                        item.then(item.events)
        except Exception as exc:
            for span in spans:
                tracing.end(span, exc)
            raise
        for span in spans:
            tracing.end(span)


class WrongFormatError(DataError):
    """A records post to a pipeline that does not read NDJSON (415)."""
