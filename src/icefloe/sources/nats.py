"""A NATS JetStream stream whose messages carry records (`type: nats`).

Messages are micro-batched into objects of this source: `STREAM/<first seq>-<last seq>.ndjson`
(`.csv` for CSV payloads) in a spool folder (`path`, default `.icefloe/spool/NAME`; shared
storage when workers run on several hosts). From there they are ordinary objects: routed,
leased, read, committed exactly once, traced.

Exactly once, from the message's side:
- Every message's stream sequence is *claimed* in the ledger for one batch before the batch
  exists (insert-if-absent, `SourceLedger.claim`): two workers on the one durable consumer, or a
  redelivery after a crash, can never put a message in two batches.
- A claim is pending (`~KEY~time`) until the batch file is written, then final (`KEY`, swapped
  all or nothing), then the file is renamed into place. A fetcher that dies in between leaves a
  pending claim: after `2 * ack_wait` another worker releases it and batches the messages anew.
- A message is acked only once every event of its batch is final: committed (or discarded, or
  unrouted) -> `ack`; dead -> `term` (the dead-letter queue has the batch, in the spool). Until
  then `in_progress`; a claim pending elsewhere, or a batch the ledger or spool could not take,
  goes back with `nak(delay)`.
- Claims below the consumer's ack floor are pruned under a floor kept in the ledger (`_prune`).
- A message that does not parse (`nats_payload`) is a batch of its own: it dies alone with its
  stream, subject, sequence, line and column (`problem`), and the rest of its fetch commits.

Acks are plain publishes to each message's reply subject, so any connection can send them
later: `run --once` pulls, processes and confirms on short-lived connections.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from icefloe.config import SourceConfig
from icefloe.errors import DataError, NotInstalledError
from icefloe.sources.base import BELOW_FLOOR, Landed, ListPage, ObjectRef, Source, SourceLedger
from icefloe.sources.folder import FolderSource
from icefloe.sources.nats_payload import BadPayload, Payload, explain, explanation, parse_payload

__all__ = ["NatsSource"]

log = logging.getLogger("icefloe")
FINAL_OK = {"committed", "discarded", "unrouted"}
FINAL = FINAL_OK | {"dead"}
# seconds between prunes of the message claims (each is one small ledger transaction)
PRUNE_EVERY = 5.0


@dataclass
class _Held:
    replies: dict[str, int] = field(default_factory=dict)  # reply subject -> stream sequence
    touched: float = field(default_factory=time.monotonic)


def _seq_key(seq: int) -> str:
    return f"{seq:020d}"  # zero-padded: key order is sequence order


async def _quiet(exc: Exception) -> None:
    # nats-py logs every failed attempt with a traceback; icefloe says it once, in its own words
    log.debug("nats: %s", exc)


async def _connect(url: str, *, reconnect: bool) -> Any:
    try:
        import nats
    except ImportError as exc:
        raise NotInstalledError("nats-py (for nats sources)", "nats") from exc
    return await nats.connect(url, connect_timeout=2, allow_reconnect=reconnect, max_reconnect_attempts=3,
                              reconnect_time_wait=0.5, error_cb=_quiet)  # fmt: skip


class NatsSource(Source):
    def __init__(self, name: str, config: SourceConfig, root: Path) -> None:
        assert config.nats is not None  # checked at load
        self.name, self.config, self.options = name, config, config.nats
        spool = SourceConfig(type="folder", path=config.path or f".icefloe/spool/{name}", settle=0.0,
                             ignore=["*.tmp", ".*"], reconcile=config.reconcile)  # fmt: skip
        self.spool = FolderSource(name, spool, root)
        self.settle = 0.0
        self._ledger: SourceLedger | None = None
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # what `status` shows: the consumer's backlog and its messages awaiting an ack
        self.lag: int | None = None
        self.ack_pending: int | None = None
        self._floor = 0  # the claims' floor as last pruned (a prune asks the ledger again)
        self._pruned_at = 0.0
        self._confirmed = 0  # the highest sequence this worker acked or termed

    # -- the object side: the spool folder -------------------------------------------------------
    def list(self, after: str | None = None, limit: int = 1000) -> ListPage:
        return self.spool.list(after, limit)

    def head(self, key: str) -> ObjectRef | None:
        return self.spool.head(key)

    def open(self, key: str) -> BinaryIO:
        return self.spool.open(key)

    def local_path(self, key: str) -> Path | None:
        return self.spool.local_path(key)

    def key_for(self, path: Path) -> str:
        return self.spool.key_for(path)

    def describe(self, ref: ObjectRef) -> Landed:
        return self.spool.describe(ref)

    def is_stable(self, ref: ObjectRef, closed: bool = False) -> bool:
        return True  # batches are renamed into place whole

    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        raise DataError(f"source {self.name!r} is fed by NATS stream {self.options.stream!r}: publish to it instead")

    def attach(self, ledger: SourceLedger) -> None:
        self._ledger = ledger

    @property
    def ledger(self) -> SourceLedger:
        if self._ledger is None:
            raise DataError(f"source {self.name!r} needs the ledger (it claims message sequences)")
        return self._ledger

    # -- the message side ------------------------------------------------------------------------
    def watch(self, on_change: Callable[[str, bool], None]) -> Callable[[], None]:
        stop = threading.Event()
        thread = threading.Thread(target=self._forever, args=(on_change, stop), name=f"icefloe-nats-{self.name}", daemon=True)
        thread.start()

        def stopper() -> None:
            stop.set()
            thread.join(timeout=self.options.max_wait + 10)

        return stopper

    def pull(self, on_change: Callable[[str, bool], None]) -> int:
        """Batch every message waiting for this consumer now (`run --once`); returns how many."""
        return asyncio.run(self._session(on_change, None))

    def confirm(self) -> None:
        """Acknowledge what is final (`run --once` calls it before it returns)."""
        asyncio.run(self._session(None, None))

    def upstream(self) -> dict[str, object]:
        """The consumer's lag (messages not delivered yet) and ack-pending (delivered, not acked)."""

        async def ask() -> dict[str, object]:
            nc = await _connect(self.options.url, reconnect=False)
            try:
                info = await nc.jetstream().consumer_info(self.options.stream, self.options.durable)
                return {"lag": info.num_pending, "ack_pending": info.num_ack_pending}
            finally:
                await nc.close()

        try:
            return asyncio.run(asyncio.wait_for(ask(), timeout=5))
        except Exception as exc:  # noqa: BLE001 - status shows why, and the rest of it still shows
            return {"upstream": f"NATS {self.options.url} stream {self.options.stream}: {type(exc).__name__}: {exc}"}

    def _forever(self, on_change: Callable[[str, bool], None], stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                asyncio.run(self._session(on_change, stop))
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - a NATS outage must not end the worker
                log.warning("source %r: NATS %s: %s (retrying in %.1fs)", self.name, self.options.url, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)

    async def _session(self, on_change: Callable[[str, bool], None] | None, stop: threading.Event | None) -> int:
        """One connection: fetch and batch (unless on_change is None), settle the held messages.
        With `stop`, loop until it is set; without, until the consumer has nothing waiting."""
        try:
            from nats.errors import TimeoutError as FetchTimeout
            from nats.js.api import AckPolicy, ConsumerConfig
        except ImportError as exc:
            raise NotInstalledError("nats-py (for nats sources)", "nats") from exc
        nc = await asyncio.wait_for(_connect(self.options.url, reconnect=True), timeout=10)
        taken = 0
        try:
            await self._settle(nc)
            if on_change is None:
                await nc.flush()  # the acks are in before the ack floor is asked for
                await self._observe_durable(nc)
                return 0
            js = nc.jetstream()
            await self._same_stream(js)
            consumer = ConsumerConfig(durable_name=self.options.durable, ack_policy=AckPolicy.EXPLICIT,
                                      ack_wait=self.options.ack_wait, filter_subject=self.options.subject,
                                      max_ack_pending=100_000)  # fmt: skip
            sub = await js.pull_subscribe(self.options.subject or "", durable=self.options.durable,
                                          stream=self.options.stream, config=consumer)  # fmt: skip
            while stop is None or not stop.is_set():
                try:
                    messages = await sub.fetch(self.options.max_messages, timeout=self.options.max_wait)
                except (FetchTimeout, asyncio.TimeoutError):  # nats-py raises either when nothing came
                    messages = []
                if messages:
                    taken += len(messages)
                    await self._take(nc, messages, on_change)
                await self._settle(nc)
                await self._observe(sub.consumer_info)
                if not messages and stop is None:
                    return taken
            return taken
        finally:
            await nc.flush()
            await nc.close()

    async def _same_stream(self, js: Any) -> None:
        """Refuse a stream that ends below the claims' floor: it was deleted and made again under
        its name, its sequences started over, and its messages would pass for ones long loaded."""
        floor = self.ledger.stamps([""]).get("")
        last = int((await js.stream_info(self.options.stream)).state.last_seq or 0)
        if floor and int(floor) > last:
            raise DataError(
                f"source {self.name!r}: NATS stream {self.options.stream} ends at seq {last}, below seq {int(floor)} "
                "this project loaded from it: the stream was made again and its sequences started over. Nothing "
                f"is taken from it until the claims of the old stream are cleared (the ledger's objects rows of "
                f"source '{self.name}#claims')"
            )

    async def _observe_durable(self, nc: Any) -> None:
        """`run --once` prunes as it ends. The server takes acks in on its own time: the ack floor
        may trail the acks just sent by a moment, so it is asked again a few times for them."""
        js = nc.jetstream()
        for _ in range(10):
            self._pruned_at = 0.0
            await self._observe(lambda: js.consumer_info(self.options.stream, self.options.durable))
            if self._floor >= self._confirmed:
                return
            await asyncio.sleep(0.05)

    async def _observe(self, consumer_info: Callable[[], Awaitable[Any]]) -> None:
        try:
            info = await consumer_info()
            self.lag, self.ack_pending = info.num_pending, info.num_ack_pending
        except Exception:
            log.debug("consumer info failed", exc_info=True)
            return
        if time.monotonic() - self._pruned_at > PRUNE_EVERY:
            self._prune(info)

    def _prune(self, info: Any) -> None:
        """Forget the claims of messages the consumer's ack floor has passed (all acked).

        They cannot simply go when acked: NATS may redeliver a message it has just accepted the
        ack of (an ack after AckWait, nats-server #4786), and a copy with no claim would be
        batched again. So the ledger keeps a floor with the claims, raised in one transaction
        with their deletion: a redelivered message at or below it is acked, never batched."""
        floor = int(getattr(getattr(info, "ack_floor", None), "stream_seq", 0) or 0)
        self._pruned_at = time.monotonic()
        if floor <= self._floor:
            return
        try:
            kept = self.ledger.prune(_seq_key(floor), busy="~")
        except Exception as exc:  # noqa: BLE001 - the claims stay; the next prune catches up
            log.warning("source %r: could not prune message claims (%s)", self.name, exc)
            return
        self._floor = int(kept) if kept else 0

    async def _take(self, nc: Any, messages: builtins.list[Any], on_change: Callable[[str, bool], None]) -> None:
        by_seq = {int(m.metadata.sequence.stream): m for m in messages}
        try:
            claims = self.ledger.stamps([_seq_key(s) for s in by_seq])
        except Exception as exc:  # noqa: BLE001 - the ledger is away: NATS keeps them meanwhile
            await self._back_off(nc, messages, exc)
            return
        free: builtins.list[Any] = []
        adopt: dict[str, builtins.list[Any]] = {}
        for seq, msg in sorted(by_seq.items()):
            stamp = claims.get(_seq_key(seq))
            if stamp:
                adopt.setdefault(stamp, []).append(msg)
            else:
                free.append(msg)
        for stamp, held in adopt.items():
            free += await self._adopt(nc, stamp, held, on_change)
        for batch in self._batches(free):
            try:
                await self._spool(nc, batch, on_change)
            except Exception as exc:  # noqa: BLE001 - the ledger or the spool failed: NATS keeps them
                await self._back_off(nc, [m for m, _ in batch], exc)

    def _batches(self, messages: builtins.list[Any]) -> builtins.list[builtins.list[tuple[Any, Payload | BadPayload]]]:
        """Good messages batch together up to max_bytes (CSV ones under the same header); one
        that does not parse is a batch of its own, so it dies alone."""
        opts = self.options
        batches: builtins.list[builtins.list[tuple[Any, Payload | BadPayload]]] = [[]]
        size = 0
        for msg in sorted(messages, key=lambda m: int(m.metadata.sequence.stream)):
            try:
                got = parse_payload(msg.data, opts.format, delimiter=opts.csv_delimiter, header=opts.csv_header)
            except BadPayload as bad:
                batches += [[(msg, bad)], []]
                size = 0
                continue
            current = batches[-1]
            head = current[0][1] if current else None
            if isinstance(head, Payload) and (size + len(got.rows) > opts.max_bytes or head.header != got.header):
                batches.append([])
                size = 0
            batches[-1].append((msg, got))
            size += len(got.rows)
        return [b for b in batches if b]

    def _key(self, seqs: builtins.list[int]) -> str:
        ext = "csv" if self.options.format == "csv" else "ndjson"
        return f"{self.options.stream}/{seqs[0]:020d}-{seqs[-1]:020d}.{ext}"

    async def _back_off(self, nc: Any, messages: builtins.list[Any], exc: Exception) -> None:
        """nak(delay) growing with each message's deliveries: back soon, but not in a hot loop."""
        delivered = max(int(getattr(m.metadata, "num_delivered", 1) or 1) for m in messages)
        delay = min(self.options.nak_backoff * 2 ** (delivered - 1), self.options.nak_max_backoff)
        log.warning("source %r: could not batch %d message(s) (%s: %s); NATS redelivers them in %.1fs",
                    self.name, len(messages), type(exc).__name__, exc, delay)  # fmt: skip
        for msg in messages:
            await nc.publish(msg.reply, b"-NAK " + json.dumps({"delay": int(delay * 1e9)}).encode())

    async def _spool(self, nc: Any, batch: builtins.list[tuple[Any, Payload | BadPayload]], on_change: Callable[[str, bool], None]) -> None:
        seqs = [int(m.metadata.sequence.stream) for m, _ in batch]
        pending = f"~{self._key(seqs)}~{time.time():.3f}~{self.owner}"
        won = self.ledger.claim([_seq_key(s) for s in seqs], pending)
        mine = [(m, r) for (m, r), s in zip(batch, seqs) if won.get(_seq_key(s)) == pending]
        lost: dict[str, builtins.list[Any]] = {}
        for (m, _), s in zip(batch, seqs):
            stamp = won.get(_seq_key(s), "")
            if stamp == BELOW_FLOOR:
                # committed and acked long ago (a redelivery after a late ack, nats-server #4786,
                # or a consumer made again): its claim is pruned, the floor says it is done
                await nc.publish(m.reply, b"+ACK")
            elif stamp != pending:
                lost.setdefault(stamp, []).append(m)
        for stamp, held in lost.items():  # a race with another worker: theirs now
            await self._adopt(nc, stamp, held, on_change)
        if not mine:
            return
        key = self._key([int(m.metadata.sequence.stream) for m, _ in mine])
        target = self.spool.local_path(key)
        partial = target.parent / f".{target.name}.tmp"  # a name the adopter of a final claim knows
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(mine) == 1 and isinstance(mine[0][1], BadPayload):
                explain(target, mine[0][0].subject, int(mine[0][0].metadata.sequence.stream), mine[0][0].data, mine[0][1])
            with open(partial, "wb") as out:
                first = mine[0][1]
                if isinstance(first, Payload):
                    out.write(first.header)
                out.writelines(got.rows if isinstance(got, Payload) else msg.data for msg, got in mine)
                out.flush()
                os.fsync(out.fileno())
        except Exception:
            self.ledger.swap(pending, "")  # nothing was batched: free to batch again at once
            raise
        if not self.ledger.swap(pending, key, count=len(mine)):
            # released by another worker that took us for dead: the messages are theirs to batch
            partial.unlink(missing_ok=True)
            return
        os.replace(partial, target)
        self._hold(key, [m for m, _ in mine])
        on_change(key, True)

    def problem(self, key: str) -> str | None:
        """Why the batch at `key` cannot be read, when it is one message that did not parse."""
        why = explanation(self.spool.local_path(key))
        if why is None:
            return None
        return (f"{self.name}:{key}:{why['line']}:{why['column']}: {why['reason']} (NATS stream {self.options.stream}, "
                f"subject {why['subject']}, seq {why['seq']}: not valid {self.options.format})")  # fmt: skip

    async def _adopt(self, nc: Any, stamp: str, messages: builtins.list[Any], on_change: Callable[[str, bool], None]) -> builtins.list[Any]:
        """Messages already claimed (redelivered, or raced): hold them for their batch. Returns the
        ones whose dead claimant's claim was released: those are free to batch again."""
        if stamp.startswith("~"):
            claimed_at = float(stamp.split("~")[2])
            if time.time() - claimed_at > 2 * self.options.ack_wait and self.ledger.swap(stamp, ""):
                log.warning("source %r: released messages claimed by a fetcher that did not finish (%s)", self.name, stamp)
                return messages
            for msg in messages:  # still being batched elsewhere: come back later
                await nc.publish(msg.reply, b"-NAK " + json.dumps({"delay": int(self.options.ack_wait * 1e9 / 2)}).encode())
            return []
        key = stamp
        target = self.spool.local_path(key)
        partial = target.parent / f".{target.name}.tmp"
        if not target.exists() and partial.exists():
            os.replace(partial, target)  # its fetcher stopped between the final claim and the rename
        self._hold(key, messages)
        if target.exists():
            on_change(key, True)  # landing is idempotent: a batch already in the ledger stays one event
        return []

    def _hold(self, key: str, messages: builtins.list[Any]) -> None:
        with self._lock:
            held = self._held.setdefault(key, _Held())
            held.replies.update((m.reply, int(m.metadata.sequence.stream)) for m in messages)

    async def _settle(self, nc: Any) -> None:
        with self._lock:
            keys = list(self._held)
        if not keys:
            return
        states = self.ledger.states(keys)
        now = time.monotonic()
        for key in keys:
            found = states.get(key, [])
            with self._lock:
                held = self._held.get(key)
            if held is None:
                continue
            if found and all(s in FINAL for s in found):
                verb = b"+ACK" if all(s in FINAL_OK for s in found) else b"+TERM"
                for reply in held.replies:
                    await nc.publish(reply, verb)
                self._confirmed = max(self._confirmed, *held.replies.values())
                with self._lock:
                    self._held.pop(key, None)
                if verb == b"+TERM":
                    log.warning("source %r: batch %s is dead; its messages are terminated (dlq replay reads the spool)", self.name, key)
            elif now - held.touched > self.options.ack_wait / 3:
                for reply in held.replies:
                    await nc.publish(reply, b"+WPI")  # in_progress: still working on it
                held.touched = now
