"""Fixtures of the source tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sources.nats_helpers import fresh_stream


@pytest.fixture
def stream() -> Iterator[str]:
    """A JetStream stream of its own (subjects `<name>.>`), deleted afterwards."""
    yield from fresh_stream()
