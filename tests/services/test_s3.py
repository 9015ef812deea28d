"""Objects on S3 (moto's server on loopback) into a warehouse on S3, and what bad or missing
objects and an S3 outage do there. The project config only names an endpoint."""

from __future__ import annotations

import gzip
import json
import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from icefloe import Project
from icefloe.errors import StorageUnavailableError, is_transient
from tests.conftest import require_service
from tests.s3server import S3Server, _free_port

pytestmark = pytest.mark.service

PIPELINE = {"read": {"format": "csv", "schema": {"id": "long", "v": "string"}}, "write": {"table": "s3t.rows"}}
PG = "postgresql://postgres@127.0.0.1:5432/test"


def _project(root: Path, server: S3Server, bucket: str, *, catalog: str = "sqlite:///catalog.db", **source: Any) -> Path:
    config = {
        "catalog": catalog,
        "warehouse": f"s3://{bucket}/warehouse",
        "s3": {"endpoint_url": server.endpoint, "region": "us-east-1", "path_style": True, "max_attempts": 2},
        "sources": {"landing": {"type": "s3", "bucket": bucket, "prefix": "incoming", **source}},
        "routes": [{"source": "landing", "pipeline": "rows"}],
        "pipelines": {"rows": PIPELINE},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _put(server: S3Server, bucket: str, key: str, data: bytes) -> None:
    server.client().put_object(Bucket=bucket, Key=f"incoming/{key}", Body=data)  # type: ignore[attr-defined]


def _keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    found = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return [o["Key"] for o in found.get("Contents", [])]


def test_run_once_lands_objects_from_s3_into_an_s3_warehouse(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    _put(s3_server, s3_bucket, "a.csv", b"id,v\n1,a\n2,b\n")
    _put(s3_server, s3_bucket, "day=1/b.csv", b"id,v\n3,c\n")
    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        project.run(once=True)
        assert {e.state for e in project.ledger.events()} == {"committed"}
        assert project.sql("select id, v from s3t.rows order by id").to_pylist() == [
            {"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"},
        ]  # fmt: skip
        location = project.catalog.load_table("s3t.rows").metadata_location
        assert location.startswith(f"s3://{s3_bucket}/warehouse/")
    # the table's files are in the bucket, none in the project folder
    files = _keys(s3_server, s3_bucket, "warehouse/")
    assert any(k.endswith(".parquet") for k in files) and any(k.endswith(".metadata.json") for k in files)
    assert not (tmp_path / "warehouse").exists()
    with Project(tmp_path) as again:  # the same objects again: nothing new lands
        again.run(once=True)
        assert len(again.ledger.events()) == 2


def test_a_postgresql_catalog_with_the_warehouse_on_s3(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    namespace = f"t{uuid.uuid4().hex[:10]}"
    PIPELINE_PG = {**PIPELINE, "write": {"table": f"{namespace}.rows"}}
    root = _project(tmp_path, s3_server, s3_bucket, catalog=PG)
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["pipelines"]["rows"] = PIPELINE_PG
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))
    _put(s3_server, s3_bucket, "a.csv", b"id,v\n7,x\n")
    with Project(root) as project:
        try:
            project.run(once=True)
            assert project.sql(f"select id from {namespace}.rows").to_pylist() == [{"id": 7}]
            assert project.catalog.load_table(f"{namespace}.rows").metadata_location.startswith(f"s3://{s3_bucket}/")
        finally:
            project.catalog.purge_table(f"{namespace}.rows")
            project.catalog.drop_namespace(namespace)


def test_bad_objects_die_naming_bucket_key_and_position(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    _put(s3_server, s3_bucket, "typo.csv", b"id,v\n1,a\n2,b\nthree,c\n")
    _put(s3_server, s3_bucket, "cut.csv.gz", gzip.compress(b"id,v\n" + b"1,a\n" * 5000)[:-40])
    _put(s3_server, s3_bucket, "fine.csv", b"id,v\n9,z\n")
    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        project.run(once=True)
        dead = {e.key: e.error for e in project.ledger.events(states=["dead"])}
        assert set(dead) == {"typo.csv", "cut.csv.gz"}
        assert f"s3://{s3_bucket}/incoming/typo.csv:4" in dead["typo.csv"]
        assert f"s3://{s3_bucket}/incoming/cut.csv.gz @byte" in dead["cut.csv.gz"] and "gzip" in dead["cut.csv.gz"]
        assert project.sql("select id from s3t.rows").to_pylist() == [{"id": 9}]  # nothing half-written


def test_an_object_deleted_before_it_is_read_is_discarded_with_the_reason(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    _put(s3_server, s3_bucket, "gone.csv", b"id,v\n1,a\n")
    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        engine = project.engine()
        engine.reconcile()  # landed and queued
        s3_server.client().delete_object(Bucket=s3_bucket, Key="incoming/gone.csv")  # type: ignore[attr-defined]
        project.run(once=True)
        (event,) = project.ledger.events()
        assert event.state == "discarded" and "deleted before it was processed" in (event.error or "")
        # the same bytes uploaded again are a new landing, not the discarded one
        _put(s3_server, s3_bucket, "gone.csv", b"id,v\n1,a\n")
        project.engine().reconcile()
        project.run(once=True)
        assert sorted(e.state for e in project.ledger.events()) == ["committed", "discarded"]


@pytest.fixture
def own_server(s3_env: None) -> Iterator[S3Server]:
    """A server of this test's own, to stop and start again."""
    server = S3Server(_free_port())
    server.start()
    yield server
    server.stop()


def test_s3_down_while_an_object_is_read_retries_and_does_not_dead_letter(tmp_path: Path, own_server: S3Server) -> None:
    bucket = own_server.bucket()
    data = b"id,v\n1,a\n"
    _put(own_server, bucket, "a.csv", data)
    root = _project(tmp_path, own_server, bucket)
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["warehouse"] = "warehouse/"  # the lake stays reachable; only the source goes away
    config["pipelines"]["rows"]["retry"] = {"backoff": "10ms", "max_attempts": 5}
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))
    with Project(root) as project:
        project.engine().reconcile()
        assert [e.state for e in project.ledger.events()] == ["queued"]
        own_server.stop()  # connection refused from here on
        with pytest.raises(StorageUnavailableError) as refused:
            project.sources["landing"].open("a.csv")
        assert is_transient(refused.value) and "unreachable" in str(refused.value)
        engine = project.engine()
        for _ in range(50):  # steps until one attempt met the refused connection
            engine.step()
            (event,) = project.ledger.events()
            if event.attempts:
                break
        assert event.state in ("queued", "retrying") and event.attempts == 1, event
        own_server.start()  # back (empty, as moto keeps nothing): the same object is put again
        own_server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        _put(own_server, bucket, "a.csv", data)
        project.run(once=True)
        (event,) = project.ledger.events()
        assert event.state == "committed"
        assert project.sql("select id from s3t.rows").to_pylist() == [{"id": 1}]


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<Error><Code>ServiceUnavailable</Code><Message>try later</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


def test_a_5xx_from_the_store_is_transient_on_every_call(tmp_path: Path, s3_env: None) -> None:
    from icefloe.config.s3 import S3SourceConfig
    from icefloe.sources.s3 import S3Source

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        source = S3Source("landing", S3SourceConfig(type="s3", bucket="b", endpoint_url=endpoint, path_style=True, max_attempts=2))
        local = tmp_path / "x.csv"
        local.write_bytes(b"id\n1\n")
        calls = [source.list, lambda: source.head("x.csv"), lambda: source.open("x.csv").read(), lambda: source.put(local)]
        for call in calls:
            with pytest.raises(StorageUnavailableError) as failed:
                call()
            assert is_transient(failed.value) and "s3://b/" in str(failed.value)
    finally:
        server.shutdown()
        server.server_close()


def test_ingest_uploads_to_s3_in_parts_and_loads_it(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    root = _project(tmp_path / "p", s3_server, s3_bucket, part_size="5MB", multipart_threshold="5MB")
    local = tmp_path / "big.csv"
    local.write_bytes(b"id,v\n" + b"".join(b"%d,%s\n" % (i, b"x" * 40) for i in range(150_000)))  # ~7 MB: 2 parts
    with Project(root) as project:
        (event,) = project.ingest([local])
        assert event.state == "committed" and event.uri == f"s3://{s3_bucket}/incoming/big.csv"
        assert project.sql("select count(*) as n from s3t.rows").to_pylist() == [{"n": 150_000}]
    etag = s3_server.client().head_object(Bucket=s3_bucket, Key="incoming/big.csv")["ETag"]  # type: ignore[attr-defined]
    assert etag.strip('"').endswith("-2")  # a multipart upload's ETag counts its parts


def test_a_running_worker_polls_s3_and_lands_new_objects(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    from tests.helpers import wait_for

    with Project(_project(tmp_path, s3_server, s3_bucket, poll="100ms")) as project:
        stop = threading.Event()
        worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
        worker.start()
        try:
            _put(s3_server, s3_bucket, "late.csv", b"id,v\n5,e\n")
            assert wait_for(lambda: [e.state for e in project.ledger.events()] == ["committed"], timeout=30)
        finally:
            stop.set()
            worker.join(timeout=30)


def test_a_pinned_read_refuses_another_version(s3_server: S3Server, s3_bucket: str) -> None:
    from icefloe.config.s3 import S3SourceConfig
    from icefloe.errors import ObjectChangedError
    from icefloe.sources.s3 import S3Source

    config = S3SourceConfig(type="s3", bucket=s3_bucket, prefix="incoming", endpoint_url=s3_server.endpoint, path_style=True)
    source = S3Source("landing", config)
    _put(s3_server, s3_bucket, "a.csv", b"one")
    first = source.head("a.csv")
    assert first is not None
    with source.open_version("a.csv", first.version) as stream:  # type: ignore[union-attr]
        assert stream.read() == b"one"
    _put(s3_server, s3_bucket, "a.csv", b"two")
    with pytest.raises(ObjectChangedError, match="changed"):
        source.open_version("a.csv", first.version)
    s3_server.client().delete_object(Bucket=s3_bucket, Key="incoming/a.csv")  # type: ignore[attr-defined]
    with pytest.raises(ObjectChangedError, match="deleted"):
        source.open_version("a.csv", first.version)


def test_an_object_rewritten_before_it_is_read_loads_only_its_new_bytes(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    _put(s3_server, s3_bucket, "a.csv", b"id,v\n1,old\n")
    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        project.engine().reconcile()
        _put(s3_server, s3_bucket, "a.csv", b"id,v\n1,new\n")
        project.run(once=True)
        states = sorted((e.state, e.error_kind or "") for e in project.ledger.events())
        assert states == [("committed", ""), ("discarded", "Superseded")]
        assert project.sql("select v from s3t.rows").to_pylist() == [{"v": "new"}]


def test_a_notice_for_an_object_not_there_yet_is_looked_at_again(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    from tests.helpers import wait_for

    # no polling: only the notice can bring the object in before the next reconcile
    with Project(_project(tmp_path, s3_server, s3_bucket, poll=0)) as project:
        stop = threading.Event()
        worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
        worker.start()
        try:
            source = project.sources["landing"]
            assert wait_for(lambda: bool(source._watchers), timeout=30)  # type: ignore[attr-defined]
            source.notify("early.csv")  # type: ignore[attr-defined]  # a 404 now
            _put(s3_server, s3_bucket, "early.csv", b"id,v\n8,h\n")
            assert wait_for(lambda: [e.state for e in project.ledger.events()] == ["committed"], timeout=30)
        finally:
            stop.set()
            worker.join(timeout=30)


def test_an_sqs_notification_lands_an_object_without_any_listing(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    import time

    from tests.helpers import wait_for

    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=s3_server.endpoint)
    url = sqs.create_queue(QueueName=f"events-{s3_bucket}")["QueueUrl"]
    feed = {"type": "sqs", "queue_url": url, "endpoint_url": s3_server.endpoint, "region": "us-east-1", "wait": 1}
    # no polling and a reconcile far away: only the notification can make the worker look
    root = _project(tmp_path, s3_server, s3_bucket, poll=0, reconcile="1h", notifications=[feed])
    with Project(root) as project:
        stop = threading.Event()
        worker = threading.Thread(target=project.run, kwargs={"stop": stop})
        worker.start()
        try:
            time.sleep(1.0)  # past the reconcile at start: the object is not there yet
            _put(s3_server, s3_bucket, "late.csv", b"id,v\n5,e\n")
            record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": s3_bucket},
                      "object": {"key": "incoming/late.csv", "size": 10, "sequencer": "01"}}}  # fmt: skip
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [record]}))

            def committed() -> bool:
                return any(e.key == "late.csv" and e.state == "committed" for e in project.ledger.events())

            assert wait_for(committed, timeout=60)
        finally:
            stop.set()
            worker.join(60)
        assert project.sql("select id from s3t.rows").to_pylist() == [{"id": 5}]
