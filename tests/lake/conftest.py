"""Fixtures of the lake tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from icefloe.lake import open_catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """A real SQLite catalog with a local warehouse in the test's folder."""
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
