"""icefloe: a file lands, its rows are queryable in Iceberg, exactly once.

Packages by concept, data flowing one way:

    sources/ -> routing -> ledger/ -> pipelines/ -> lake/ -> query/
                        engine (the worker loop) ties them together
    observe/, cli/, web/ sit on top and call `Project`, never the backends directly.

A package may import from packages to its left, never to its right; a backend (sqlite ledger,
folder source, a catalog) is reached only through its seam's `open_*` registry function.
"""

from icefloe.errors import DataError, IcefloeError, PermanentError, TransientError
from icefloe.project import Project

__all__ = ["Project", "IcefloeError", "TransientError", "PermanentError", "DataError", "__version__"]
__version__ = "0.1.0"
