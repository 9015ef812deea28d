"""SQL (DuckDB) and Python transforms, applied to each Arrow batch of an event.

A SQL transform sees the current batch as the table `batch`; a Python transform is
`module:function`, called with a `pyarrow.Table` and returning a Table or RecordBatch. Transforms run
per batch so memory stays bounded by batch size: an aggregate in SQL aggregates one batch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from icefloe.errors import ConfigError, IcefloeError, UserCodeError

if TYPE_CHECKING:
    import duckdb

__all__ = ["Transform", "compile_transforms", "user_code_boundary"]

Transform = Callable[[pa.Table], pa.Table]
_local = threading.local()


@contextmanager
def user_code_boundary(**context: Any) -> Iterator[None]:
    """Run user code; any error comes out as an IcefloeError carrying pipeline/step/file/event."""
    try:
        yield
    except IcefloeError as exc:
        raise exc.with_context(**context)
    except Exception as exc:  # noqa: BLE001 - that is the point of a boundary
        step = context.get("step", "user code")
        raise UserCodeError(f"{step} failed", **context) from exc


def _duck() -> duckdb.DuckDBPyConnection:
    # one connection per thread: a DuckDB connection must not be shared across threads
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb  # only pipelines with SQL steps pay for it (~12 MB resident)

        con = _local.con = duckdb.connect()
    return con


def _sql(query: str) -> Transform:
    def run(batch: pa.Table) -> pa.Table:
        con = _duck()
        con.register("batch", batch)
        try:
            return con.sql(query).to_arrow_table()
        finally:
            con.unregister("batch")

    return run


def _import(module_name: str, root: Path) -> ModuleType:
    """A module file in the project folder is loaded per project, so two projects in one process
    (or a fixed hooks.py after `dlq replay`) never see each other's cached module."""
    file = root / (module_name.replace(".", "/") + ".py")
    if not file.is_file():
        return importlib.import_module(module_name)
    unique = f"_icefloe_user_{hashlib.sha1(str(file).encode()).hexdigest()[:10]}_{module_name.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(unique, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return module


def _python(ref: str, root: Path) -> Transform:
    module_name, _, func_name = ref.partition(":")
    if not module_name or not func_name:
        raise ConfigError(f"python transform {ref!r} must look like module:function")
    try:
        func = getattr(_import(module_name, root), func_name)
    except (ImportError, AttributeError, OSError) as exc:
        raise ConfigError(f"python transform {ref!r}: cannot import ({exc})") from None

    def run(batch: pa.Table) -> pa.Table:
        result = func(batch)
        if isinstance(result, pa.RecordBatch):
            return pa.Table.from_batches([result])
        if not isinstance(result, pa.Table):
            raise TypeError(f"{ref} returned {type(result).__name__}, expected pyarrow.Table or RecordBatch")
        return result

    return run


def compile_transforms(steps: list[dict[str, Any]], root: Path) -> list[tuple[str, Transform]]:
    out = []
    for index, step in enumerate(steps):
        kind, arg = next(iter(step.items()))
        label = f"transform[{index}] {kind}"
        out.append((label, _sql(arg) if kind == "sql" else _python(arg, root)))
    return out
