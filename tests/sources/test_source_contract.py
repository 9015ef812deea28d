"""The one source contract: every backend (folder, in-memory, S3 on a moto server) behaves the same here."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from icefloe.config import SourceConfig
from icefloe.errors import DataError
from icefloe.sources.base import Source, iter_refs
from icefloe.sources.folder import FolderSource
from icefloe.sources.memory import MemorySource
from icefloe.sources.spool import readable_path

Writer = Callable[[str, bytes], None]


def _folder(tmp_path: Path) -> tuple[Source, Writer]:
    source = FolderSource("landing", SourceConfig(path="landing"), tmp_path)

    def write(key: str, data: bytes) -> None:
        path = source.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return source, write


def _memory(tmp_path: Path) -> tuple[Source, Writer]:
    source = MemorySource("landing")
    return source, lambda key, data: source.write(key, data) and None


def _s3(tmp_path: Path, request: pytest.FixtureRequest, hashed: bool = False) -> tuple[Source, Writer]:
    from icefloe.config.s3 import S3SourceConfig
    from icefloe.sources.s3 import S3Source

    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    # a small part size: the 3 MiB stream test reads through the ranged parallel GETs
    config = S3SourceConfig(
        type="s3", bucket=bucket, prefix="in/coming", endpoint_url=server.endpoint, path_style=True,
        part_size=5 << 20, multipart_threshold=5 << 20, hash_content=hashed,
    )  # fmt: skip
    source = S3Source("landing", config)
    client = server.client()
    return source, lambda key, data: client.put_object(Bucket=bucket, Key=f"in/coming/{key}", Body=data) and None


def _s3_hashed(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Source, Writer]:
    return _s3(tmp_path, request, hashed=True)


def _hashes_bytes(source: Source) -> bool:
    """S3 names an object's bytes by bucket, ETag and size unless `hash_content` is set."""
    config = getattr(source, "config", None)
    return getattr(config, "type", "folder") != "s3" or bool(getattr(config, "hash_content", False))


S3 = pytest.mark.service


@pytest.fixture(
    params=[_folder, _memory, pytest.param(_s3, marks=S3), pytest.param(_s3_hashed, marks=S3)],
    ids=["folder", "memory", "s3", "s3-hashed"],
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Source, Writer]]:
    if request.param in (_s3, _s3_hashed):
        yield request.param(tmp_path, request)
    else:
        yield request.param(tmp_path)


KEYS = ["a.csv", "b/1.csv", "b/2.csv", "c.csv", "d/e/f.csv"]


def test_listing_pages_follow_key_order_and_cursors_resume_after_the_last_key(backend: tuple[Source, Writer]) -> None:
    source, write = backend
    for key in reversed(KEYS):
        write(key, key.encode())
    first = source.list(limit=2)
    assert [r.key for r in first.refs] == KEYS[:2] and first.cursor == KEYS[1]
    second = source.list(first.cursor, limit=2)
    assert [r.key for r in second.refs] == KEYS[2:4]
    last = source.list(second.cursor, limit=2)
    assert [r.key for r in last.refs] == KEYS[4:] and last.cursor is None
    assert [r.key for page in iter_refs(source, limit=1) for r in page] == KEYS
    assert source.list(limit=1000).cursor is None  # one page holds them all: no cursor


def test_a_listing_is_the_same_on_every_call(backend: tuple[Source, Writer]) -> None:
    source, write = backend
    for key in KEYS:
        write(key, b"x")
    assert source.list(limit=3) == source.list(limit=3)
    assert source.list("b/1.csv", limit=2) == source.list("b/1.csv", limit=2)


def test_refs_carry_size_and_a_rewritten_object_gets_a_new_version(backend: tuple[Source, Writer]) -> None:
    source, write = backend
    write("a.csv", b"one")
    before = source.head("a.csv")
    assert before is not None and before.size == 3 and before.key == "a.csv" and before.source == "landing"
    assert [before] == source.list().refs
    write("a.csv", b"two")  # same size, new bytes
    after = source.head("a.csv")
    assert after is not None and after.version != before.version


def test_head_of_a_missing_key_is_none(backend: tuple[Source, Writer]) -> None:
    source, _ = backend
    assert source.head("nothing.csv") is None
    assert source.head("no/such/dir.csv") is None


@pytest.mark.parametrize("key", ["../outside.csv", "a/../../outside.csv", "/etc/passwd", "a//b.csv", ""])
def test_a_key_that_would_escape_the_source_is_refused(backend: tuple[Source, Writer], key: str) -> None:
    source, _ = backend
    for call in (source.head, source.open):
        with pytest.raises(DataError, match="escapes"):
            call(key)


def test_put_lands_the_bytes_and_describe_hashes_them(backend: tuple[Source, Writer], tmp_path: Path) -> None:
    source, _ = backend
    local = tmp_path / "upload.csv"
    local.write_bytes(b"id\n1\n2\n")
    copied: list[int] = []
    landed = source.put(local, "in/upload.csv", copied.append)
    assert landed.key == "in/upload.csv" and landed.size == 7 and copied[-1] == 7
    if _hashes_bytes(source):
        assert landed.content_hash == hashlib.sha256(b"id\n1\n2\n").hexdigest()
    else:  # named without reading: not the bytes' hash, but the same on every describe
        assert len(landed.content_hash) == 64 and landed.content_hash != hashlib.sha256(b"id\n1\n2\n").hexdigest()
    ref = source.head("in/upload.csv")
    assert ref is not None and landed.stamp == ref.version
    described = source.describe(ref)
    assert (described.content_hash, described.stamp, described.uri) == (landed.content_hash, ref.version, landed.uri)


def test_open_streams_the_bytes(backend: tuple[Source, Writer]) -> None:
    source, write = backend
    data = os.urandom(3 << 20)  # several reads' worth
    write("big.bin", data)
    with source.open("big.bin") as stream:
        chunks = iter(lambda: stream.read(1 << 20), b"")
        assert b"".join(chunks) == data


def test_readers_get_a_local_file_with_or_without_a_local_path(backend: tuple[Source, Writer]) -> None:
    source, write = backend
    write("sub/rows.csv.gz", b"\x1f\x8bnot really")
    with readable_path(source, "sub/rows.csv.gz") as path:
        assert path.read_bytes() == b"\x1f\x8bnot really"
        assert path.name == "rows.csv.gz"  # readers pick a format by the object's own name
        spooled = source.local_path("sub/rows.csv.gz") is None
    assert path.exists() != spooled  # a spooled copy goes once read; the folder's own file stays
