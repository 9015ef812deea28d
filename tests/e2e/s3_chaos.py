"""The kill -9 harness over S3: the crash project's source is a bucket on moto, and S3 goes down
and comes back while workers run.

moto keeps its objects in memory, so a restarted moto is an empty store, which no real outage
looks like. The outage is therefore a `Gate`: a TCP relay between icefloe and moto that stops
listening and cuts every open connection (what a store restarting looks like from the client:
connection refused, resets mid-request), then listens again on the same port. The writer of
the objects talks to moto directly: the uploads are not what is under test.

Used by tests/e2e/test_crash_s3.py and `python -m bench.crash --s3`. Nothing here imports pytest.
"""

from __future__ import annotations

import secrets
import socket
import threading
from pathlib import Path
from typing import Any

from tests.e2e.crash_harness import CrashHarness

__all__ = ["Gate", "s3_harness"]


class Gate:
    """A loopback TCP relay to `port` that can be shut (refusing and cutting) and opened again."""

    def __init__(self, port: int) -> None:
        self.target = port
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="s3-gate", daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._open = list(self._open), set()
        if listener is not None:
            _close(listener)
        for conn in conns:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _close(s)
                with self._lock:
                    self._open.discard(s)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def s3_harness(root: Path, moto_endpoint: str, gate: Gate, **options: Any) -> CrashHarness:
    """The crash harness with its landing folder replaced by a fresh bucket behind `gate`."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"crash-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)

    def land(name: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"landing/{name}", Body=data)

    settings = {"endpoint_url": gate.endpoint, "region": "us-east-1", "path_style": True, "max_attempts": 2,
                "connect_timeout": 2, "read_timeout": 5}  # fmt: skip
    # a short poll: without notifications that is how a running worker hears of new objects
    source = {"type": "s3", "bucket": bucket, "prefix": "landing", "poll": "200ms", "reconcile": "2s"}
    return CrashHarness(root, source=source, s3=settings, land=land, outage=(gate.down, gate.up), **options)
