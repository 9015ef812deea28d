"""What one engine did: the events it settled, by final state, for `run`'s line and exit code.

Counting the ledger's states before and after a run would credit this process with whatever
other workers committed meanwhile; the engine counts only the events it leased itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icefloe.ledger.base import Ledger

__all__ = ["RunSummary", "Tally"]


@dataclass(frozen=True)
class RunSummary:
    """The outcome of `Project.run` (and `icefloe run`): events this engine took to each state
    (`retrying`: left waiting for a retry), the rows it committed, and `pending`: events the
    ledger still holds unfinished at the end, any worker's, retries included."""

    committed: int = 0
    dead: int = 0
    discarded: int = 0
    retrying: int = 0
    pending: int = 0
    rows: int = 0

    @property
    def done(self) -> bool:
        """Nothing left to do: no event waits for a retry or a worker."""
        return self.retrying == 0 and self.pending == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"committed {self.committed}, dead {self.dead}, discarded {self.discarded}, retrying {self.retrying},"
            f" pending {self.pending}, rows {self.rows}"
        )


class Tally:
    """The last state this engine moved each event to, counted as it goes.

    A long `run` settles events without end, so only the events that may still move (retrying,
    dead: a replay can commit them) are remembered by id; committed and discarded are final and
    only counted. A committed event's rows are read from the ledger at the next `summary` unless
    `seen` was told them."""

    _COUNTED = ("committed", "dead", "discarded", "retrying")
    _FINAL = frozenset({"committed", "discarded"})

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self._COUNTED, 0)
        self.open: dict[str, str] = {}  # event id -> last state, while it can still move
        self.rows = 0
        self._rows_unread: list[str] = []  # committed, rows not known yet

    def seen(self, event_id: str, state: str, *, rows: int | None = None) -> None:
        before = self.open.pop(event_id, None)
        if before in self.counts:
            self.counts[before] -= 1
        if state in self.counts:
            self.counts[state] += 1
        if state not in self._FINAL:
            self.open[event_id] = state
        elif state == "committed" and rows is not None:
            self.rows += rows
        elif state == "committed":
            self._rows_unread.append(event_id)

    def summary(self, ledger: Ledger) -> RunSummary:
        for event_id in self._rows_unread:
            ev = ledger.get(event_id)
            self.rows += (ev.rows_out or 0) if ev is not None else 0
        self._rows_unread.clear()
        counts = dict(self.counts)
        for event_id, state in self.open.items():
            if state == "retrying":
                # a retry may since have been finished by another worker: then it is theirs
                ev = ledger.get(event_id)
                if ev is None or ev.state not in ("retrying", "queued", "running"):
                    counts["retrying"] -= 1
        return RunSummary(**counts, pending=ledger.pending_count(), rows=self.rows)
