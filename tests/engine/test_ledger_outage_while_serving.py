"""`run` through a ledger outage: a warning per failed step, not a traceback, and a pause before
the next try (a worker retrying every poll would fill its log while the server is down)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from icefloe.engine import Engine
from icefloe.errors import LedgerUnavailableError
from tests.engine.fakes import fake_runtime

ORDERS = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "sales.orders"}}


class _CountingStop(threading.Event):
    """Records how long the worker means to wait; set after a few waits."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.waits: list[float | None] = []
        self.after = after

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.after:
            self.set()
        return self.is_set()


def test_a_lost_ledger_is_a_warning_and_the_worker_pauses_before_trying_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ = fake_runtime(tmp_path, {"orders": ORDERS})
    try:
        engine = Engine(runtime)

        def down() -> bool:
            raise LedgerUnavailableError("cannot reach the ledger database postgresql://db/x: refused")

        monkeypatch.setattr(engine, "step", down)
        stop = _CountingStop(after=3)
        with caplog.at_level(logging.WARNING, logger="icefloe"):
            engine.serve(stop)
        failures = [r for r in caplog.records if "cannot reach the ledger database" in r.getMessage()]
        assert len(failures) == 3
        assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failures)
        assert all(w is not None and w >= 1.0 for w in stop.waits)
    finally:
        runtime.close()
