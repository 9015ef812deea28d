"""The worker: land objects, lease events, run pipelines, micro-batch and commit per table.

One Engine per process. Events for the same table coalesce into one commit, flushed when the
batch reaches max_rows/max_bytes, waited max_wait, or nothing more is runnable for that table.

It runs on a `Runtime` (config, ledger, catalog, sources, router, quarantine sink, clock) and
is composed of parts it owns and wires, each taking the runtime and the few callbacks it needs:

- `landing.py`: `Lander`, objects -> ledger events (watch notices, the reconcile scan, stamps).
- `committing.py`: `Committer`, per-table buffers, commits (children before parents), failures,
  the maintenance commits make due (through the engine's `Upkeep`).
- `worker.py`: the `Engine` itself: lease, process, and the `drain` / `serve` loops.
"""

from icefloe.engine.worker import Engine

__all__ = ["Engine"]
