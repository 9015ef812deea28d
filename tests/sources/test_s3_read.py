"""Reading S3 objects (moto's server on loopback): ranged GETs give exactly the object's bytes,
a rewrite mid-read is a clear ObjectChangedError, and the worker reads objects in place (no
local copy) in every format, small ones fetched ahead of their turn."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import icefloe.sources.spool
from icefloe import Project
from icefloe.errors import ObjectChangedError
from icefloe.sources.s3read import open_object
from tests.s3server import S3Server

pytestmark = pytest.mark.service


def _open(server: S3Server, bucket: str, key: str, part: int, parallel: int, etag: str | None = None) -> Any:
    return open_object(
        server.client(), bucket, key, f"s3://{bucket}/{key}", part_size=part, threshold=part, parallel=parallel, etag=etag
    )


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 4321])
@pytest.mark.parametrize("parallel", [1, 3])
def test_ranged_reads_give_exactly_the_objects_bytes(s3_server: S3Server, s3_bucket: str, size: int, parallel: int) -> None:
    data = bytes((i * 7 + size) % 251 for i in range(size))
    s3_server.client().put_object(Bucket=s3_bucket, Key="o", Body=data)  # type: ignore[attr-defined]
    with _open(s3_server, s3_bucket, "o", part=1000, parallel=parallel) as stream:
        assert stream.read() == data
        stream.seek(size // 2)
        assert stream.read(5) == data[size // 2 : size // 2 + 5]


def test_an_object_rewritten_mid_read_fails_naming_it_and_never_mixes_versions(s3_server: S3Server, s3_bucket: str) -> None:
    client: Any = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="d/o.csv", Body=b"a" * 10_000)
    got = b""
    with _open(s3_server, s3_bucket, "d/o.csv", part=1000, parallel=2) as stream:
        got += stream.read(1000)
        client.put_object(Bucket=s3_bucket, Key="d/o.csv", Body=b"b" * 10_000)
        with pytest.raises(ObjectChangedError, match=f"s3://{s3_bucket}/d/o.csv changed while it was being read"):
            while chunk := stream.read(1000):
                got += chunk
    assert set(got) == {ord("a")}  # what came before the error is all of the first version


def test_a_read_pinned_to_an_old_etag_refuses_the_new_object(s3_server: S3Server, s3_bucket: str) -> None:
    client: Any = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="o", Body=b"x" * 5000)
    with pytest.raises(ObjectChangedError, match="changed"):
        _open(s3_server, s3_bucket, "o", part=1000, parallel=2, etag="0123456789abcdef0123456789abcdef")


class _CountingBody:
    def __init__(self, body: Any) -> None:
        self.body, self.taken = body, 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.body.read(n)
        self.taken += len(data)
        return data

    def close(self) -> None:
        self.body.close()


class _CountingClient:
    """The real client, with every GET's body counting the bytes taken from the network."""

    def __init__(self, client: Any) -> None:
        self.client, self.bodies = client, []

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get_object(**kwargs)
        answer["Body"] = _CountingBody(answer["Body"])
        self.bodies.append(answer["Body"])
        return answer


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_big_object_is_read_as_it_arrives_never_held_whole(s3_server: S3Server, s3_bucket: str, parallel: int) -> None:
    data = bytes(i % 253 for i in range(6 << 20))
    s3_server.client().put_object(Bucket=s3_bucket, Key="big", Body=data)  # type: ignore[attr-defined]
    client = _CountingClient(s3_server.client())
    part = 256 << 10
    with open_object(client, s3_bucket, "big", f"s3://{s3_bucket}/big", part_size=part, threshold=part, parallel=parallel) as stream:
        assert stream.read(1000) == data[:1000]
        taken = sum(body.taken for body in client.bodies)
        # the reader's 1 MiB buffer, or the ranged window, plus the first part: not the 6 MiB
        assert taken <= (1 << 20) + parallel * part, taken
        assert stream.read() == data[1000:]


class _IgnoresRanges(_CountingClient):
    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop("Range", None)
        return super().get_object(**kwargs)


def test_a_store_that_ignores_ranges_is_streamed_not_held(s3_server: S3Server, s3_bucket: str) -> None:
    data = bytes(i % 251 for i in range(6 << 20))
    s3_server.client().put_object(Bucket=s3_bucket, Key="big", Body=data)  # type: ignore[attr-defined]
    client = _IgnoresRanges(s3_server.client())
    part = 256 << 10
    with open_object(client, s3_bucket, "big", f"s3://{s3_bucket}/big", part_size=part, threshold=part, parallel=4) as stream:
        assert stream.read(1000) == data[:1000]
        assert client.bodies[0].taken <= (1 << 20) + part
        assert stream.read() == data[1000:]
    assert len(client.bodies) == 1


class _NoCopy:
    """Stands in for shutil in sources.spool: a local copy of an S3 object is the bug."""

    @staticmethod
    def copyfileobj(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the object was copied to a local file")


def _zip(name: str, xml: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, xml)
    return buf.getvalue()


@pytest.mark.parametrize("small", [True, False], ids=["fetched-ahead", "ranged-stream"])
@pytest.mark.parametrize(
    ("fmt", "key", "read"),
    [
        ("csv", "a.csv", {}),
        ("json", "a.ndjson", {}),
        ("parquet", "a.parquet", {}),
        ("xml", "a.zip", {"record": "r", "fields": {"id": {"path": "@id", "type": "long"}, "v": "v"}}),
    ],
)
def test_the_worker_reads_objects_in_place_in_every_format(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
    fmt: str, key: str, read: dict, small: bool,
) -> None:  # fmt: skip
    rows = [{"id": i, "v": f"v{i}"} for i in range(3000)]
    if fmt == "csv":
        body = ("id,v\n" + "".join(f"{r['id']},{r['v']}\n" for r in rows)).encode()
    elif fmt == "json":
        body = "".join(f'{{"id": {r["id"]}, "v": "{r["v"]}"}}\n' for r in rows).encode()
    elif fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=500)
        body = sink.getvalue()
    else:
        body = _zip("a.xml", ("<rs>" + "".join(f'<r id="{r["id"]}"><v>{r["v"]}</v></r>' for r in rows) + "</rs>").encode())
    for day in ("1", "2"):
        s3_server.client().put_object(Bucket=s3_bucket, Key=f"in/day={day}/{key}", Body=body)  # type: ignore[attr-defined]
    # fetched whole on the pool, or read through the seekable ranged stream
    monkeypatch.setattr("icefloe.engine.fetching.SMALL", len(body) if small else len(body) - 1)
    monkeypatch.setattr(icefloe.sources.spool, "shutil", _NoCopy)
    pipeline = {"read": {"format": fmt, "schema": {"id": "long", "v": "string"}, **read}, "write": {"table": "t.rows"}}
    if fmt == "xml":
        pipeline["read"].pop("schema")
    config = {
        "catalog": "sqlite:///catalog.db",
        "warehouse": f"s3://{s3_bucket}/warehouse",
        "s3": {"endpoint_url": s3_server.endpoint, "region": "us-east-1", "path_style": True},
        "sources": {"landing": {"type": "s3", "bucket": s3_bucket, "prefix": "in"}},
        "routes": [{"source": "landing", "pipeline": "rows"}],
        "pipelines": {"rows": pipeline},
    }
    (tmp_path / "icefloe.yaml").write_text(yaml.safe_dump(config))
    with Project(tmp_path) as project:
        project.run(once=True)
        events = project.ledger.events()
        assert {e.state for e in events} == {"committed"}, [e.error for e in events]
        assert project.sql("select count(*) as n, sum(id) as s from t.rows").to_pylist() == [
            {"n": 6000, "s": 2 * sum(range(3000))}
        ]
