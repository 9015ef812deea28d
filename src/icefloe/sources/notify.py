"""Object-store notifications as hints: parse them, order them per key, never trust them.

A notification only says "look at this key again": the engine then asks the source (`head`) for
the object's current version, so a lost, duplicated or reordered notification changes nothing a
reconcile listing would not also find. What is parsed here:

- S3's event message (`{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}]}`, keys
  URL-encoded with `+` for spaces), which MinIO sends too (plus its top-level `Key`/`EventName`);
- the same wrapped in an SNS envelope (`{"Type": "Notification", "Message": "<json>"}`);
- EventBridge's shape (`{"source": "aws.s3", "detail": {...}}`, keys not encoded);
- `s3:TestEvent`, which S3 sends when a notification is configured: no hints.

The per-key `sequencer` (a hex string; longer strings are right-padded with zeros before a
comparison) orders the events of one key; an older hint than the newest one seen is dropped.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from icefloe.errors import DataError

__all__ = ["Hint", "KeyOrder", "NotificationError", "parse_notification"]


class NotificationError(DataError):
    """A notification that is not one of the shapes above: logged with where it came from, dropped."""


@dataclass(frozen=True)
class Hint:
    bucket: str
    key: str
    created: bool  # ObjectCreated:* (False: ObjectRemoved:* and the rest)
    sequencer: str = ""
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None


def parse_notification(body: bytes | str, where: str) -> list[Hint]:
    """The hints in one message; `where` (subject and sequence, queue and message id) names it in errors."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationError(f"{where}: not a JSON notification ({exc})") from None
    try:
        return _hints(doc, where, depth=0)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise NotificationError(f"{where}: not an S3 event notification (missing or bad {exc})") from None


def _hints(doc: Any, where: str, depth: int) -> list[Hint]:
    if not isinstance(doc, dict):
        raise NotificationError(f"{where}: a notification is a JSON object, not {type(doc).__name__}")
    if doc.get("Event") == "s3:TestEvent":
        return []
    if doc.get("Type") == "Notification" and "Message" in doc and depth == 0:
        return _hints(json.loads(doc["Message"]), where, depth + 1)
    if doc.get("source") == "aws.s3" and "detail" in doc:
        return [_from_eventbridge(doc)]
    records = doc["Records"]
    if not isinstance(records, list):
        raise TypeError("Records")
    return [_from_record(r) for r in records]


def _from_record(record: dict[str, Any]) -> Hint:
    s3 = record["s3"]
    obj = s3["object"]
    size = obj.get("size")
    return Hint(
        bucket=str(s3["bucket"]["name"]),
        key=unquote_plus(str(obj["key"])),
        created=str(record["eventName"]).removeprefix("s3:").startswith("ObjectCreated"),
        sequencer=str(obj.get("sequencer") or ""),
        size=int(size) if size is not None else None,
        etag=obj.get("eTag") or None,
        version_id=obj.get("versionId") or None,
    )


def _from_eventbridge(doc: dict[str, Any]) -> Hint:
    detail = doc["detail"]
    obj = detail["object"]
    size = obj.get("size")
    return Hint(
        bucket=str(detail["bucket"]["name"]),
        key=str(obj["key"]),
        created=str(doc.get("detail-type", "")).startswith("Object Created"),
        sequencer=str(obj.get("sequencer") or ""),
        size=int(size) if size is not None else None,
        etag=obj.get("etag") or None,
        version_id=obj.get("version-id") or None,
    )


def _newer(a: str, b: str) -> bool:
    """Sequencer a after b (S3's rule: right-pad the shorter with zeros, compare the hex)."""
    width = max(len(a), len(b))
    return a.upper().ljust(width, "0") > b.upper().ljust(width, "0")


class KeyOrder:
    """The newest sequencer seen per (bucket, key), bounded: `fresh(hint)` drops what is older.

    Forgetting a key (past `capacity`) only lets an older duplicate through as a hint, which costs
    one `head`: the source, not the hint, says what the object is."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self.stale = 0

    def fresh(self, hint: Hint) -> bool:
        if not hint.sequencer:
            return True  # nothing to order by (MinIO without it, a listing): always look
        key = (hint.bucket, hint.key)
        with self._lock:
            last = self._seen.get(key)
            if last is not None and not _newer(hint.sequencer, last):
                self.stale += 1
                return False
            self._seen[key] = hint.sequencer
            self._seen.move_to_end(key)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True
