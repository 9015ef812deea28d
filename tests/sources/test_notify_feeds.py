"""Notifications arriving on NATS JetStream and SQS reach `on_change`; bad ones are dropped, not retried."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Iterator

import pytest

from icefloe.config.notify import NotificationConfig
from icefloe.sources.notify import KeyOrder
from icefloe.sources.notify_feeds import NatsFeed, SqsFeed, watch_notifications
from tests.conftest import require_service
from tests.helpers import wait_for
from tests.s3server import S3Server, _free_port

pytestmark = pytest.mark.service


def note(key: str, sequencer: str, bucket: str = "bkt") -> bytes:
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "sequencer": sequencer}}}
    return json.dumps({"Records": [record]}).encode()


class Seen:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, key: str, complete: bool) -> None:
        assert complete
        with self.lock:
            self.keys.append(key)


async def _jetstream(stream: str, subject: str, bodies: list[bytes]) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[subject])
    for body in bodies:
        await js.publish(subject, body)
    await nc.close()


async def _consumer_state(stream: str, durable: str) -> tuple[int, int]:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    info = await nc.jetstream().consumer_info(stream, durable)
    await nc.close()
    return info.num_pending, info.num_ack_pending


async def _drop_stream(stream: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    await nc.jetstream().delete_stream(stream)
    await nc.close()


@pytest.fixture
def stream() -> Iterator[str]:
    require_service("127.0.0.1", 4222, "NATS")
    name = f"S3NOTE{uuid.uuid4().hex[:8].upper()}"
    yield name
    asyncio.run(_drop_stream(name))


def test_jetstream_notifications_reach_the_source_in_order_and_are_all_acked(stream: str, caplog: pytest.LogCaptureFixture) -> None:
    subject = f"{stream.lower()}.events"
    bodies = [
        note("in/a.csv", "10"),
        note("in/b.csv", "10"),
        b"{not json",                   # malformed: logged, termed, never redelivered
        note("in/a.csv", "0F"),         # older than the one seen for a.csv: dropped
        note("in/a.csv", "10"),         # a duplicate: dropped
        note("other/c.csv", "10"),      # outside the prefix
        note("in/d.csv", "10", bucket="elsewhere"),
        note("in/a.csv", "11"),         # rewritten: a new hint
    ]  # fmt: skip
    asyncio.run(_jetstream(stream, subject, bodies))
    seen = Seen()
    config = NotificationConfig(type="nats", subject=subject, stream=stream, durable="icefloe-test", wait=0.2)
    with caplog.at_level(logging.ERROR, logger="icefloe"):
        stop = watch_notifications([config], "bkt", "in/", seen)
        try:
            assert wait_for(lambda: len(seen.keys) >= 3, timeout=20)
            assert wait_for(lambda: asyncio.run(_consumer_state(stream, "icefloe-test")) == (0, 0), timeout=20)
        finally:
            stop()
    assert seen.keys == ["a.csv", "b.csv", "a.csv"]
    assert any(f"nats {stream}/{subject} seq 3" in r.getMessage() and "not a JSON" in r.getMessage() for r in caplog.records)


def test_a_failed_hand_over_is_delivered_again(stream: str) -> None:
    subject = f"{stream.lower()}.events"
    asyncio.run(_jetstream(stream, subject, [note("a.csv", "01")]))
    calls: list[str] = []

    def flaky(hints: list) -> None:
        calls.append(hints[0].key)
        if len(calls) == 1:
            raise RuntimeError("the engine could not take it")

    config = NotificationConfig(type="nats", subject=subject, stream=stream, durable="redo", wait=0.2)
    # a fresh order per attempt: the redelivered message must not count as stale
    feed, stop = NatsFeed(config, KeyOrder()), threading.Event()
    thread = threading.Thread(target=lambda: _retrying(feed, flaky, stop), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: len(calls) >= 2, timeout=20)
    finally:
        stop.set()
        thread.join(10)
    assert calls[:2] == ["a.csv", "a.csv"]


def _retrying(feed: NatsFeed, on_hints, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        feed.order = KeyOrder()
        try:
            feed.run(on_hints, stop)
        except RuntimeError:
            continue


def test_sqs_notifications_reach_the_source_and_are_deleted(
    s3_server: S3Server, s3_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    endpoint = s3_server.endpoint
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"s3-events-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    for body in [note("in/x.csv", "20"), b"[]", note("in/x.csv", "1F"), note("in/y.csv", "01")]:
        sqs.send_message(QueueUrl=url, MessageBody=body.decode())
    seen = Seen()
    config = NotificationConfig(type="sqs", queue_url=url, endpoint_url=endpoint, region="us-east-1", wait=1)
    with caplog.at_level(logging.ERROR, logger="icefloe"):
        stop = watch_notifications([config], "bkt", "in/", seen)
        try:
            assert wait_for(lambda: len(seen.keys) >= 2, timeout=20)

            def drained() -> bool:
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

            assert wait_for(drained, timeout=20)
        finally:
            stop()
    assert sorted(seen.keys) == ["x.csv", "y.csv"]
    assert any("sqs " in r.getMessage() and "JSON object" in r.getMessage() for r in caplog.records)


def test_an_sqs_feed_outlives_its_server_going_away(s3_env: None) -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    config = NotificationConfig(type="sqs", queue_url=f"{endpoint}/123456789012/none", endpoint_url=endpoint, wait=1)
    feed, stop = SqsFeed(config, KeyOrder()), threading.Event()
    # `forever` logs, backs off and keeps going until stopped
    thread = threading.Thread(target=feed.forever, args=(lambda hints: None, stop), daemon=True)
    thread.start()
    thread.join(1.5)
    assert thread.is_alive()
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
