"""icefloe: a file lands, its rows are queryable in Iceberg, exactly once.

Packages by concept, data flowing one way:

    sources/ -> routing -> ledger/ -> pipelines/ -> lake/ -> runtime -> query/
    engine (the worker loop), observe/ and upkeep run on a `Runtime` (runtime.py)
    `Project` parses icefloe.yaml and builds the Runtime; cli/, web/ call `Project`.

A package may import from packages to its left, never to its right; a backend (sqlite ledger,
folder source, a catalog) is reached only through its seam's `open_*` registry function.
"""

import os

# pyarrow's allocator (mimalloc) keeps the pages it freed for a while; an upsert that rewrites
# every file of a table frees and allocates its whole size in chunks, and the kept pages (not
# live data) doubled the process's peak RSS. Returned at once, RSS follows the rows in flight.
# Read when pyarrow loads, so only if icefloe is imported first; an explicit setting wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

from icefloe.errors import DataError, IcefloeError, PermanentError, TransientError
from icefloe.project import Project

__all__ = ["Project", "IcefloeError", "TransientError", "PermanentError", "DataError", "__version__"]
__version__ = "0.1.0"
