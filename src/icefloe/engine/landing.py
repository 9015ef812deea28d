"""Landing: a complete object becomes ledger events (one per routed pipeline)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from icefloe.errors import IcefloeError, ObjectChangedError
from icefloe.ledger.base import Event
from icefloe.runtime import Runtime
from icefloe.sources.base import Landed, Source

__all__ = ["Lander"]

log = logging.getLogger("icefloe")


class Lander:
    """The `Engine`'s part that finds objects and records them: the reconcile scan, watch
    notices waiting to settle, and the events a landed object becomes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.ledger = runtime.ledger
        # objects a watcher noticed, waiting to settle: path -> (source, seen closed)
        self._candidates: dict[Path, tuple[Source, bool]] = {}
        self._lock = threading.Lock()

    def _unchanged(self, source: Source, path: Path) -> bool:
        """Landed before with this very stamp: no need to hash it again."""
        return self.ledger.object_stamp(source.name, source.key_for(path)) == source.stamp(path)

    def land(self, source: Source, path: Path) -> list[Event]:
        if self._unchanged(source, path):
            return []
        return self.land_object(source.describe(path))

    def land_object(self, landed: Landed) -> list[Event]:
        """Record a complete object and route it; returns the events that are new."""
        pipelines = self.runtime.router.match(landed.source, landed.key)
        attempts = {p: self.config.pipelines[p].retry.max_attempts for p in pipelines}
        events = self.ledger.land(
            source=landed.source, key=landed.key, uri=landed.uri, content_hash=landed.content_hash,
            size=landed.size, pipelines=pipelines, max_attempts=attempts, stamp=landed.stamp,
        )  # fmt: skip
        if landed.stamp:
            self.ledger.set_object_stamp(landed.source, landed.key, landed.stamp)
        return events

    def reroute(self) -> int:
        """Objects recorded `unrouted` that the config now routes (a route was added or fixed)
        land again, for their pipelines, and their `unrouted` record goes."""
        count, after = 0, None
        # a page at a time: the pages are keyed by seq, so the rows requeued meanwhile move no boundary
        while page := self.ledger.page(states=["unrouted"], after=after, limit=1000):
            after = page[-1].seq
            for ev in page:
                source = self.runtime.sources.get(ev.source)
                if source is None or not self.runtime.router.match(ev.source, ev.key):
                    continue
                try:
                    landed = source.describe(source.open_path(ev.key))
                except (OSError, IcefloeError) as exc:  # gone or unreadable: it stays unrouted, shown
                    log.warning("could not route %s again: %s", ev.object_ref, exc)
                    continue
                self.ledger.requeue_unrouted([(ev.source, ev.key)])
                count += len(self.land_object(landed))
        return count

    def reconcile(self) -> int:
        """Find objects that landed while nothing ran (the scan at start), oldest first: what
        piled up must land in the order it was written, or an older file could win an upsert."""
        count = self.reroute()
        for source, path in _oldest_first((s, p) for s in self.runtime.sources.values() for p in s.scan()):
            try:
                if self._unchanged(source, path):
                    continue  # landed before (or just now by `ingest`)
                if not source.is_stable(path):
                    self.notice(source, path, False)
                    continue
                count += len(self.land_object(source.describe(path)))
            except ObjectChangedError:
                self.notice(source, path, False)  # still being written: look again once it settles
            except (OSError, IcefloeError) as exc:  # vanished, unreadable, or a symlink out of the root
                log.warning("could not land %s: %s", path, exc)
        return count

    def notice(self, source: Source, path: Path, complete: bool) -> None:
        # the latest notice wins: a file written again after a close is incomplete once more
        with self._lock:
            self._candidates[path] = (source, complete)

    def _noticer(self, source: Source) -> Callable[[Path, bool], None]:
        return lambda path, complete: self.notice(source, path, complete)

    def _land_candidates(self) -> None:
        with self._lock:
            ready, settling = [], []
            for p, (s, c) in self._candidates.items():
                if s.is_stable(p, c):
                    ready.append((p, s, c))
                elif p.exists():
                    settling.append(p)
            # landing order is the order files were written: a finished file waits for an older
            # one still settling (found by the scan at start, or seen only by modify notices), or
            # a newer file could land first and lose an upsert to it. The wait ends once the
            # older file settles, or it is written again (then it is the newer one).
            if settling:
                oldest = min(_when(p) for p in settling)
                ready = [r for r in ready if _when(r[0]) < oldest]
            # renamed or deleted before it settled (write-then-rename): nothing to wait for, and
            # `run --once` must not wait for it forever
            gone = [p for p in self._candidates if not p.exists()]
            for path in [*(p for p, _, _ in ready), *gone]:
                self._candidates.pop(path, None)
        for source, path in _oldest_first((s, p) for p, s, _ in ready):
            try:
                if path.is_file():
                    self.land(source, path)
            except ObjectChangedError:
                self.notice(source, path, False)  # still being written: look again once it settles
            except (OSError, IcefloeError) as exc:
                log.warning("could not land %s: %s", path, exc)


def _when(path: Path) -> tuple[int, str]:
    """Modification time, ties by name (a file that vanished meanwhile counts as newest)."""
    try:
        return path.stat().st_mtime_ns, str(path)
    except OSError:
        return 2**63, str(path)


def _oldest_first(found: Iterable[tuple[Source, Path]]) -> list[tuple[Source, Path]]:
    """By modification time, ties by name (files that vanished meanwhile go last, and fail there)."""
    return sorted(found, key=lambda item: _when(item[1]))
