"""Source.upload: bytes streamed onto a source appear whole at commit, and nothing of an aborted one stays."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
