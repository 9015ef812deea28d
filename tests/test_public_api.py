from __future__ import annotations

import importlib
from pathlib import Path

import pytest

MODULES = ["icefloe", "icefloe.errors", "icefloe.config", "icefloe.ledger", "icefloe.lake", "icefloe.query", "icefloe.observe", "icefloe.sources"]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, f"{name} declares no public API"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_top_level_api() -> None:
    import icefloe

    assert {"Project", "IcefloeError", "TransientError", "PermanentError", "DataError"} <= set(icefloe.__all__)


def test_retry_or_dead_letter_is_decided_by_type() -> None:
    from icefloe.errors import CommitConflictError, DataError, SchemaError, UserCodeError, is_transient

    assert is_transient(CommitConflictError("x")) and is_transient(OSError("disk"))
    assert not any(is_transient(e) for e in (DataError("x"), SchemaError("x"), UserCodeError("x"), ValueError("x")))


PROJECT_API = {
    # the facade's methods, as the CLI and the docs call them
    "ingest", "run", "sql", "status", "trace", "tables", "history", "maintain", "table_health",
    "dead_letters", "replay", "discard", "event", "engine", "close",
    # and what it holds
    "config", "root", "router", "ledger", "catalog", "sources", "quarantine_dir", "runtime",
}  # fmt: skip


def test_project_keeps_its_public_api_on_top_of_its_runtime(tmp_path: Path) -> None:
    from icefloe import Project
    from icefloe.engine import Engine
    from icefloe.runtime import Runtime
    from tests.helpers import ORDERS, make_project

    with Project(make_project(tmp_path, {"orders": ORDERS})) as project:
        assert PROJECT_API <= {name for name in dir(project) if not name.startswith("_")}
        assert isinstance(project.runtime, Runtime) and project.runtime.config is project.config
        # one set of backends: the facade's are the runtime's, opened once
        assert project.ledger is project.runtime.ledger and project.catalog is project.runtime.catalog
        assert project.sources is project.runtime.sources and project.router is project.runtime.router
        engine = project.engine()
        assert isinstance(engine, Engine) and engine.runtime is project.runtime
        assert project.runtime.quarantine.files() == [] and project.quarantine_dir == tmp_path.resolve() / ".icefloe" / "quarantine"
