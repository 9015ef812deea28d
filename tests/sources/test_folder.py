"""The folder source: keys never escape the root, temp names are ignored, stamps see rewrites."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.config import SourceConfig
from icefloe.errors import DataError
from icefloe.sources.folder import FolderSource
from tests.helpers import ORDERS, make_project, wait_for


@pytest.fixture
def source(tmp_path: Path) -> FolderSource:
    return FolderSource("landing", SourceConfig(path="landing"), tmp_path)


@pytest.mark.parametrize("key", ["../outside.csv", "a/../../outside.csv", "/etc/passwd"])
def test_keys_never_escape_the_root(source: FolderSource, key: str) -> None:
    with pytest.raises(DataError, match="escapes"):
        source.local_path(key)


def test_a_key_through_a_link_out_of_the_root_is_refused(source: FolderSource, tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("x")
    os.symlink(tmp_path / "secret.csv", source.root / "link.csv")
    for call in (source.head, source.open, source.local_path):
        with pytest.raises(DataError, match="escapes"):
            call("link.csv")
    assert source.list().refs == []


def test_a_symlink_out_of_the_root_is_refused_and_the_worker_goes_on(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    secret = tmp_path / "secret.csv"
    secret.write_text("id,ts,amount\n1,2026-01-01 00:00:00,1\n")
    os.symlink(secret, root / "landing/link.csv")
    (root / "landing/ok.csv").write_text("id,ts,amount\n2,2026-01-01 00:00:00,1\n")
    with Project(root) as project:
        project.run(once=True)
        assert [e.key for e in project.ledger.events()] == ["ok.csv"]


def test_temp_and_hidden_names_are_ignored(source: FolderSource) -> None:
    for name in ("a.csv", "b.csv.part", "c.tmp", ".hidden.csv", "d.csv~", "sub/.git/x.csv", "sub/e.csv"):
        path = source.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert [r.key for r in source.list().refs] == ["a.csv", "sub/e.csv"]


def test_stamp_changes_on_a_same_size_rewrite(source: FolderSource) -> None:
    path = source.root / "a.csv"
    path.write_text("v1")
    before = source.head("a.csv")
    stat = path.stat()
    path.write_text("v2")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime restored, as cp -p would
    after = source.head("a.csv")
    assert before is not None and after is not None and after.version != before.version


def test_put_copies_and_hashes_in_one_pass(source: FolderSource, tmp_path: Path) -> None:
    local = tmp_path / "upload.csv"
    local.write_bytes(b"id\n1\n")
    landed = source.put(local, "in/upload.csv")
    assert landed.key == "in/upload.csv" and (source.root / "in/upload.csv").read_bytes() == b"id\n1\n"
    ref = source.head("in/upload.csv")
    assert ref is not None and landed.content_hash == source.describe(ref).content_hash
    assert not list(source.root.rglob("*.part"))


def test_listing_is_in_key_order_across_folders(source: FolderSource) -> None:
    # '.' < '/' < '0': a file named like a folder sorts around it exactly as the keys do
    for key in ("a0.csv", "a/x.csv", "a.csv", "a/b/y.csv", "b.csv", "a/b.csv"):
        path = source.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    keys = ["a.csv", "a/b.csv", "a/b/y.csv", "a/x.csv", "a0.csv", "b.csv"]
    assert [r.key for r in source.list().refs] == keys
    for cut in range(len(keys)):  # every cursor continues exactly after it
        assert [r.key for r in source.list(keys[cut], limit=2).refs] == keys[cut + 1 : cut + 3]


def test_a_watch_notice_names_the_key(source: FolderSource) -> None:
    seen: list[tuple[str, bool]] = []
    stop = source.watch(lambda key, complete: seen.append((key, complete)))
    try:
        local = source.root.parent / "upload.csv"
        local.write_text("id\n1\n")
        source.put(local, "upload.csv")
        assert wait_for(lambda: ("upload.csv", True) in seen, timeout=10)
    finally:
        stop()
    assert all(not key.endswith(".part") for key, _ in seen)


def test_a_file_added_after_a_listing_is_in_the_next_one(source: FolderSource) -> None:
    (source.root / "a.csv").write_text("x")
    old = source.root.stat().st_mtime_ns - 10**10
    os.utime(source.root, ns=(old, old))  # an old folder: its sorted names are kept between pages
    assert [r.key for r in source.list().refs] == ["a.csv"]
    (source.root / "b.csv").write_text("x")
    assert [r.key for r in source.list().refs] == ["a.csv", "b.csv"]
    (source.root / "a.csv").unlink()
    assert [r.key for r in source.list().refs] == ["b.csv"]
