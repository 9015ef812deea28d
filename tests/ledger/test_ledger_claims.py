"""Claims on keys (a queue source's message sequences): first claimant wins, swaps all or nothing."""

from __future__ import annotations

from icefloe.ledger import Ledger
from icefloe.ledger.base import BELOW_FLOOR


def test_the_first_claim_on_a_key_wins(ledger: Ledger) -> None:
    assert ledger.claim_stamps("q#seq", ["1", "2"], "A") == {"1": "A", "2": "A"}
    assert ledger.claim_stamps("q#seq", ["2", "3"], "B") == {"2": "A", "3": "B"}
    # per source
    assert ledger.claim_stamps("other#seq", ["1"], "C") == {"1": "C"}
    assert ledger.object_stamps("q#seq", ["1", "2", "3", "4"]) == {"1": "A", "2": "A", "3": "B"}


def test_a_swap_changes_every_key_of_a_stamp_or_none(ledger: Ledger) -> None:
    ledger.claim_stamps("q#seq", ["1", "2", "3"], "A")
    assert not ledger.swap_stamps("q#seq", "A", "A!", count=2)  # three hold it: nothing changes
    assert ledger.object_stamps("q#seq", ["1", "2", "3"]) == {"1": "A", "2": "A", "3": "A"}
    assert ledger.swap_stamps("q#seq", "A", "A!", count=3)
    assert ledger.object_stamps("q#seq", ["1", "2", "3"]) == {"1": "A!", "2": "A!", "3": "A!"}
    assert not ledger.swap_stamps("q#seq", "A", "B", count=3)  # already moved on


def test_a_released_claim_can_be_claimed_again(ledger: Ledger) -> None:
    ledger.claim_stamps("q#seq", ["1", "2"], "A")
    assert ledger.swap_stamps("q#seq", "A", "")
    assert ledger.object_stamps("q#seq", ["1", "2"]) == {}
    assert ledger.claim_stamps("q#seq", ["1"], "B") == {"1": "B"}


def _claims(ledger: Ledger, *keys: str) -> dict[str, str]:
    return ledger.object_stamps("q#seq", list(keys))


def test_a_prune_deletes_the_claims_at_or_below_its_floor_and_refuses_them_after(ledger: Ledger) -> None:
    ledger.claim_stamps("q#seq", ["01", "02", "03"], "A")
    ledger.claim_stamps("q#seq", ["04"], "B")
    assert ledger.prune_stamps("q#seq", "02", busy="~") == "02"
    assert _claims(ledger, "01", "02", "03", "04") == {"03": "A", "04": "B"}
    # a redelivered message below the floor is not claimed again: it was committed and acked
    assert ledger.claim_stamps("q#seq", ["02", "05"], "C") == {"02": BELOW_FLOOR, "05": "C"}
    assert _claims(ledger, "02") == {}
    # the floor never falls
    assert ledger.prune_stamps("q#seq", "01", busy="~") == "02"
    assert ledger.claim_stamps("q#seq", ["01"], "D") == {"01": BELOW_FLOOR}
    # floors are per source
    assert ledger.claim_stamps("other#seq", ["01"], "E") == {"01": "E"}


def test_a_prune_stops_below_a_claim_still_in_flight_or_released(ledger: Ledger) -> None:
    ledger.claim_stamps("q#seq", ["01", "02"], "A")
    ledger.claim_stamps("q#seq", ["03"], "~pending")
    ledger.claim_stamps("q#seq", ["04"], "B")
    assert ledger.prune_stamps("q#seq", "04", busy="~") == "02"
    assert _claims(ledger, "01", "02", "03", "04") == {"03": "~pending", "04": "B"}
    assert ledger.swap_stamps("q#seq", "~pending", "")  # released: batched anew later
    assert ledger.prune_stamps("q#seq", "04", busy="~") == "02"
    assert ledger.claim_stamps("q#seq", ["03"], "C") == {"03": "C"}
    assert ledger.prune_stamps("q#seq", "04", busy="~") == "04"
    assert _claims(ledger, "03", "04") == {}


def test_a_prune_with_nothing_below_a_busy_claim_keeps_everything(ledger: Ledger) -> None:
    ledger.claim_stamps("q#seq", ["01"], "~pending")
    assert ledger.prune_stamps("q#seq", "05", busy="~") is None
    assert _claims(ledger, "01") == {"01": "~pending"}
    assert ledger.claim_stamps("q#seq", ["02"], "A") == {"02": "A"}
