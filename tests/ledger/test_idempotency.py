"""Idempotency-Key claims in the ledger, on every backend: one owner per key, answers stored,
keys given back on failure, abandoned claims and expired answers taken over."""

from __future__ import annotations

import time

from icefloe.ledger import Ledger
from icefloe.ledger.idempotency import IdempotencyStore


def test_the_first_claim_owns_the_key_and_a_second_sees_it_in_flight(ledger: Ledger) -> None:
    store = IdempotencyStore(ledger, ttl=3600, in_flight=600)
    assert store.claim("tok", "k").state == "new"
    assert store.claim("tok", "k").state == "in_flight"
    # per token: another token's same key is its own
    assert store.claim("other", "k").state == "new"


def test_a_finished_claim_returns_its_answer(ledger: Ledger) -> None:
    store = IdempotencyStore(ledger, ttl=3600, in_flight=600)
    store.claim("tok", "k")
    store.finish("tok", "k", "fp", 202, '{"events": []}')
    done = store.claim("tok", "k")
    assert (done.state, done.fingerprint, done.status, done.response) == ("done", "fp", 202, '{"events": []}')


def test_a_released_key_is_free_again_but_a_finished_one_is_not_released(ledger: Ledger) -> None:
    store = IdempotencyStore(ledger, ttl=3600, in_flight=600)
    store.claim("tok", "k")
    store.release("tok", "k")
    assert store.claim("tok", "k").state == "new"
    store.finish("tok", "k", "fp", 202, "{}")
    store.release("tok", "k")  # only an in-flight claim is given back
    assert store.claim("tok", "k").state == "done"


def test_an_abandoned_claim_and_an_expired_answer_are_taken_over(ledger: Ledger) -> None:
    store = IdempotencyStore(ledger, ttl=0.05, in_flight=0.05)
    store.claim("tok", "crashed")  # its host died before finishing
    store.claim("tok", "old")
    store.finish("tok", "old", "fp", 202, "{}")
    time.sleep(0.1)
    assert store.claim("tok", "crashed").state == "new"
    assert store.claim("tok", "old").state == "new"
