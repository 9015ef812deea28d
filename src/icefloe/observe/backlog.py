"""Objects sitting in a source that no worker has landed yet: backlog that the ledger cannot see.

With no worker running, files pile up in the folder while the ledger holds no event for them, so
counting events alone reports backlog 0 and lag 0. The same comparison the reconcile scan makes
(the object's stamp against the one the ledger recorded when it last landed) finds them without
reading a byte of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from icefloe.errors import IcefloeError
from icefloe.runtime import Runtime
from icefloe.sources.base import iter_refs

__all__ = ["Waiting", "waiting_objects"]


@dataclass(frozen=True)
class Waiting:
    source: str
    key: str
    modified_at: float
    pipelines: tuple[str, ...]


def waiting_objects(rt: Runtime) -> list[Waiting]:
    """Every object whose current version has not landed, with the pipelines it routes to.

    A status call, so it lists: a page of refs at a time, one ledger lookup per page."""
    found: list[Waiting] = []
    for name, source in rt.sources.items():
        try:
            for refs in iter_refs(source):
                stamps = rt.ledger.object_stamps(name, [r.key for r in refs])
                found += [
                    Waiting(name, r.key, r.modified_at, tuple(rt.router.match(name, r.key)))
                    for r in refs
                    if stamps.get(r.key) != r.version
                ]
        except (OSError, IcefloeError):  # the source is unreachable: nothing known to wait
            continue
    return found
