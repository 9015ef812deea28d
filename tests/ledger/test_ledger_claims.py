"""Claims on keys (a queue source's message sequences): first claimant wins, swaps all or nothing."""

from __future__ import annotations

from icefloe.ledger import Ledger


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
