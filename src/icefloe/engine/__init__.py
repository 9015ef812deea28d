"""The worker: land objects, lease events, run pipelines, micro-batch and commit per table.

One Engine per process. Events for the same table coalesce into one commit, flushed when the
batch reaches max_rows/max_bytes, waited max_wait, or nothing more is runnable for that table.

It runs on a `Runtime` (config, ledger, catalog, sources, router, quarantine sink, clock) and
is composed of parts it owns and wires, each taking the runtime and the few callbacks it needs:

- `landing.py`: `Lander`, objects -> ledger events (watch notices, the reconcile scan, stamps);
  in a running worker, notices land on its own thread, beside the loop's commits.
- `committing.py`: `Committer`, commits (children before parents), the maintenance commits make
  due (through the engine's `Upkeep`); its parts `batching.py` (per-table buffers, when a batch
  is due; in a running worker the commit runs on a thread beside the loop, one at a time) and
  `failures.py` (failed events, and the newer ones that wait for them).
- `processing.py`: one leased event's pipeline run (superseded, duplicate, already committed).
- `worker.py`: the `Engine` itself: lease, and the `drain` / `serve` loops.
"""

from icefloe.engine.worker import Engine

__all__ = ["Engine"]
