"""Shared fixtures: every test runs with a clean environment and its own HOME."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

pytest_plugins = ["tests.s3server"]  # the moto S3 server fixtures (s3_server, s3_bucket)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if name.startswith("ICEFLOE__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


def require_service(host: str, port: int, name: str) -> None:
    """Service tests fail (not skip) under CI=true when the service is missing."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not reachable on {host}:{port} and CI=true")
        pytest.skip(f"{name} not running on {host}:{port}")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
