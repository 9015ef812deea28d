"""The event state machine and the policy every backend applies the same way.

An event is one landed object routed to one pipeline. Its state is an explicit machine:

    landed -> queued -> running -> committed
                 ^         |
                 |         +----> retrying --(lease again)--> running
                 |         +----> dead --(dlq replay)--> queued
                 |         |        +----(dlq discard)--> discarded
                 |         +----> discarded  (superseded: its bytes were replaced before it ran;
                 |         |                     or a duplicate: `dedupe.content` saw its bytes already)
                 +---------+ (released: an older event of an ordered pipeline must go first)
    unrouted  (no route matched; kept and shown, never dropped)

Every lease bumps the event's `epoch`; a worker's writes name the epoch they were leased with and
are refused (`LeaseLostError`) once the lease has moved on, so a paused worker whose lease expired
cannot write its stale state over the new owner's (`held`). The ordering rules of a lease are in
ledger/ordering.py.
"""

from __future__ import annotations

import random
from typing import Any, Literal, get_args

from icefloe.errors import IcefloeError

__all__ = ["State", "STATES", "TERMINAL", "TRANSITIONS", "check", "held", "retry_delay"]

State = Literal["landed", "queued", "running", "retrying", "committed", "dead", "discarded", "unrouted"]
STATES: tuple[str, ...] = get_args(State)
TERMINAL = frozenset({"committed", "discarded"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "landed": frozenset({"queued", "unrouted"}),
    # queued -> committed: table history showed it committed before a crash (found at snapshot expiry)
    "queued": frozenset({"running", "committed"}),
    "running": frozenset({"committed", "retrying", "dead", "running", "queued", "discarded"}),
    "retrying": frozenset({"running", "committed", "dead"}),
    "dead": frozenset({"queued", "discarded", "committed"}),
    "unrouted": frozenset({"queued"}),
    "committed": frozenset(),
    "discarded": frozenset(),
}


def check(old: str, new: State) -> None:
    """Refuse a move the machine has no arrow for."""
    if new not in TRANSITIONS[old]:
        raise IcefloeError(f"illegal event transition {old} -> {new}")


def held(state: Any, epoch: Any, fence: int | None) -> bool:
    """A fenced write may go ahead: the event is still running under the caller's lease
    (`fence` None: an unfenced admin write, always allowed)."""
    return fence is None or (state == "running" and int(epoch) == fence)


def retry_delay(attempts: int, backoff: float, max_backoff: float) -> float:
    """Seconds before a failed event's next attempt: exponential in its attempts, capped, with
    full jitter so a crowd of failed events does not retry in lock-step."""
    return random.uniform(0, min(max_backoff, backoff * 2 ** max(attempts - 1, 0)))
