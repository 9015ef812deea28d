"""The worker: land objects, lease events, run pipelines, micro-batch and commit per table.

One Engine per process. Events for the same table coalesce into one commit, flushed when the
batch reaches max_rows/max_bytes, waited max_wait, or nothing more is runnable for that table.

- `landing.py`: objects -> ledger events (watch notices, the reconcile scan, stamps).
- `committing.py`: per-table buffers, commits (children before parents), failures, maintenance.
- `worker.py`: the `Engine` itself: lease, process, and the `drain` / `serve` loops.
"""

from icefloe.engine.worker import Engine

__all__ = ["Engine"]
