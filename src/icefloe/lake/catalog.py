"""Open an Iceberg catalog by URI: sqlite (embedded default), postgresql, or a REST catalog."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from icefloe.errors import ConfigError, NotInstalledError, StorageUnavailableError

if TYPE_CHECKING:  # pyiceberg loads when a catalog is opened (config load only checks the URI)
    from pyiceberg.catalog import Catalog

    from icefloe.config.s3 import S3Settings

__all__ = ["catalog_outage", "catalog_uri_problem", "io_properties", "open_catalog", "redacted", "warehouse_uri"]

_SCHEMES = ("sqlite", "postgresql", "postgres", "http", "https", "rest")


def catalog_uri_problem(uri: str) -> str | None:
    """Why `open_catalog` would refuse this URI, known without opening it (checked at load)."""
    if uri.partition("://")[0].split("+")[0] in _SCHEMES:
        return None
    return f"unknown catalog {redacted(uri)!r}; use sqlite:///file.db, postgresql://..., or http(s):// (REST)"


def warehouse_uri(warehouse: str, root: Path) -> str:
    """A relative warehouse is relative to the project; object-store URIs pass through."""
    if "://" in warehouse:
        return warehouse.rstrip("/")
    path = Path(warehouse)
    path = path if path.is_absolute() else root / path
    path.mkdir(parents=True, exist_ok=True)
    return f"file://{path.resolve()}"


def redacted(uri: str) -> str:
    """The URI without its password: it goes into the ledger, logs and `status`."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", uri)


def catalog_outage(exc: BaseException, uri: str) -> StorageUnavailableError | None:
    """A catalog that cannot be reached right now (refused, unresolvable, timed out, a database
    file that cannot be opened, a REST server answering 5xx), as the transient error it is; None
    for anything else, which keeps its own type and its own retry decision."""
    if isinstance(exc, StorageUnavailableError):
        return exc
    outage: tuple[type[BaseException], ...] = ()
    try:
        from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

        outage += (OperationalError, InterfaceError, DisconnectionError)
    except ImportError:  # pragma: no cover - pyiceberg's SQL catalog needs it
        pass
    try:
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import Timeout

        outage += (RequestsConnectionError, Timeout)
    except ImportError:  # pragma: no cover - pyiceberg's REST catalog needs it
        pass
    from pyiceberg.exceptions import ServerError, ServiceUnavailableError

    outage += (ServerError, ServiceUnavailableError)
    if not isinstance(exc, outage):
        return None
    reason = _first_line(getattr(exc, "orig", None) or exc)
    error = StorageUnavailableError(f"catalog {redacted(uri)} is unavailable: {reason}")
    error.__cause__ = exc
    return error


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def io_properties(warehouse: str, s3: S3Settings | None) -> dict[str, str]:
    """FileIO properties for the warehouse: an s3:// one gets the project's `s3:` settings (the
    sources' connection model); a local one needs none."""
    if warehouse.partition("://")[0] not in ("s3", "s3a", "s3n"):
        return {}
    from icefloe.config.s3 import S3Settings
    from icefloe.sources.s3conn import fileio_properties

    return fileio_properties(s3 or S3Settings())


def open_catalog(uri: str, warehouse: str, root: Path, name: str = "icefloe", s3: S3Settings | None = None) -> Catalog:
    """Raises `StorageUnavailableError` when the catalog cannot be opened now (a retry may work),
    `ConfigError` when no retry can help."""
    try:
        return _open(uri, warehouse, root, name, io_properties(warehouse, s3))
    except (ConfigError, NotInstalledError):
        raise
    except OSError as exc:  # a folder for the database file or the warehouse cannot be made
        if (outage := catalog_outage(exc, uri)) is not None:
            raise outage from exc
        raise StorageUnavailableError(f"catalog {redacted(uri)} cannot be opened: {exc}") from exc
    except Exception as exc:
        if (outage := catalog_outage(exc, uri)) is not None:
            raise outage from exc
        raise


def _open(uri: str, warehouse: str, root: Path, name: str, props: dict[str, str]) -> Catalog:
    scheme = uri.partition("://")[0].split("+")[0]
    location = warehouse_uri(warehouse, root)
    if scheme == "sqlite":
        from icefloe.lake.compat import LeanSqlCatalog

        rest = uri.partition("://")[2]
        path = rest.removeprefix("/")
        if path != ":memory:" and path:
            # sqlite:///rel.db is relative to the project, sqlite:////abs.db absolute; either
            # way the database file's folder is made, as SQLite itself never makes it
            file = Path(path) if rest.startswith("//") else root / path
            file.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{file.resolve()}"
        return LeanSqlCatalog(name, uri=uri, warehouse=location, **props)
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise NotInstalledError("psycopg", "postgres") from None
        from icefloe.lake.compat import LeanSqlCatalog

        dsn = "postgresql+psycopg://" + uri.partition("://")[2]
        return LeanSqlCatalog(name, uri=dsn, warehouse=location, **props)
    if scheme in ("http", "https", "rest"):
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(name, uri=uri.replace("rest://", "http://", 1), warehouse=location, **props)
    raise ConfigError(catalog_uri_problem(uri) or f"unknown catalog {redacted(uri)!r}")
