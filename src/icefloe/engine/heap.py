"""The worker's heap and Python's cyclic garbage collector.

A full collection walks every container object the interpreter tracks. Once a worker has made
its first commit it holds some 120,000 of them (pyiceberg's and pydantic's models and schemas,
SQLAlchemy, the config, the parsed table metadata), nearly all alive for the life of the
process, and the collector walked all of them about once per 100 one-file commits: each walk
landed in one file's time and was among the slowest files of bench 8 (`bench.flat_phases`
attributes the time per phase, `gc2` among them). Frozen once (`gc.freeze`) after that first
commit, when imports, catalog, table and pipelines are loaded, they stay out of every later
collection, which then walks only what the worker made since.

The cost: cyclic garbage among the frozen objects is never collected. A collection just before
the freeze clears what start-up left; what is frozen after it is alive.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["freeze_startup_heap"]

_done = False
_lock = threading.Lock()


def freeze_startup_heap() -> bool:
    """Collect once, then move every tracked object to the permanent generation; only the
    first call in a process does it (True then)."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
    gc.collect()
    gc.freeze()
    return True
