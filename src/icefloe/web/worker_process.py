"""`icefloe serve`'s worker in a child process: its own interpreter, GIL, ledger connection and watch.

In a thread of the serve process the worker shared everything with the API: the GIL (its
parsing, its commits and its watchdog observer, which handles an inotify event for every file
the API writes), and the ledger's one connection and lock. Every request thread that gave up the
GIL for an fsync or a SQLite call queued behind the worker to take it back, and every ledger call
of the worker held the lock the API's group commit needs. In its own process the worker runs on
the other core, and the two only meet in SQLite's file lock (a short write transaction).

The parent's side (`WorkerProcess`) is a supervisor thread that starts the child, reads its pipe
and, when the child exits while serve is still running (killed, out of memory, a crash), logs an
ERROR with its pid and exit code and starts a new one after a backoff (1 s, doubling to 30 s,
back to 1 s once one has run for a minute). Nothing is lost meanwhile: the ledger holds the work,
and the new child takes back the events a dead one held, as any worker does for a dead worker of
its host. On `stop` (serve's
shutdown: SIGTERM, Ctrl-C) the child is asked to stop, flushes what it buffered and exits 0.

The child never outlives serve: it stops (cleanly, flushing) when its pipe closes, which the kernel
does when the parent dies however it dies. It ignores SIGINT (a Ctrl-C reaches the whole process
group: the parent decides) and stops on SIGTERM. Its logs go to the same stderr, in the same
format. serve's /metrics is the child's scrape (its counters, the ledger's gauges) while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from icefloe.runtime import Runtime

__all__ = ["WorkerProcess", "usable"]

log = logging.getLogger("icefloe.serve")

_FIRST_DELAY, _MAX_DELAY = 1.0, 30.0
# a child that ran this long was not crash-looping: the next restart waits the first delay again
_HEALTHY_AFTER = 60.0


def usable(runtime: Runtime) -> bool:
    """Can a fresh interpreter open what this runtime uses? Only backends built from the config
    (not handed in by a test or an embedding program), and databases a second connection sees."""

    def in_memory(url: str) -> bool:
        return url.partition("://")[2].lstrip("/") in ("", ":memory:")

    config = runtime.config
    return (
        os.name == "posix"
        and bool(sys.executable)
        and runtime.from_config
        and not in_memory(config.ledger)
        and not in_memory(config.catalog)
    )


class _Pair:
    """One end of two one-way pipes, as one connection (sends from any thread)."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self.reader, self.writer = reader, writer
        self._send = threading.Lock()

    def send(self, obj: object) -> None:
        with self._send:
            self.writer.send_bytes(pickle.dumps(obj))

    def recv(self) -> Any:
        return pickle.loads(self.reader.recv_bytes())

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


class WorkerProcess:
    """The worker of `icefloe serve` in a supervised child process."""

    def __init__(self, runtime: Runtime, *, stop_timeout: float = 120.0) -> None:
        self.runtime, self.stop_timeout = runtime, stop_timeout
        self.restarts = 0
        self.exit_code: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: _Pair | None = None
        self._thread: threading.Thread | None = None
        # /metrics scrapes asked of the child: sequence number -> answer
        self._asked = 0
        self._waiting: set[int] = set()
        self._answers: dict[int, tuple[bytes, str] | None] = {}
        self._answered = threading.Condition()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        # the supervisor thread starts every child and lives until `stop`
        self._thread = threading.Thread(target=self._supervise, name="icefloe-worker-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> int | None:
        """Ask the child to stop (it flushes, then exits) and wait for it; killed after
        `stop_timeout`. Returns its exit code (None if none was running)."""
        self._stopping.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        if self._thread is not None:
            self._thread.join(self.stop_timeout)
            if self._thread.is_alive():
                proc = self._proc
                if proc is not None:
                    log.error("the worker process (pid %d) did not stop within %.0f s: killed", proc.pid, self.stop_timeout)
                    proc.kill()
                self._thread.join()
        return self.exit_code

    def scrape(self, timeout: float = 10.0) -> tuple[bytes, str] | None:
        """The child's /metrics scrape (body, content type); None while no child answers."""
        with self._lock:
            conn = self._conn
            self._asked += 1
            asked = self._asked
        if conn is None:
            return None
        with self._answered:
            self._waiting.add(asked)
        try:
            conn.send(("scrape", asked))
            deadline = time.monotonic() + timeout
            with self._answered:
                while asked not in self._answers:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._conn is not conn:
                        return None
                    self._answered.wait(min(left, 0.5))
                return self._answers.pop(asked)
        except OSError:
            return None
        finally:
            with self._answered:
                self._waiting.discard(asked)
                self._answers.pop(asked, None)

    def metrics(self) -> bytes:
        """Its own series, in the text format, for serve's /metrics: whether a child is running
        now, and how often one had to be replaced (alert on either)."""
        up = 1 if self.pid is not None else 0
        return (
            "# HELP icefloe_serve_worker_up Whether icefloe serve's worker process is running.\n"
            "# TYPE icefloe_serve_worker_up gauge\n"
            f"icefloe_serve_worker_up {up}.0\n"
            "# HELP icefloe_serve_worker_restarts_total Worker processes icefloe serve replaced after they exited on their own.\n"
            "# TYPE icefloe_serve_worker_restarts_total counter\n"
            f"icefloe_serve_worker_restarts_total {self.restarts}.0\n"
        ).encode()

    # -- the supervisor thread ----------------------------------------------------------------
    def _supervise(self) -> None:
        delay = _FIRST_DELAY
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                proc, conn = self._spawn()
            except OSError as exc:
                log.error("cannot start the worker process: %s; retrying in %.0f s", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, _MAX_DELAY)
                continue
            self._read(conn)  # until the child's end closes: it exited
            code = proc.wait()
            with self._lock:
                self._conn = None
            conn.close()
            with self._answered:
                self._answered.notify_all()
            if self._stopping.is_set():
                self.exit_code = code
                return
            delay = _FIRST_DELAY if time.monotonic() - started >= _HEALTHY_AFTER else delay
            self.restarts += 1
            log.error(
                "the worker process (pid %d) exited with code %s while serve was running; starting a new one in %.0f s"
                " (the ledger keeps its work: the new one takes back the events it held)",
                proc.pid, code, delay,
            )  # fmt: skip
            self._stopping.wait(delay)
            delay = min(delay * 2, _MAX_DELAY)

    def _spawn(self) -> tuple[subprocess.Popen[bytes], _Pair]:
        ours, theirs = os.pipe(), os.pipe()  # parent -> child, child -> parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        cmd = [sys.executable, "-m", "icefloe.web.worker_process", str(ours[0]), str(theirs[1])]
        try:
            proc = subprocess.Popen(cmd, pass_fds=(ours[0], theirs[1]), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            for fd in (*ours, *theirs):
                os.close(fd)
            raise
        os.close(ours[0])
        os.close(theirs[1])
        conn = _Pair(Connection(theirs[0], writable=False), Connection(ours[1], readable=False))
        from icefloe.observe.logs import JsonFormatter

        json_logs = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
        boot = {
            "config": self.runtime.config, "root": str(self.runtime.root), "json": json_logs,
            "levels": {name: logging.getLogger(name).getEffectiveLevel() for name in ("", "icefloe", "pyiceberg")},
        }  # fmt: skip
        with contextlib.suppress(OSError):  # it died at once: `_read` sees the EOF
            conn.send(boot)  # before anything else can be sent to it (`stop`, `scrape`)
        with self._lock:
            self._proc, self._conn = proc, conn
        if self._stopping.is_set():  # `stop` came while it was starting, and found no child
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        return proc, conn

    def _read(self, conn: _Pair) -> None:
        while True:
            try:
                kind, *body = conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                return
            if kind == "scrape":
                asked, text, content_type = body
                with self._answered:
                    if asked in self._waiting:  # not given up on
                        self._answers[asked] = None if text is None else (text, content_type)
                        self._answered.notify_all()


# -- the child ----------------------------------------------------------------------------------
def child_main(read_fd: int, write_fd: int) -> int:
    conn = _Pair(Connection(read_fd, writable=False), Connection(write_fd, readable=False))
    try:
        boot = conn.recv()
    except EOFError:
        return 0  # the parent died before it said anything
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    from icefloe.observe.logs import configure_logging

    configure_logging(boot["levels"][""], "json" if boot["json"] else "text")
    for name, level in boot["levels"].items():
        logging.getLogger(name or None).setLevel(level)
    if not logging.getLogger("icefloe").isEnabledFor(logging.INFO):
        logging.getLogger("icefloe").setLevel(logging.INFO)  # a long-running worker says what it commits

    from icefloe.engine import Engine

    runtime = Runtime(boot["config"], boot["root"])
    listener = threading.Thread(target=_listen, args=(conn, runtime, stop), name="icefloe-worker-pipe", daemon=True)
    listener.start()
    try:
        engine = Engine(runtime)
        engine.serve(stop)
        log.info("worker process %d stopped: %s", os.getpid(), engine.summary().line())
    finally:
        runtime.close()
    return 0


def _listen(conn: _Pair, runtime: Runtime, stop: threading.Event) -> None:
    """The parent's requests; its end closing (it exited, however) stops the worker too."""
    from icefloe.observe.metrics import exposition

    while True:
        try:
            kind, *body = conn.recv()
        except (EOFError, OSError):
            stop.set()
            return
        if kind == "stop":
            stop.set()
        elif kind == "scrape":
            answer: tuple[bytes | None, str | None] = (None, None)
            try:
                answer = exposition(runtime)
            except Exception:  # the parent serves its own scrape instead
                log.exception("worker process: the /metrics scrape failed")
            with contextlib.suppress(OSError):
                conn.send(("scrape", body[0], *answer))


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1]), int(sys.argv[2])))
