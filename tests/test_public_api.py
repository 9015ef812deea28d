from __future__ import annotations

import importlib

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
