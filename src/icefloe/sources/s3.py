"""An S3 bucket (AWS or any S3-compatible store) as a source.

Identity without downloading: an object's version is its ETag and size (both in a listing, so
reconcile compares them with the ledger's stamps a page at a time), and its content hash is
derived from bucket, ETag and size unless `hash_content` asks for the bytes' sha256. Objects are
whole once listed (a PUT and a multipart upload are atomic), so nothing settles.

Without bucket notifications, `watch` lists the prefix every `poll` seconds and reports what is
new or changed; `notify(key)` is the hook a notification consumer (SQS, webhook) calls instead.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from icefloe.config.s3 import S3Settings, S3SourceConfig
from icefloe.errors import DataError, IcefloeError, ObjectChangedError
from icefloe.sources.base import Landed, ListPage, ObjectRef, Source, check_key, iter_refs
from icefloe.sources.s3conn import MISSING, make_client, s3_error, status_of
from icefloe.sources.s3read import open_object

__all__ = ["S3Source"]

log = logging.getLogger("icefloe")


class S3Source(Source):
    def __init__(self, name: str, config: S3SourceConfig, defaults: S3Settings | None = None) -> None:
        self.name, self.config = name, config
        self.settings = (defaults or S3Settings()).merged(config)
        self.bucket, self.prefix = config.bucket, config.prefix
        self.settle = config.settle
        # with hash_content, another ETag can hold the same bytes: the HEAD comparison decides
        self.pins_reads = not config.hash_content
        self.seekable_reads = True  # open_object: ranged GETs behind a seekable stream
        self.client = make_client(self.settings)
        self._watchers: list[Callable[[str, bool], None]] = []
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    def where(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _ref(self, key: str, etag: str, size: int, modified: Any) -> ObjectRef:
        # ETag + size is in every listing and every HEAD (a version id is not listed by
        # ListObjectsV2): the stamp reconcile compares without a request per object
        return ObjectRef(self.name, key, size, modified.timestamp(), f"{etag.strip(chr(34))}:{size}")

    # -- listing ----------------------------------------------------------------------------------
    def list(self, after: str | None = None, limit: int = 1000) -> ListPage:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": max(1, min(limit, 1000))}
        if after is not None:
            request["StartAfter"] = self.prefix + after
        try:
            answer = self.client.list_objects_v2(**request)
        except Exception as exc:
            raise s3_error(exc, self.where()) from exc
        refs: builtins.list[ObjectRef] = []
        last: str | None = None
        for item in answer.get("Contents", []):
            key = item["Key"][len(self.prefix) :]
            last = key
            if not key or key.endswith("/") or self.config.ignored(key):
                continue  # a "folder" marker, or ignored like a folder source's *.part
            try:
                check_key(self.name, key)
            except DataError:
                log.warning("%s: key %r is not a relative name: not listed", self.where(), key)
                continue
            refs.append(self._ref(key, item["ETag"], int(item["Size"]), item["LastModified"]))
        # S3 lists keys in UTF-8 byte order, which is Python's str order: cursors compare alike
        cursor = last if answer.get("IsTruncated") and last is not None else None
        return ListPage(refs, cursor)

    def head(self, key: str) -> ObjectRef | None:
        check_key(self.name, key)
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except Exception as exc:
            if status_of(exc)[0] in MISSING:
                return None
            raise s3_error(exc, self.where(key)) from exc
        return self._ref(key, answer["ETag"], int(answer["ContentLength"]), answer["LastModified"])

    def is_stable(self, ref: ObjectRef, closed: bool = False) -> bool:
        # a listed object is whole; the store's clock may run ahead of ours, which must not
        # make a finished object wait
        return self.settle <= 0 or super().is_stable(ref, closed)

    # -- bytes ------------------------------------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        return self._open(check_key(self.name, key))

    def open_version(self, key: str, stamp: str) -> BinaryIO | None:
        if not self.pins_reads:
            return None
        return self._open(check_key(self.name, key), etag=stamp.rpartition(":")[0])

    def _open(self, key: str, etag: str | None = None) -> BinaryIO:
        s = self.settings
        return open_object(
            self.client, self.bucket, self.prefix + key, self.where(key),
            part_size=s.part_size, threshold=s.multipart_threshold, parallel=s.parallel, etag=etag,
        )  # fmt: skip

    def _identity(self, ref: ObjectRef) -> str:
        etag = ref.version.rpartition(":")[0]
        return hashlib.sha256(f"s3\0{self.bucket}\0{etag}\0{ref.size}".encode()).hexdigest()

    def describe(self, ref: ObjectRef) -> Landed:
        check_key(self.name, ref.key)
        if not self.config.hash_content:
            return Landed(self.name, ref.key, self.where(ref.key), ref.size, self._identity(ref), ref.version)
        digest, size = hashlib.sha256(), 0
        # pinned to the listed ETag: bytes of a newer version are an ObjectChangedError
        with self._open(ref.key, etag=ref.version.rpartition(":")[0]) as stream:
            while chunk := stream.read(4 << 20):
                digest.update(chunk)
                size += len(chunk)
        return Landed(self.name, ref.key, self.where(ref.key), size, digest.hexdigest(), ref.version)

    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        from boto3.s3.transfer import TransferConfig

        key = check_key(self.name, key or local.name)
        s = self.settings
        transfer = TransferConfig(
            multipart_threshold=s.multipart_threshold, multipart_chunksize=s.part_size, max_concurrency=s.parallel
        )
        sent = [0]
        lock = threading.Lock()

        def heard(n: int) -> None:  # boto3 reports increments, from several threads
            with lock:
                sent[0] += n
                total = sent[0]
            if progress is not None:
                progress(total)

        try:
            # the object appears whole when the upload (multipart or not) completes: a lister
            # never sees half of it, so no temporary name is needed
            self.client.upload_file(str(local), self.bucket, self.prefix + key, Config=transfer, Callback=heard)
        except Exception as exc:
            # boto3 wraps the ClientError it got in an S3UploadFailedError: judge the cause
            raise s3_error(exc.__context__ or exc, self.where(key)) from exc
        ref = self.head(key)
        if ref is None:
            raise ObjectChangedError(f"{self.where(key)} was deleted right after it was uploaded")
        if progress is not None and sent[0] == 0:
            progress(ref.size)
        if not self.config.hash_content:
            return self.describe(ref)
        digest = hashlib.sha256()
        with local.open("rb") as fh:  # the local copy: the same bytes, not read back
            while chunk := fh.read(4 << 20):
                digest.update(chunk)
        return Landed(self.name, key, self.where(key), ref.size, digest.hexdigest(), ref.version)

    # -- changes ----------------------------------------------------------------------------------
    def notify(self, key: str, complete: bool = True) -> None:
        """What a bucket-notification consumer calls for each object it hears of (the hook for
        SQS / SNS / webhook delivery). A notice can come before the object shows (a 404 right
        after it, on stores that replicate or list late): it is looked for again with backoff,
        `RECHECKS` times, instead of being dropped; reconcile still finds it after that."""
        try:
            found = self.head(key) is not None
        except (OSError, IcefloeError):
            found = False  # unreachable now: look again, like a 404
        if found:
            self._tell(key, complete)
        else:
            self._recheck(key, complete, 0)

    RECHECKS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before each new look at a notified key

    def _recheck(self, key: str, complete: bool, attempt: int) -> None:
        if attempt >= len(self.RECHECKS):
            log.warning("%s was notified but not found after %d looks; reconcile will list it", self.where(key), attempt)
            return

        def look() -> None:
            with self._lock:
                self._timers.discard(timer)
                if not self._watchers:
                    return
            try:
                found = self.head(key) is not None
            except (OSError, IcefloeError):
                found = False
            if found:
                self._tell(key, complete)
            else:
                self._recheck(key, complete, attempt + 1)

        timer = threading.Timer(self.RECHECKS[attempt], look)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _tell(self, key: str, complete: bool) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for on_change in watchers:
            on_change(key, complete)

    def watch(self, on_change: Callable[[str, bool], None]) -> Callable[[], None]:
        with self._lock:
            self._watchers.append(on_change)
        stop = threading.Event()
        thread: threading.Thread | None = None
        if self.config.poll > 0:
            thread = threading.Thread(target=self._poll, args=(stop,), name=f"icefloe-s3-{self.name}", daemon=True)
            thread.start()
        unhear: Callable[[], None] | None = None
        if self.config.notifications:
            from icefloe.sources.notify_feeds import watch_notifications

            unhear = watch_notifications(self.config.notifications, self.config.bucket, self.config.prefix, self.notify)

        def stopper() -> None:
            if unhear is not None:
                unhear()
            stop.set()
            with self._lock:
                if on_change in self._watchers:
                    self._watchers.remove(on_change)
                timers = list(self._timers) if not self._watchers else []
            for pending in timers:
                pending.cancel()
            if thread is not None:
                thread.join(timeout=5)

        return stopper

    def _poll(self, stop: threading.Event) -> None:
        """List every `poll` seconds; report objects whose stamp differs from the last pass.
        The first pass reports only objects written since shortly before the watch began (the
        reconcile at start, which may have listed before them, lands the older ones)."""
        seen: dict[str, str] | None = None
        since = time.time() - max(60.0, 2 * self.config.poll)  # and the store's clock may lag ours
        while not stop.wait(0 if seen is None else self.config.poll):
            now: dict[str, str] = {}
            fresh: builtins.list[str] = []
            try:
                for refs in iter_refs(self):
                    now.update((r.key, r.version) for r in refs)
                    fresh += [r.key for r in refs if r.modified_at >= since]
            except (OSError, IcefloeError) as exc:
                log.warning("could not list %s: %s", self.where(), exc)
                continue
            changed = fresh if seen is None else [k for k, v in now.items() if seen.get(k) != v]
            for key in changed:
                self._tell(key, True)  # just listed: no need to look for it
            seen = now
