"""The channels notifications arrive on: a NATS subject (JetStream or plain) and an SQS queue.

Each feed runs on its own daemon thread: receive, parse, drop what `KeyOrder` says is stale, hand
the rest to the source's `on_change`, then acknowledge. A message is acknowledged only after its
hints were handed over, so a worker that dies in between gets it again; a message that is not a
notification is logged with where it came from and acknowledged (`term` on JetStream), because
sending it again cannot make it parse. A lost channel (the server restarting) is retried with
backoff; meanwhile the source's reconcile listing still finds every object.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from icefloe.config.notify import NotificationConfig
from icefloe.errors import NotInstalledError
from icefloe.sources.notify import Hint, KeyOrder, NotificationError, parse_notification

__all__ = ["Feed", "NatsFeed", "SqsFeed", "open_feed", "watch_notifications"]

log = logging.getLogger("icefloe")
OnHints = Callable[[list[Hint]], None]


class Feed(ABC):
    """One channel. `run` loops until `stop` is set; `on_hints` raising means: deliver again."""

    def __init__(self, config: NotificationConfig, order: KeyOrder) -> None:
        self.config, self.order = config, order
        self.malformed = 0

    @abstractmethod
    def run(self, on_hints: OnHints, stop: threading.Event) -> None: ...

    def _take(self, body: bytes | str, where: str, on_hints: OnHints) -> bool:
        """Parse and hand over one message; False when it is malformed (acknowledge and drop it)."""
        try:
            hints = parse_notification(body, where)
        except NotificationError as exc:
            self.malformed += 1
            log.error("dropped a notification: %s", exc)
            return False
        fresh = [h for h in hints if self.order.fresh(h)]
        if fresh:
            on_hints(fresh)
        return True

    def forever(self, on_hints: OnHints, stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                self.run(on_hints, stop)
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - a channel outage must not end the watch
                log.warning("notification feed %s %s: %s (retrying in %.1fs)", self.config.type, self._name(), exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _name(self) -> str:
        return self.config.subject or self.config.queue_url or ""


class SqsFeed(Feed):
    def __init__(self, config: NotificationConfig, order: KeyOrder) -> None:
        super().__init__(config, order)
        try:
            import boto3
        except ImportError as exc:
            raise NotInstalledError("boto3 (for SQS notifications)", "s3") from exc
        self._client = boto3.client("sqs", region_name=config.region or "us-east-1", endpoint_url=config.endpoint_url)

    def run(self, on_hints: OnHints, stop: threading.Event) -> None:
        while not stop.is_set():
            answer = self._client.receive_message(
                QueueUrl=self.config.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(1, int(self.config.wait))
            )
            for message in answer.get("Messages", []):
                where = f"sqs {self.config.queue_url} message {message.get('MessageId')}"
                self._take(message.get("Body", ""), where, on_hints)
                # after the hand-over (or for a malformed one): SQS would redeliver it otherwise
                self._client.delete_message(QueueUrl=self.config.queue_url, ReceiptHandle=message["ReceiptHandle"])


class NatsFeed(Feed):
    def run(self, on_hints: OnHints, stop: threading.Event) -> None:
        asyncio.run(self._run(on_hints, stop))

    async def _run(self, on_hints: OnHints, stop: threading.Event) -> None:
        try:
            import nats
            from nats.errors import TimeoutError as FetchTimeout
        except ImportError as exc:
            raise NotInstalledError("nats-py (for NATS notifications)", "nats") from exc
        nc = await nats.connect(self.config.url, allow_reconnect=True, max_reconnect_attempts=-1,
                                connect_timeout=2)  # fmt: skip
        try:
            subject = str(self.config.subject)
            if self.config.stream is None:
                await self._plain(nc, subject, on_hints, stop)
                return
            js = nc.jetstream()
            sub = await js.pull_subscribe(subject, durable=self.config.durable, stream=self.config.stream)
            while not stop.is_set():
                try:
                    messages = await sub.fetch(100, timeout=self.config.wait)
                except (FetchTimeout, asyncio.TimeoutError):  # nats-py raises either when nothing came
                    continue
                for msg in messages:
                    where = f"nats {self.config.stream}/{subject} seq {msg.metadata.sequence.stream}"
                    try:
                        ok = self._take(msg.data, where, on_hints)
                    except Exception:
                        await msg.nak(delay=1.0)  # the hand-over failed: deliver it again
                        raise
                    await (msg.ack() if ok else msg.term())
        finally:
            await nc.close()

    async def _plain(self, nc: object, subject: str, on_hints: OnHints, stop: threading.Event) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def collect(msg: object) -> None:
            await queue.put(msg)

        sub = await nc.subscribe(subject, cb=collect)  # type: ignore[attr-defined]
        try:
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(queue.get(), timeout=self.config.wait)
                except TimeoutError:
                    continue
                self._take(msg.data, f"nats {subject}", on_hints)  # type: ignore[attr-defined]
        finally:
            await sub.unsubscribe()


def open_feed(config: NotificationConfig, order: KeyOrder) -> Feed:
    return SqsFeed(config, order) if config.type == "sqs" else NatsFeed(config, order)


def watch_notifications(
    configs: Sequence[NotificationConfig], bucket: str, prefix: str, on_change: Callable[[str, bool], None]
) -> Callable[[], None]:
    """Start a thread per feed calling `on_change(key, True)` for hints on `bucket` under `prefix`
    (the key relative to it); returns the stop function (what `Source.watch` returns)."""
    order, stop = KeyOrder(), threading.Event()

    def on_hints(hints: list[Hint]) -> None:
        for hint in hints:
            if hint.bucket == bucket and hint.key.startswith(prefix) and hint.key != prefix:
                on_change(hint.key[len(prefix):], True)

    threads = []
    for config in configs:
        feed = open_feed(config, order)
        thread = threading.Thread(target=feed.forever, args=(on_hints, stop), name=f"icefloe-notify-{config.type}", daemon=True)
        thread.start()
        threads.append(thread)

    def stopper() -> None:
        stop.set()
        for thread in threads:
            thread.join(timeout=max(c.wait for c in configs) + 5)

    return stopper
