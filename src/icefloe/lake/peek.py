"""A table's figures for `icefloe status`, read from its files by the standard library.

`status` shows per table the snapshot count, rows, files and its file health (data files, small
files, manifests, metadata bytes). Through pyiceberg that costs the imports of pyiceberg,
SQLAlchemy and pyarrow before the first number: most of the command's time (1.8 s of a 2 s
`status` on a quiet machine, 20 s on a busy one). The figures need little: the catalog's row
for the table (one SELECT), its metadata JSON, and the manifest lists and manifests (Avro).

So for a SQL catalog (SQLite, PostgreSQL) whose metadata is on the local file system this
module reads them directly, with sqlite3 (or the PostgreSQL driver the ledger uses), json and
zlib: the same walk as `lake.maintain.table_stats`, over the same files, giving the same numbers
(tests/lake/test_peek.py compares them). Anything else (a REST catalog, an object store, an Avro
codec other than null and deflate, a catalog schema it does not know) raises `CannotPeek`, and
the caller asks pyiceberg as before. Read-only: it never creates or changes a thing.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from icefloe.lake.policy import MAINTAINED_AT_PROPERTY

__all__ = ["CannotPeek", "Peeked", "peek_tables"]

_DELETED = 2  # manifest entry status
_DATA = 0  # data file content / manifest content


class CannotPeek(Exception):
    """This catalog or table is not one read here: ask pyiceberg."""


@dataclass(frozen=True)
class Peeked:
    """What `status` shows of one table (None from `peek_tables`: the catalog has no such table)."""

    snapshots: int
    rows: int
    files: int
    last_snapshot: int | None
    last_commit_ms: int | None
    stats: dict[str, Any]  # as `lake.maintain.table_stats` returns them


def peek_tables(uri: str, root: Path, names: list[str], small: dict[str, int], catalog: str = "icefloe") -> dict[str, Peeked | None]:
    """Each table's figures (None: not in the catalog); `small[name]` is its small-file threshold."""
    locations = _locations(uri, root, catalog)
    out: dict[str, Peeked | None] = {}
    for name in names:
        namespace, _, table = name.rpartition(".")
        location = locations.get((namespace, table))
        out[name] = None if location is None else _peek(location, small[name])
    return out


# -- the catalog -----------------------------------------------------------------------------------
def _locations(uri: str, root: Path, catalog: str) -> dict[tuple[str, str], str]:
    """(namespace, table) -> metadata location, from pyiceberg's SQL catalog table."""
    scheme, _, rest = uri.partition("://")
    scheme = scheme.split("+")[0]
    if scheme == "sqlite":
        path = rest.removeprefix("/")
        if not path or path == ":memory:":
            raise CannotPeek("an in-memory catalog")
        file = Path(path) if rest.startswith("//") else root / path
        if not file.is_file():  # pyiceberg would make it: leave that to it
            raise CannotPeek(f"{file} does not exist yet")
        import sqlite3

        try:
            db = sqlite3.connect(f"file:{file.resolve()}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise CannotPeek(str(exc)) from exc
        try:
            return _select(db.cursor(), "?", catalog, sqlite3.Error)
        finally:
            db.close()
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg
        except ImportError as exc:
            raise CannotPeek("no psycopg") from exc
        try:
            with psycopg.connect("postgresql://" + rest, autocommit=True, connect_timeout=10) as pg:
                return _select(pg.cursor(), "%s", catalog, psycopg.Error)
        except psycopg.Error as exc:
            raise CannotPeek(str(exc)) from exc
    raise CannotPeek(f"a {scheme} catalog")


def _select(cursor: Any, mark: str, catalog: str, error: type[Exception]) -> dict[tuple[str, str], str]:
    base = f"SELECT table_namespace, table_name, metadata_location FROM iceberg_tables WHERE catalog_name = {mark}"
    try:
        # views share the table (pyiceberg's v1 catalog schema); a v0 one has no iceberg_type
        cursor.execute(base + " AND (iceberg_type IS NULL OR iceberg_type = 'TABLE')", (catalog,))
    except error as exc:
        if "iceberg_type" not in str(exc):
            raise CannotPeek(str(exc)) from exc
        try:
            getattr(cursor.connection, "rollback", lambda: None)()
            cursor.execute(base, (catalog,))
        except error as again:
            raise CannotPeek(str(again)) from again
    return {(ns, table): location for ns, table, location in cursor.fetchall() if location}


# -- the table's files -----------------------------------------------------------------------------
def _path(location: str) -> str:
    parts = urlsplit(location)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme == "" and location.startswith("/"):
        return location
    raise CannotPeek(f"{location} is not on the local file system")


def _size(location: str) -> int:
    try:
        return os.path.getsize(_path(location))
    except OSError:
        return 0  # as table_stats counts a file it cannot stat


def _peek(location: str, small: int) -> Peeked:
    try:
        with open(_path(location), "rb") as f:
            metadata = json.load(f)
    except (OSError, ValueError) as exc:
        raise CannotPeek(f"{location}: {exc}") from exc
    snapshots = metadata.get("snapshots") or []
    by_id = {s["snapshot-id"]: s for s in snapshots}
    current_id = metadata.get("current-snapshot-id")
    current = by_id.get(current_id) if current_id not in (None, -1) else None
    if any("manifest-list" not in s for s in snapshots):
        raise CannotPeek("a v1 table with manifests inline")
    lists: dict[str, list[dict[str, Any]]] = {}

    def manifests(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
        path = snapshot["manifest-list"]
        if path not in lists:
            lists[path] = read_avro(_path(path))
        return lists[path]

    sizes: list[int] = []
    deletes = 0
    for manifest in manifests(current) if current else []:
        for entry in read_avro(_path(manifest["manifest_path"])):
            if entry["status"] == _DELETED:
                continue
            data_file = entry["data_file"]
            if manifest.get("content", _DATA) != _DATA or data_file.get("content", _DATA) != _DATA:
                deletes += 1
            else:
                sizes.append(data_file["file_size_in_bytes"])
    reached: dict[str, int] = {}
    for snapshot in snapshots:
        for manifest in manifests(snapshot):
            reached.setdefault(manifest["manifest_path"], manifest["manifest_length"])
    json_files = [location, *(e["metadata-file"] for e in metadata.get("metadata-log") or [])]
    metadata_bytes = sum(_size(p) for p in [*json_files, *lists]) + sum(reached.values())
    small_files = sum(size < small for size in sizes)
    maintained = (metadata.get("properties") or {}).get(MAINTAINED_AT_PROPERTY)
    stats = {
        "data_files": len(sizes),
        "data_bytes": sum(sizes),
        "delete_files": deletes,
        "small_files": small_files,
        "small_file_ratio": small_files / len(sizes) if sizes else 0.0,
        "manifests": len(manifests(current)) if current else 0,
        "snapshots": len(snapshots),
        "metadata_bytes": metadata_bytes,
        "last_maintained_at": float(maintained) if maintained else None,
    }
    summary = (current or {}).get("summary") or {}
    return Peeked(
        snapshots=len(snapshots),
        rows=int(summary.get("total-records") or 0) if current else 0,
        files=int(summary.get("total-data-files") or 0) if current else 0,
        last_snapshot=current["snapshot-id"] if current else None,
        last_commit_ms=current["timestamp-ms"] if current else None,
        stats=stats,
    )


# -- Avro object container files -------------------------------------------------------------------
def read_avro(path: str) -> list[Any]:
    """Every record of an Avro object container file (codec null or deflate), as dicts."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CannotPeek(f"{path}: {exc}") from exc
    if data[:4] != b"Obj\x01":
        raise CannotPeek(f"{path} is not an Avro file")
    reader = _Reader(data, 4)
    meta = reader.map_of(lambda r: r.bytes_())
    codec = meta.get("avro.codec", b"null").decode()
    if codec not in ("null", "deflate"):
        raise CannotPeek(f"{path}: Avro codec {codec}")
    schema = json.loads(meta["avro.schema"])
    named: dict[str, Any] = {}
    sync = data[reader.at : reader.at + 16]
    reader.at += 16
    records: list[Any] = []
    while reader.at < len(data):
        count = reader.long()
        size = reader.long()
        block = data[reader.at : reader.at + size]
        reader.at += size
        if data[reader.at : reader.at + 16] != sync:
            raise CannotPeek(f"{path}: a block does not end in the file's sync marker")
        reader.at += 16
        items = _Reader(zlib.decompress(block, -15) if codec == "deflate" else block, 0)
        records += [items.value(schema, named) for _ in range(count)]
    return records


class _Reader:
    """Avro's binary encoding: zig-zag varints, length-prefixed bytes, blocked arrays and maps."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at

    def long(self) -> int:
        data, at = self.data, self.at
        shift = result = 0
        while True:
            byte = data[at]
            at += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        self.at = at
        return (result >> 1) ^ -(result & 1)

    def bytes_(self) -> bytes:
        size = self.long()
        out = self.data[self.at : self.at + size]
        self.at += size
        return out

    def blocks(self) -> Any:
        while count := self.long():
            if count < 0:  # a block that also says its size in bytes
                count = -count
                self.long()
            yield from range(count)

    def map_of(self, value: Any) -> dict[str, Any]:
        out = {}
        for _ in self.blocks():
            key = self.bytes_().decode()
            out[key] = value(self)
        return out

    def value(self, schema: Any, named: dict[str, Any]) -> Any:
        if isinstance(schema, list):  # a union: the branch's index, then its value
            return self.value(schema[self.long()], named)
        if isinstance(schema, str):
            kind = schema
        else:
            kind = schema["type"]
            if isinstance(kind, (dict, list)):
                return self.value(kind, named)
            if "name" in schema and kind in ("record", "enum", "fixed"):
                named[schema["name"]] = schema
        if kind in ("long", "int"):
            return self.long()
        if kind == "string":
            return self.bytes_().decode()
        if kind == "bytes":
            return self.bytes_()
        if kind == "null":
            return None
        if kind == "boolean":
            self.at += 1
            return self.data[self.at - 1] != 0
        if kind == "record":
            return {f["name"]: self.value(f["type"], named) for f in schema["fields"]}
        if kind == "array":
            return [self.value(schema["items"], named) for _ in self.blocks()]
        if kind == "map":
            return self.map_of(lambda r: r.value(schema["values"], named))
        if kind in ("float", "double"):
            import struct

            width = 4 if kind == "float" else 8
            self.at += width
            return struct.unpack("<f" if width == 4 else "<d", self.data[self.at - width : self.at])[0]
        if kind == "fixed":
            self.at += schema["size"]
            return self.data[self.at - schema["size"] : self.at]
        if kind == "enum":
            return schema["symbols"][self.long()]
        if kind in named:  # a named type defined earlier in the schema
            return self.value(named[kind], named)
        raise CannotPeek(f"Avro type {kind!r}")
