"""The OpenAPI 3.1 document of the ingest API (served at /v1/openapi.json; schemathesis tests
the app against it). Written out rather than generated: it is the contract clients code to."""

from __future__ import annotations

from typing import Any

from icefloe import __version__

__all__ = ["openapi_document"]


def _error(description: str, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        answer["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
    return answer


_AUTH = {
    "401": _error("no token, or an unknown one", **{"WWW-Authenticate": "Bearer"}),
    "403": _error("the token lacks the scope"),
}
_INGEST_ERRORS = {
    **_AUTH,
    "400": _error("bad input: the message names the line or item"),
    "404": _error("no such source or pipeline"),
    "409": _error("a request with this Idempotency-Key is still in flight"),
    "413": _error("the body is over the configured limit"),
    "422": _error("the Idempotency-Key was used for another body"),
    "429": _error("the backlog is full", **{"Retry-After": "seconds to wait"}),
    "503": _error("the ledger is unreachable", **{"Retry-After": "seconds to wait"}),
}
_ACCEPTED = {
    "202": {
        "description": "durable on the source and in the ledger (with wait=commit: not committed in time, or dead-lettered)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
    },
    "200": {
        "description": "wait=commit: every event committed",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
    },
}
_WRITE_PARAMS = [
    {"name": "Idempotency-Key", "in": "header", "required": False,
     "schema": {"type": "string", "minLength": 1, "maxLength": 255},
     "description": "a retry with the same key and body gets the first answer"},
    {"name": "wait", "in": "query", "required": False, "schema": {"type": "string", "enum": ["commit"]},
     "description": "answer once the events are committed (200), not once they are accepted (202)"},
]
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "icefloe ingest API", "version": __version__},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/objects/{source}/{key}": {
                "put": {
                    "summary": "Stream a file onto a source; it lands like any object there",
                    "parameters": [
                        {"name": "source", "in": "path", "required": True, "schema": _NAME},
                        {"name": "key", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
                        *_WRITE_PARAMS,
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "responses": {**_ACCEPTED, **_INGEST_ERRORS},
                }
            },
            "/v1/records/{pipeline}": {
                "post": {
                    "summary": "Post records (NDJSON or a JSON array of objects) to a pipeline",
                    "parameters": [{"name": "pipeline", "in": "path", "required": True, "schema": _NAME}, *_WRITE_PARAMS],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                        },
                    },
                    "responses": {**_ACCEPTED, **_INGEST_ERRORS,
                                  "415": _error("the pipeline does not read NDJSON")},
                }
            },
            "/v1/events/{id}": {
                "get": {
                    "summary": "Where an event is now",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}],
                    "responses": {
                        "200": {"description": "the event",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}},
                        **_AUTH,
                        "404": _error("no such event"),
                        "503": _error("the ledger is unreachable", **{"Retry-After": "seconds to wait"}),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "EventSummary": {
                    "type": "object",
                    "required": ["id", "state"],
                    "properties": {
                        "id": {"type": "string"},
                        "pipeline": {"type": ["string", "null"]},
                        "state": {"type": "string"},
                        "table": {"type": ["string", "null"]},
                        "snapshot_id": {"type": ["integer", "null"]},
                        "error": {"type": "string"},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {"type": "array", "items": {"$ref": "#/components/schemas/EventSummary"}},
                        "object": {"type": "string"},
                        "pipeline": {"type": "string"},
                        "rows": {"type": "integer"},
                        "size": {"type": "integer"},
                        "content_hash": {"type": "string"},
                        "committed": {"type": "boolean"},
                        "error": {"type": "string"},
                    },
                },
                "Event": {
                    "type": "object",
                    "required": ["id", "source", "key", "state", "attempts"],
                    "properties": {
                        "id": {"type": "string"}, "source": {"type": "string"}, "key": {"type": "string"},
                        "pipeline": {"type": ["string", "null"]}, "state": {"type": "string"},
                        "attempts": {"type": "integer"}, "error": {"type": ["string", "null"]},
                        "table": {"type": ["string", "null"]}, "snapshot_id": {"type": ["integer", "null"]},
                        "rows_out": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    }
