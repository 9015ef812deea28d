"""The HTTP ingest API under /v1: upload objects, post records, ask where an event is.

    PUT  /v1/objects/{source}/{key}   stream a file onto a source (never held whole in memory)
    POST /v1/records/{pipeline}       NDJSON or a JSON array of objects
    GET  /v1/events/{id}              one event's state
    GET  /v1/openapi.json             the OpenAPI document (web/openapi.py)

A 2xx only once the bytes are durable on the source and the events in the ledger: 202 with the
event ids, or with `?wait=commit` 200 with the snapshot ids once they are committed. Until then
any failure answers 4xx/5xx and leaves nothing behind (the upload is aborted, the
Idempotency-Key given back).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from icefloe.errors import ConfigError, DataError, LedgerUnavailableError, NotFoundError
from icefloe.ledger import Event
from icefloe.sources.base import check_key
from icefloe.web.auth import Principal, authenticate, require
from icefloe.web.ingest import Ingestor, RecordBatch, WrongFormatError
from icefloe.web.openapi import openapi_document

__all__ = ["ROUTES", "ingestor"]

# uploads reach the disk in pieces this big, each written in a worker thread
_WRITE_EVERY = 1 << 20
_WAIT_POLL = 0.05
# states ?wait=commit stops waiting at: done, or waiting for a person (dlq replay, a route)
_FINAL = ("committed", "discarded", "dead", "unrouted")


def ingestor(request: Request) -> Ingestor:
    """The app's one Ingestor (made on first use: its ledger lookups are per app, not per request)."""
    state = request.app.state
    if getattr(state, "ingestor", None) is None:
        state.ingestor = Ingestor(state.project)
    found: Ingestor = state.ingestor
    return found


def _run(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    return to_thread.run_sync(fn, *args)


@dataclass
class _Accepted:
    """What a landing produced: the 202 body, and the body hash its fingerprint is made of."""

    body: dict[str, Any]
    body_hash: str
    # the Idempotency-Key's answer was stored in the landing's own transaction
    finished: bool = False


# -- request bodies ----------------------------------------------------------------------------
def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {int(declared)} bytes is over the limit of {limit} bytes")


async def _chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 as soon as it passes `limit` (a chunked body has no length)."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
        if chunk:
            yield chunk


async def _body(request: Request, limit: int) -> bytes:
    return b"".join([c async for c in _chunks(request, limit)])


async def _body_hash(request: Request, limit: int) -> str:
    digest = hashlib.sha256()
    async for chunk in _chunks(request, limit):
        digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(request: Request, body_hash: str) -> str:
    # the query is left out: ?wait=commit on a retry asks how to answer, not for other work
    return hashlib.sha256(f"{request.method}\0{request.url.path}\0{body_hash}".encode()).hexdigest()


# -- the common path -----------------------------------------------------------------------------
async def _admit(request: Request, ing: Ingestor) -> None:
    """Refuse more work while the backlog is past `max_backlog`: 429 with Retry-After."""
    # the count is kept for half a second: most requests need no thread and no ledger for it
    if ing.backlog_full() if ing.backlog_known() else await _run(ing.backlog_full):
        after = max(1, round(ing.settings.retry_after))
        raise HTTPException(429, "the ingest backlog is full; retry later", headers={"Retry-After": str(after)})


async def _idempotent(
    request: Request, principal: Principal, ing: Ingestor, limit: int, land: Callable[[str | None], Awaitable[_Accepted]]
) -> Response:
    """Run `land` once per Idempotency-Key (per token); a retry gets the stored answer."""
    wait = request.query_params.get("wait")
    if wait not in (None, "commit"):  # refused before anything lands
        raise HTTPException(400, f"wait={wait!r}: the only value is wait=commit")
    key = request.headers.get("idempotency-key")
    if key is None:
        accepted = await land(None)
        return await _answer(request, ing, accepted.body)
    if not key or len(key) > 255:
        raise HTTPException(400, "Idempotency-Key must be 1 to 255 characters")
    store = ing.idempotency
    claim = await _run(store.claim, principal.name, key)
    if claim.state == "in_flight":
        raise HTTPException(409, f"a request with Idempotency-Key {key!r} is still being processed; retry later")
    if claim.state == "done":
        if _fingerprint(request, await _body_hash(request, limit)) != claim.fingerprint:
            raise HTTPException(422, f"Idempotency-Key {key!r} was used for a different request")
        stored = json.loads(claim.response or "{}")
        return await _answer(request, ing, stored, replayed=True)
    try:
        accepted = await land(key)
    except BaseException:
        await _run(store.release, principal.name, key)  # nothing was accepted: a retry may go ahead
        raise
    if not accepted.finished:
        fingerprint = _fingerprint(request, accepted.body_hash)
        await _run(store.finish, principal.name, key, fingerprint, 202, json.dumps(accepted.body))
    return await _answer(request, ing, accepted.body)


async def _answer(request: Request, ing: Ingestor, body: dict[str, Any], *, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if request.query_params.get("wait") != "commit":
        return JSONResponse(body, status_code=202, headers=headers)
    events = await _wait_for_commit(ing, [e["id"] for e in body["events"]])
    rows = [_event_summary(e) for e in events]
    if events and all(e.state in ("committed", "discarded") for e in events):
        return JSONResponse({**body, "events": rows}, status_code=200, headers=headers)
    # accepted but not committed (still pending at wait_timeout, dead-lettered, or unrouted): the
    # data is durable, so still a 202, saying where each event is
    return JSONResponse({**body, "events": rows, "committed": False}, status_code=202, headers=headers)


async def _wait_for_commit(ing: Ingestor, ids: list[str]) -> list[Event]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ing.settings.wait_timeout
    while True:
        events = [e for e in await _run(lambda: [ing.ledger.get(i) for i in ids]) if e is not None]
        if all(e.state in _FINAL for e in events) or loop.time() >= deadline:
            return events
        await asyncio.sleep(_WAIT_POLL)


def _event_summary(e: Event) -> dict[str, Any]:
    row = {"id": e.id, "pipeline": e.pipeline, "state": e.state, "table": e.table, "snapshot_id": e.snapshot_id}
    return {**row, "error": e.error} if e.error else row


def _errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """icefloe errors as HTTP answers: bad input 400, unknown names 404, ledger down 503."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except WrongFormatError as exc:
            raise HTTPException(415, exc.message) from None
        except DataError as exc:
            raise HTTPException(400, str(exc)) from None
        except NotFoundError as exc:
            raise HTTPException(404, exc.message) from None
        except LedgerUnavailableError as exc:
            raise HTTPException(503, exc.message, headers={"Retry-After": "5"}) from None
        except ConfigError as exc:
            raise HTTPException(500, exc.message) from None

    return wrapped


# -- endpoints -----------------------------------------------------------------------------------
@_errors
async def put_object(request: Request) -> Response:
    source_name, key = request.path_params["source"], request.path_params["key"]
    principal = require(request, "ingest", source_name)
    ing = ingestor(request)
    source = ing.source(source_name)
    check_key(source_name, key)  # before a byte is read
    if any(ord(c) < 0x20 or c == "\x7f" for c in key):
        raise HTTPException(400, f"key {key!r} holds control characters")
    limit = ing.settings.max_object_bytes
    _check_length(request, limit)
    await _admit(request, ing)

    async def land(_idempotency: str | None) -> _Accepted:
        upload = await _run(source.upload)
        try:
            pending = bytearray()
            async for chunk in _chunks(request, limit):
                pending += chunk
                if len(pending) >= _WRITE_EVERY:
                    await _run(upload.write, bytes(pending))
                    pending.clear()
            if pending:
                await _run(upload.write, bytes(pending))
            events = await _run(ing.land_upload, upload, source, key, _traceparent(request))
        finally:
            await _run(upload.abort)  # a no-op once committed
        body = {"object": f"{source_name}:{key}", "size": upload.size, "content_hash": upload.content_hash,
                "events": [_event_summary(e) for e in events]}  # fmt: skip
        return _Accepted(body, upload.content_hash)

    return await _idempotent(request, principal, ing, limit, land)


def _traceparent(request: Request) -> str | None:
    """The caller's W3C trace context: the landing joins it (a malformed one starts a new trace)."""
    from icefloe.observe.tracing import context_from_traceparent

    return context_from_traceparent(request.headers.get("traceparent"))


@_errors
async def post_records(request: Request) -> Response:
    pipeline = request.path_params["pipeline"]
    principal = require(request, "ingest", pipeline)
    ing = ingestor(request)
    ing.check_pipeline(pipeline)
    limit = ing.settings.max_records_bytes
    _check_length(request, limit)
    await _admit(request, ing)

    async def land(idempotency: str | None) -> _Accepted:
        raw = await _body(request, limit)
        scope = f"{principal.name}\0{idempotency}" if idempotency else None
        finish: Callable[[RecordBatch, list[Event]], None] | None = None
        if idempotency:
            fingerprint, key, store = _fingerprint(request, hashlib.sha256(raw).hexdigest()), idempotency, ing.idempotency

            def store_answer(batch: RecordBatch, events: list[Event]) -> None:
                # in the landing's transaction: the answer a retry gets commits with the event
                store.finish(principal.name, key, fingerprint, 202, json.dumps(_records_body(pipeline, batch, events)))

            finish = store_answer
        batch, events = await _run(
            ing.accept_records, pipeline, raw, request.headers.get("content-type", ""), scope, _traceparent(request), finish
        )
        return _Accepted(_records_body(pipeline, batch, events), "", finished=finish is not None)

    return await _idempotent(request, principal, ing, limit, land)


def _records_body(pipeline: str, batch: RecordBatch, events: list[Event]) -> dict[str, Any]:
    return {"pipeline": pipeline, "rows": batch.rows, "events": [_event_summary(e) for e in events]}


@_errors
async def get_event(request: Request) -> Response:
    ing = ingestor(request)
    found = await _run(ing.ledger.get, request.path_params["id"])
    # `read`, or the `ingest` scope of the source or pipeline the event came by
    who = authenticate(request)
    mine = found is not None and who is not None and (who.allows("ingest", found.source) or who.allows("ingest", found.pipeline))
    if not mine:
        require(request, "read")  # 401 or 403 (an ingest token learns nothing of others' ids)
    if found is None:
        raise NotFoundError(f"no event {request.path_params['id']!r}")
    row = found.to_dict()
    row.pop("lease_owner", None)  # which host and process holds it is no client's business
    return JSONResponse(row)


async def openapi(request: Request) -> Response:
    # unauthenticated: the document is the same for every project and names no data
    return JSONResponse(openapi_document())


ROUTES: list[BaseRoute] = [
    Route("/v1/openapi.json", openapi, methods=["GET"]),
    Route("/v1/objects/{source}/{key:path}", put_object, methods=["PUT"]),
    Route("/v1/records/{pipeline}", post_records, methods=["POST"]),
    Route("/v1/events/{id}", get_event, methods=["GET"]),
]
