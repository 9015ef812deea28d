"""Source.upload: bytes streamed onto a source appear whole at commit, and nothing of an aborted one stays."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from icefloe.config import SourceConfig
from icefloe.sources.folder import FolderSource
from icefloe.sources.memory import MemorySource


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_folder_upload_appears_only_at_commit_with_its_hash(tmp_path: Path) -> None:
    source = FolderSource("landing", SourceConfig(path="landing"), tmp_path)
    with source.upload() as upload:
        upload.write(b"a,b\n")
        upload.write(b"1,2\n")
        assert source.list().refs == [] and source.head("in/x.csv") is None  # written where no listing looks
        landed = upload.commit("in/x.csv")
    assert (source.root / "in/x.csv").read_bytes() == b"a,b\n1,2\n"
    assert landed.content_hash == hashlib.sha256(b"a,b\n1,2\n").hexdigest() and landed.size == 8
    ref = source.head("in/x.csv")
    assert ref is not None and landed.stamp == ref.version
    assert _files(source.root) == ["in/x.csv"]


def test_an_aborted_folder_upload_leaves_nothing(tmp_path: Path) -> None:
    source = FolderSource("landing", SourceConfig(path="landing"), tmp_path)
    upload = source.upload()
    upload.write(b"half of it")
    upload.abort()
    upload.abort()  # twice is harmless (the handler's finally after an error)
    assert _files(source.root) == []


def test_a_backend_without_its_own_upload_spools_and_puts(tmp_path: Path) -> None:
    source = MemorySource("mem")
    with source.upload() as upload:
        upload.write(b"x" * 10)
        spool = upload.path  # type: ignore[attr-defined]
        landed = upload.commit("k.bin")
    with source.open("k.bin") as fh:
        assert fh.read() == b"x" * 10
    assert landed.key == "k.bin" and not spool.exists()


def test_create_writes_a_new_key_in_place_and_replaces_an_existing_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = FolderSource("landing", SourceConfig(path="landing"), tmp_path)
    renames: list[str] = []
    real = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append(str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    landed = source.create(".recs/ab/x.ndjson", b'{"a": 1}\n')
    assert renames == []  # a new key: no rename for the watch to pair up
    # a crash midway through an earlier attempt left part of it: the retry replaces it whole
    (source.root / ".recs/ab/y.ndjson").write_bytes(b'{"a"')
    again = source.create(".recs/ab/y.ndjson", b'{"a": 2}\n')
    assert len(renames) == 1
    assert (source.root / ".recs/ab/x.ndjson").read_bytes() == b'{"a": 1}\n'
    assert (source.root / ".recs/ab/y.ndjson").read_bytes() == b'{"a": 2}\n'
    assert landed.content_hash == hashlib.sha256(b'{"a": 1}\n').hexdigest() and landed.size == 9
    ref = source.head(".recs/ab/y.ndjson")
    assert ref is not None and again.stamp == ref.version
    assert _files(source.root) == [".recs/ab/x.ndjson", ".recs/ab/y.ndjson"]


def test_create_on_a_backend_without_its_own_lands_by_upload(tmp_path: Path) -> None:
    source = MemorySource("mem")
    landed = source.create("k.bin", b"x" * 3)
    with source.open("k.bin") as fh:
        assert fh.read() == b"xxx"
    assert landed.content_hash == hashlib.sha256(b"xxx").hexdigest()
