"""Open an Iceberg catalog by URI: sqlite (embedded default), postgresql, or a REST catalog."""

from __future__ import annotations

from pathlib import Path

from pyiceberg.catalog import Catalog

from icefloe.errors import ConfigError, NotInstalledError

__all__ = ["catalog_uri_problem", "open_catalog", "warehouse_uri"]

_SCHEMES = ("sqlite", "postgresql", "postgres", "http", "https", "rest")


def catalog_uri_problem(uri: str) -> str | None:
    """Why `open_catalog` would refuse this URI, known without opening it (checked at load)."""
    if uri.partition("://")[0].split("+")[0] in _SCHEMES:
        return None
    return f"unknown catalog {uri!r}; use sqlite:///file.db, postgresql://..., or http(s):// (REST)"


def warehouse_uri(warehouse: str, root: Path) -> str:
    """A relative warehouse is relative to the project; object-store URIs pass through."""
    if "://" in warehouse:
        return warehouse.rstrip("/")
    path = Path(warehouse)
    path = path if path.is_absolute() else root / path
    path.mkdir(parents=True, exist_ok=True)
    return f"file://{path.resolve()}"


def open_catalog(uri: str, warehouse: str, root: Path, name: str = "icefloe") -> Catalog:
    scheme = uri.partition("://")[0].split("+")[0]
    location = warehouse_uri(warehouse, root)
    if scheme == "sqlite":
        from pyiceberg.catalog.sql import SqlCatalog

        rest = uri.partition("://")[2]
        path = rest[1:] if rest.startswith("/") else rest
        if not rest.startswith("//") and path != ":memory:":
            file = root / path
            file.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{file.resolve()}"
        return SqlCatalog(name, uri=uri, warehouse=location)
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise NotInstalledError("psycopg", "postgres") from None
        from pyiceberg.catalog.sql import SqlCatalog

        dsn = "postgresql+psycopg://" + uri.partition("://")[2]
        return SqlCatalog(name, uri=dsn, warehouse=location)
    if scheme in ("http", "https", "rest"):
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(name, uri=uri.replace("rest://", "http://", 1), warehouse=location)
    raise ConfigError(catalog_uri_problem(uri) or f"unknown catalog {uri!r}")
