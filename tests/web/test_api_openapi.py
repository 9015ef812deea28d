"""The served OpenAPI document, and a property-based run of schemathesis against the app with it:
no 5xx, every status, header and body as the document says (examples limited: seconds, not minutes)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.web.app import create_app
from icefloe.web.openapi import openapi_document
from tests.web.apiproject import api_project, bearer

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]  # fmt: skip


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    # no worker runs: wait=commit gives up fast, answering 202 as the document says
    with Project(api_project(tmp_path / "p", max_object_bytes="64KB", max_records_bytes="64KB", wait_timeout="200ms")) as project:
        yield create_app(project)


def test_the_document_is_served_without_a_token(app: Any) -> None:
    served = TestClient(app).get("/v1/openapi.json")
    assert served.status_code == 200 and served.json() == openapi_document()
    assert set(served.json()["paths"]) == {"/v1/objects/{source}/{key}", "/v1/records/{pipeline}", "/v1/events/{id}"}


@pytest.fixture
def api(app: Any) -> Any:
    loaded = schemathesis.openapi.from_asgi("/v1/openapi.json", app)
    # name this project's source and pipelines, so generated requests also reach the landing
    # path and not only 404 (the served document cannot know a project's names)
    raw = copy.deepcopy(loaded.raw_schema)
    paths = raw["paths"]
    paths["/v1/objects/{source}/{key}"]["put"]["parameters"][0]["schema"] = {"enum": ["landing", "other"]}
    paths["/v1/records/{pipeline}"]["post"]["parameters"][0]["schema"] = {"enum": ["clicks", "orders", "nope"]}
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = app
    return schema


def test_the_api_keeps_to_its_document(api: Any) -> None:
    # the operations one by one under hypothesis (schemathesis' pytest plugin does not run on
    # this pytest), each with a bounded number of generated requests
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 3

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.explicit, Phase.generate])  # fmt: skip
        def conforms(case: Any) -> None:
            case.call_and_validate(headers=bearer(), checks=CHECKS)

        conforms()
