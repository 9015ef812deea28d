"""S3/MinIO/SNS/EventBridge notifications become hints; the sequencer drops stale ones."""

from __future__ import annotations

import json

import pytest

from icefloe.sources.notify import Hint, KeyOrder, NotificationError, parse_notification


def s3_record(key: str, sequencer: str = "0055AED6DCD90281E5", event: str = "ObjectCreated:Put", bucket: str = "b") -> dict:
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1024, "eTag": "d41d8", "sequencer": sequencer}},
    }  # fmt: skip


def test_an_s3_event_message_gives_one_hint_per_record_with_the_key_decoded() -> None:
    body = json.dumps({"Records": [s3_record("orders/a+b%2Bc%3D1.csv"), s3_record("x.csv", event="ObjectRemoved:Delete")]})
    first, second = parse_notification(body, "test")
    assert first == Hint("b", "orders/a b+c=1.csv", True, "0055AED6DCD90281E5", 1024, "d41d8", None)
    assert second.key == "x.csv" and second.created is False


def test_minio_adds_top_level_fields_to_the_same_shape() -> None:
    body = {"EventName": "s3:ObjectCreated:Put", "Key": "b/k.csv", "Records": [s3_record("k.csv", event="s3:ObjectCreated:Put")]}
    (hint,) = parse_notification(json.dumps(body).encode(), "minio")
    assert hint.key == "k.csv" and hint.created


def test_an_sns_envelope_is_unwrapped_and_an_eventbridge_event_read() -> None:
    sns = {"Type": "Notification", "Message": json.dumps({"Records": [s3_record("a.csv")]})}
    assert [h.key for h in parse_notification(json.dumps(sns), "sns")] == ["a.csv"]
    bridge = {"source": "aws.s3", "detail-type": "Object Created",
              "detail": {"bucket": {"name": "b"}, "object": {"key": "a b.csv", "size": 3, "sequencer": "01"}}}  # fmt: skip
    (hint,) = parse_notification(json.dumps(bridge), "eventbridge")
    assert hint == Hint("b", "a b.csv", True, "01", 3, None, None)


def test_the_test_event_s3_sends_on_setup_has_no_hints() -> None:
    assert parse_notification(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}), "t") == []


@pytest.mark.parametrize(
    "body, words",
    [
        (b"\xff\xfe not json", "not a JSON notification"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"hello": 1}), "missing or bad 'Records'"),
        (json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]}), "'object'"),
        (json.dumps({"Records": "x"}), "Records"),
    ],
)
def test_a_malformed_notification_names_where_it_came_from(body: bytes | str, words: str) -> None:
    with pytest.raises(NotificationError) as caught:
        parse_notification(body, "sqs q message m-1")
    assert str(caught.value).startswith("sqs q message m-1: ") and words in str(caught.value)


def test_an_older_or_repeated_sequencer_for_a_key_is_stale() -> None:
    order = KeyOrder()
    new, old = Hint("b", "k", True, "0055AED6DCD90281E6"), Hint("b", "k", True, "0055AED6DCD90281E5")
    assert order.fresh(new)
    assert not order.fresh(old) and not order.fresh(new)
    assert order.fresh(Hint("b", "other", True, "00"))  # per key
    assert order.fresh(Hint("b", "k", True, "0055AED6DCD90281E7"))
    assert order.stale == 2


def test_sequencers_of_different_lengths_compare_right_padded() -> None:
    order = KeyOrder()
    assert order.fresh(Hint("b", "k", True, "0055AED6DCD90281E5"))
    # "...E5" padded is "...E500": equal to it, so the same event; "...E501" is after it
    assert not order.fresh(Hint("b", "k", True, "0055AED6DCD90281E500"))
    assert order.fresh(Hint("b", "k", True, "0055AED6DCD90281E501"))
    assert not order.fresh(Hint("b", "k", True, "0055aed6dcd90281e5"))  # case does not matter


def test_hints_without_a_sequencer_always_pass_and_memory_is_bounded() -> None:
    order = KeyOrder(capacity=2)
    assert order.fresh(Hint("b", "k", True)) and order.fresh(Hint("b", "k", True))
    for i in range(5):
        assert order.fresh(Hint("b", f"k{i}", True, "10"))
    assert len(order._seen) == 2


def test_a_feed_without_its_channel_is_refused_at_load() -> None:
    from pydantic import ValidationError

    from icefloe.config.notify import NotificationConfig

    with pytest.raises(ValidationError, match="needs `subject`"):
        NotificationConfig(type="nats")
    with pytest.raises(ValidationError, match="needs `queue_url`"):
        NotificationConfig(type="sqs")
    assert NotificationConfig(type="nats", subject="s3.events", wait="500ms").wait == 0.5


def test_notifications_on_a_folder_source_are_refused_with_their_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from icefloe import Project
    from icefloe.errors import ConfigError
    from tests.helpers import make_project

    root = make_project(tmp_path / "p", {"o": {"read": {"format": "csv"}, "write": {"table": "a.b"}}})
    text = (root / "icefloe.yaml").read_text().replace("settle: 10ms", "settle: 10ms\n    notifications: [{type: sqs, queue_url: q}]")
    (root / "icefloe.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"icefloe.yaml:\d+.*notifications"):
        Project(root)
