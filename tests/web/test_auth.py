"""Tokens for `icefloe serve`: stored hashed, checked on every request but /healthz, scoped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.errors import ConfigError
from icefloe.web.app import create_app
from icefloe.web.auth import Principal, hash_token, new_token, require
from tests.cli.invoke import invoke
from tests.helpers import make_project


async def _ingest(request: Request) -> Response:
    principal = require(request, "ingest", request.path_params["name"])
    return JSONResponse({"who": principal.name})


async def _replay(request: Request) -> Response:
    return JSONResponse({"who": require(request, "operate").name})


async def _read(request: Request) -> Response:
    return JSONResponse({"who": require(request, "read").name})


ROUTES = [Route("/ingest/{name}", _ingest, methods=["POST"]), Route("/replay", _replay, methods=["POST"]),
          Route("/read", _read)]  # fmt: skip
PIPELINES = {"orders": {"read": {"format": "csv"}, "write": {"table": "sales.orders"}}}


@pytest.fixture
def tokens() -> dict[str, str]:
    return {"reader": new_token(), "loader": new_token(), "ops": new_token()}


@pytest.fixture
def client(tmp_path: Path, tokens: dict[str, str]) -> TestClient:
    serve = {"tokens": [
        {"name": "reader", "hash": hash_token(tokens["reader"]), "scopes": ["read"]},
        {"name": "loader", "hash": hash_token(tokens["loader"]), "scopes": ["ingest:landing"]},
        {"name": "ops", "hash": hash_token(tokens["ops"]), "scopes": ["operate"]},
    ]}  # fmt: skip
    root = make_project(tmp_path / "p", PIPELINES, serve=serve)
    return TestClient(create_app(Project(root), routes=ROUTES))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"ok": True}


def test_a_request_without_a_token_is_refused_with_401(client: TestClient) -> None:
    answer = client.get("/read")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/read", headers={"Authorization": "Basic abc"}).status_code == 401


def test_an_unknown_token_is_refused_with_401(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/read", headers=_bearer(tokens["reader"] + "x")).status_code == 401


def test_scopes_limit_what_a_token_may_do(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/read", headers=_bearer(tokens["reader"])).json() == {"who": "reader"}
    assert client.post("/ingest/landing", headers=_bearer(tokens["reader"])).status_code == 403
    assert client.post("/ingest/landing", headers=_bearer(tokens["loader"])).json() == {"who": "loader"}
    assert client.post("/ingest/other", headers=_bearer(tokens["loader"])).status_code == 403
    assert client.get("/read", headers=_bearer(tokens["loader"])).status_code == 403
    # operate implies read, not ingest
    assert client.get("/read", headers=_bearer(tokens["ops"])).json() == {"who": "ops"}
    assert client.post("/replay", headers=_bearer(tokens["ops"])).json() == {"who": "ops"}
    assert client.post("/replay", headers=_bearer(tokens["reader"])).status_code == 403


def test_the_session_cookie_carries_a_token_too(client: TestClient, tokens: dict[str, str]) -> None:
    client.cookies.set("icefloe_session", tokens["reader"])
    assert client.get("/read").json() == {"who": "reader"}


def test_principal_scopes() -> None:
    p = Principal("p", frozenset({"ingest", "read"}))
    assert p.allows("ingest", "any") and p.allows("read") and not p.allows("operate")


def test_a_bad_hash_or_scope_names_its_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", PIPELINES, serve={"tokens": [{"name": "t", "hash": "abc", "scopes": ["root"]}]})
    with pytest.raises(ConfigError) as caught:
        Project(root)
    message = str(caught.value)
    assert "icefloe.yaml:" in message and "sha256:" in message and "unknown scope" in message


def test_token_new_prints_a_token_whose_hash_is_the_config_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "token", "new", "ci", "--scope", "read", "--scope", "ingest:landing")
    assert code == 0
    secret = err.split("keep it secret): ")[1].split()[0]
    entry = yaml.safe_load(out)[0]
    assert entry == {"name": "ci", "hash": hash_token(secret), "scopes": ["read", "ingest:landing"]}
    assert invoke(capsys, "token", "new", "x", "--scope", "admin")[0] == 2


def test_serve_refuses_to_start_without_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", PIPELINES)
    code, _, err = invoke(capsys, "serve", "-p", str(root))
    assert code == 2 and "icefloe token new" in err
