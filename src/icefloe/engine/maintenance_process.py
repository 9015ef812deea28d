"""Maintenance in a child process of the worker: its own interpreter, catalog and ledger connections.

On the maintenance thread (`engine.maintenance`) a run shared the GIL with the committer: a
compaction, manifest rewrite and expiry are mostly pure-Python metadata work (Avro manifests,
metadata JSON), so every commit made during a run's 0.2-0.9 s took 2-3x its time, and those were
the p99 of bench 8. A child process runs on the other core, at a lower CPU priority (`NICE`, except while it holds the commit gate), so
the committer keeps its core when the machine is busy.

The maintenance thread stays the liaison: it counts and queues as before, sends the child one
table at a time and waits for its report; meanwhile it serves the child's requests for the commit
gate (the lock the committer holds around its commits: a compaction that lost a race takes it
for its next attempt, `lake.maintain_compact`) and re-logs the child's log lines in this process,
so they reach the worker's handlers (`--log-format json`, the table bound). Ledger jobs, the
events settled before an expiry and the run itself happen in the child, exactly as `Upkeep.run`
does them on the thread.

The child never outlives the worker: the kernel kills it when the thread that started it ends
(PR_SET_PDEATHSIG), and it exits when its pipe closes. A child that dies mid-run (killed, out of
memory) fails that run; its ledger job is taken back at once as abandoned, and the next run
starts a new child. Every action commits atomically or not at all, so a run cut off anywhere
leaves at most orphan files for the sweep.
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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from icefloe.errors import IcefloeError
from icefloe.runtime import Runtime

__all__ = ["NICE", "MaintenanceProcess", "MaintenanceProcessError", "usable"]

log = logging.getLogger("icefloe")

# added to the child's niceness: on a busy machine the committer gets the CPU first. Not for
# what runs under the commit gate, which the committer waits for (`_Gate`): at nice 10 on a
# loaded machine (load 15 on 2 cores) a compaction commit that held the gate took seconds
NICE = 5
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


class MaintenanceProcessError(IcefloeError):
    """A run in the maintenance process failed (the message is the child's) or the process died."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # the exception type in the child, for the error metric


def usable(runtime: Runtime) -> bool:
    """Can a fresh interpreter open what this runtime uses? Only backends built from the config
    (not handed in by a test or an embedding program) and only databases a second connection
    sees (not `:memory:`)."""
    from icefloe.upkeep import shares_one_database

    config = runtime.config
    return (
        os.name == "posix"
        and bool(sys.executable)  # an embedding program may have no interpreter to start
        and config.maintenance.process
        and runtime.from_config
        and not shares_one_database(runtime)
        and config.ledger.partition("://")[2].lstrip("/") not in ("", ":memory:")
    )


class MaintenanceProcess:
    """The parent's end: `run(table)` in the child, serving its gate requests meanwhile."""

    def __init__(self, runtime: Runtime, owner: str, gate: threading.Lock) -> None:
        self.runtime, self.owner, self.gate = runtime, owner, gate
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: _Pair | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> _Pair:
        """Started by the maintenance thread on its first run (the child dies with that thread)."""
        ours, theirs = os.pipe(), os.pipe()  # parent -> child, child -> parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        cmd = [sys.executable, "-m", "icefloe.engine.maintenance_process", str(ours[0]), str(theirs[1])]
        try:
            self._proc = subprocess.Popen(cmd, pass_fds=(ours[0], theirs[1]), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        finally:
            os.close(ours[0])
            os.close(theirs[1])
        self._conn = conn = _Pair(Connection(theirs[0], writable=False), Connection(ours[1], readable=False))
        conn.send({
            "config": self.runtime.config, "root": str(self.runtime.root), "owner": self.owner, "parent": os.getpid(),
            "levels": {name: logging.getLogger(name).getEffectiveLevel() for name in ("", "icefloe", "pyiceberg")},
        })  # fmt: skip
        return conn

    def run(self, table: str) -> dict[str, Any] | None:
        """The run's report (as a dict), None when another worker is running one; raises
        `MaintenanceProcessError` when it failed."""
        conn = self._conn if self._conn is not None and self.pid is not None else self._start()
        holding = False
        try:
            conn.send(("run", table))
            while True:
                kind, *body = conn.recv()
                if kind == "gate":
                    self.gate.acquire()  # waits for the committer's commit in progress, if any
                    holding = True
                    conn.send(("granted",))
                elif kind == "ungate":
                    holding = False
                    self.gate.release()
                elif kind == "log":
                    _relog(*body)
                elif kind == "done":
                    report, error, error_kind = body
                    if error is not None:
                        raise MaintenanceProcessError(error, error_kind)
                    return report
        except (EOFError, OSError) as exc:
            code = self._proc.wait(5) if self._proc is not None else None
            self._forget()
            self._abandon(table)
            raise MaintenanceProcessError(f"the maintenance process exited during the run (exit code {code})", "ProcessExited") from exc
        finally:
            if holding:
                self.gate.release()

    def _abandon(self, table: str) -> None:
        """Its ledger job would stay `running` (this worker is alive) until it went stale."""
        from icefloe.upkeep import JOB_KIND

        ledger = self.runtime.ledger
        with contextlib.suppress(Exception):  # the ledger is down: the job goes stale later
            for job in ledger.jobs(kind=JOB_KIND, target=table, limit=8):
                if job.state == "running" and job.owner == self.owner:
                    ledger.finish_job(job, "failed", job.detail, error="abandoned: the maintenance process died during the run")

    def _forget(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def stop(self, *, kill: bool = False) -> None:
        """End the child: at once with `kill` (a run still going is cut off), else when idle."""
        proc, conn = self._proc, self._conn
        self._proc = None
        if proc is None:
            return
        if kill:
            proc.kill()
        elif conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._forget()


class _Pair:
    """One end of two one-way pipes, as one connection."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self.reader, self.writer = reader, writer
        self._send = threading.Lock()

    def send(self, obj: object) -> None:
        with self._send:  # the child's log handler sends from any of its threads
            self.writer.send_bytes(pickle.dumps(obj))

    def recv(self) -> Any:
        return pickle.loads(self.reader.recv_bytes())

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def _relog(name: str, level: int, message: str, exc_text: str | None) -> None:
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        record = logger.makeRecord(name, level, "(maintenance process)", 0, message, (), None)
        record.exc_text = exc_text
        logger.handle(record)


# -- the child ----------------------------------------------------------------------------------


class _Forward(logging.Handler):
    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_text = logging.Formatter().formatException(record.exc_info) if record.exc_info else None
            self.conn.send(("log", record.name, record.levelno, record.getMessage(), exc_text))
        except Exception:  # noqa: BLE001 - the parent is gone: the run ends at the next send anyway
            self.handleError(record)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


@contextlib.contextmanager
def _remote_gate(conn: Any) -> Iterator[None]:
    conn.send(("gate",))
    reply = conn.recv()
    if reply != ("granted",):
        raise RuntimeError(f"unexpected reply to a gate request: {reply!r}")
    try:
        yield
    finally:
        conn.send(("ungate",))


class _Gate:
    """The commit gate as the child's maintenance code takes it (`lake.maintain_compact.Exclusive`).

    The committer waits while the child holds it, so what runs under it must not run at the
    child's lower priority: at nice +5 on a loaded machine a compaction commit held the gate,
    and a commit, for 0.3-0.9 s (bench.flat_phases). Raising the priority back needs a
    privilege (RLIMIT_NICE is 0 for most users), so the gated attempt (`run`) goes to a thread
    started before the child lowered its own: on Linux the nice value is per thread."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icefloe-gated")
        self.pool.submit(lambda: None).result()  # its thread exists now, at this thread's priority
        self._helpers: ThreadPoolExecutor | None = None

    def __call__(self) -> contextlib.AbstractContextManager[None]:
        return _remote_gate(self.conn)

    def run(self, fn: Callable[[], _T]) -> _T:
        with _remote_gate(self.conn):
            return self.pool.submit(self._gated, fn).result()

    def _gated(self, fn: Callable[[], _T]) -> _T:
        from pyiceberg.utils.concurrent import ExecutorFactory

        from icefloe.lake.compat import pyiceberg_executor

        if self._helpers is None:  # its threads start from this one, so at its priority
            self._helpers = ThreadPoolExecutor(max_workers=ExecutorFactory.max_workers(), thread_name_prefix="icefloe-gated-io")
        with pyiceberg_executor(self._helpers):
            return fn()


def _set_nice(value: int) -> bool:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:
        return False
    return True


def child_main(read_fd: int, write_fd: int) -> None:
    conn = _Pair(Connection(read_fd, writable=False), Connection(write_fd, readable=False))
    boot = conn.recv()
    _die_with_parent(boot["parent"])
    gate = _Gate(conn)  # before the nice below: its thread keeps the worker's priority
    # on Linux this thread only (and the threads it starts from now on), elsewhere the process
    _set_nice(os.getpriority(os.PRIO_PROCESS, 0) + NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole group: the parent decides
    root = logging.getLogger()
    root.handlers[:] = [_Forward(conn)]
    for name, level in boot["levels"].items():
        logging.getLogger(name or None).setLevel(level)

    from icefloe.engine.heap import freeze_startup_heap
    from icefloe.errors import describe
    from icefloe.upkeep import Upkeep

    runtime = Runtime(boot["config"], boot["root"])
    upkeep = Upkeep(runtime, boot["owner"])
    upkeep.exclusive = gate
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] != "run":
                return
            try:
                report = upkeep.run(message[1])
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs and counts it
                conn.send(("done", None, describe(exc), type(exc).__name__))
            else:
                conn.send(("done", report.to_dict() if report is not None else None, None, None))
            # a full collection of the child's start-up heap while it holds the commit gate would
            # hold the committer too (engine.heap)
            freeze_startup_heap()
    finally:
        runtime.close()


if __name__ == "__main__":
    child_main(int(sys.argv[1]), int(sys.argv[2]))
