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

__all__ = ["Waiting", "waiting_objects"]


@dataclass(frozen=True)
class Waiting:
    source: str
    key: str
    modified_at: float
    pipelines: tuple[str, ...]


def waiting_objects(rt: Runtime) -> list[Waiting]:
    """Every object whose current version has not landed, with the pipelines it routes to."""
    found: list[Waiting] = []
    for name, source in rt.sources.items():
        for path in source.scan():
            try:
                key = source.key_for(path)
                stamp = source.stamp(path)
                modified = path.stat().st_mtime
            except (OSError, IcefloeError):  # vanished meanwhile, or a link out of the source
                continue
            if rt.ledger.object_stamp(name, key) != stamp:
                found.append(Waiting(name, key, modified, tuple(rt.router.match(name, key))))
    return found
